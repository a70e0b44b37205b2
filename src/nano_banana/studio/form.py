"""The Create page's form as data: its fields, defaults, size presets, and the request they make.

The widgets store their values in Streamlit's session state under the keys of
``FormValues``; ``to_request`` turns them into a ``GenerationRequest`` (the one
place the form's meaning lives) and ``from_record`` puts a saved image's
settings back ("reuse settings", by ``generate.reproduce``'s rules, as
``generate --from``) and ``changes`` says in words what that changed. The seed is
a number with a lock: locked, every image uses it; unlocked, every image draws a
new one (and the form then shows the seed drawn). One press makes ``f_count``
images, each its own job: seeds counting up from a locked one, or each drawn anew
(``to_requests``). With a photo, every image redraws it at ``f_photo_strength``.
Defaults come from ``settings.DEFAULTS``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..errors import InvalidSettingError
from ..gallery.record import GenerationRecord
from ..generate.jobs import JobKind
from ..generate.reproduce import request_from_record, reused_lora_names
from ..generate.sheets import LORA_STRENGTHS
from ..settings import (
    DEFAULTS,
    MAX_SEED,
    PHOTO_STRENGTH,
    GenerationRequest,
    LoraWeight,
    Sampler,
    draw_seed,
)
from .service import NO_LORA

CUSTOM_SIZE = "Custom"
EMPTY_PROMPT = "Describe what to take apart first: the prompt is empty"
# Common aspect ratios at the model's native pixel count (SDXL's own buckets at 1024²).
ASPECTS = (
    ("1:1 square", 1, 1),
    ("4:3 landscape", 4, 3),
    ("3:4 portrait", 3, 4),
    ("3:2 landscape", 3, 2),
    ("2:3 portrait", 2, 3),
    ("16:9 wide", 16, 9),
    ("9:16 tall", 9, 16),
)
MODES = {
    JobKind.GENERATE: "Single image",
    JobKind.COMPARE: "Base vs LoRA",
    JobKind.SWEEP: "LoRA scale sweep",
}
# A sweep here shows the three strengths; "Base vs LoRA" shows the LoRA off.
SWEEP_SCALES = LORA_STRENGTHS
# Images one press may make: each is a job in the line every browser shares, so a batch
# holds the workers for that many images; 8 fills a 4x2 grid, as other studios offer.
MAX_IMAGES_PER_CLICK = 8
SCALE_HINT = "Lower (0.6): closer to the base model, looser parts. Higher (1.0): strict layout, less natural."


def size_presets(native: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Labelled sizes with the native pixel count: 1024x1024, 1152x896, ... for SDXL."""
    area = native[0] * native[1]
    step = 64 if min(native) >= 512 else 8  # SDXL's buckets are multiples of 64
    sizes: dict[str, tuple[int, int]] = {}
    for label, a, b in ASPECTS:
        width = max(step, round(math.sqrt(area * a / b) / step) * step)
        height = max(step, round(area / width / step) * step)
        if (a, b) == (1, 1):
            width, height = native
        sizes[f"{label} · {width}×{height}"] = (width, height)
    return sizes


@dataclass
class FormValues:
    """The Create form; field names are the widgets' session-state keys."""

    f_mode: str = JobKind.GENERATE.value
    f_preset: str = DEFAULTS.preset
    f_prompt: str = ""
    f_negative: str = ""  # empty: the scenario's own negative prompt
    f_lora: str = NO_LORA
    f_scale: float = DEFAULTS.lora_scale
    f_cfg: float = DEFAULTS.cfg
    f_steps: int = DEFAULTS.steps
    f_size: str = ""  # a size_presets label or CUSTOM_SIZE
    f_width: int = DEFAULTS.width
    f_height: int = DEFAULTS.height
    f_sampler: str = DEFAULTS.sampler.value
    f_seed_lock: bool = False  # unlocked: every image draws a new seed, a new picture
    f_seed: int = 0  # the locked seed, or the last one drawn
    f_compose: bool = DEFAULTS.compose  # a parts-first board
    f_parts: str = ""  # the board's parts ("case, strap x2"); empty: the catalog's list
    f_parts_prompt: str = ""  # the prompt f_parts was listed for: another object starts afresh
    f_explode: float = DEFAULTS.explode
    f_strength: float | None = DEFAULTS.strength  # None: the unifying pass's own strength
    f_count: int = 1  # images per press (single-image output only)
    f_photo_strength: float = PHOTO_STRENGTH  # how much of an uploaded photo is redrawn

    @classmethod
    def starting_from(cls, request: GenerationRequest) -> FormValues:
        """A fresh form on a model's recommended settings (the demo model has its own)."""
        base = cls()
        return replace(
            base,
            f_scale=request.lora_scale,
            f_cfg=request.cfg,
            f_steps=request.steps,
            f_sampler=Sampler(request.sampler).value,
            f_width=request.width or base.f_width,
            f_height=request.height or base.f_height,
        )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_state(cls, state) -> FormValues:
        defaults = cls()
        return cls(**{k: state.get(k, getattr(defaults, k)) for k in cls.field_names()})

    def to_state(self) -> dict:
        return asdict(self)

    @property
    def kind(self) -> JobKind:
        return JobKind(self.f_mode)

    def size(self, sizes: dict[str, tuple[int, int]]) -> tuple[int, int]:
        if self.f_size in sizes:
            return sizes[self.f_size]
        return int(self.f_width), int(self.f_height)

    @property
    def images_per_click(self) -> int:
        """Images a press makes: ``f_count`` for single images; a comparison or a sweep is
        one job whatever the count."""
        if self.kind is not JobKind.GENERATE:
            return 1
        return min(max(1, int(self.f_count)), MAX_IMAGES_PER_CLICK)

    def to_requests(
        self, sizes: dict[str, tuple[int, int]], lora: str | None, photo: bool = False
    ) -> list[GenerationRequest]:
        """One request per image of a press: a locked seed counts up (seed, seed+1, ...), an
        unlocked one is drawn anew for each image when it is queued."""
        first = self.to_request(sizes, lora, photo)
        count = self.images_per_click
        if first.seed is None:
            return [first] * count
        return [replace(first, seed=(first.seed + i) % (MAX_SEED + 1)) for i in range(count)]

    def to_request(
        self, sizes: dict[str, tuple[int, int]], lora: str | None, photo: bool = False
    ) -> GenerationRequest:
        """The request this form describes; ``lora`` is the resolved adapter name or None;
        ``photo``: the image redraws an uploaded photo at ``f_photo_strength``.

        A blank prompt is refused: the box's grey placeholder looks like input but is none.
        """
        if not self.f_prompt.strip():
            raise InvalidSettingError(EMPTY_PROMPT)
        width, height = self.size(sizes)
        request = GenerationRequest(
            prompt=self.f_prompt,
            preset=self.f_preset,
            negative_prompt=self.f_negative.strip() or None,
            lora_scale=float(self.f_scale) if lora else 0.0,
            loras=(LoraWeight(lora, 1.0),) if lora else (),
            cfg=float(self.f_cfg),
            steps=int(self.f_steps),
            width=width,
            height=height,
            sampler=Sampler(self.f_sampler),
            seed=int(self.f_seed) if self.f_seed_lock else None,
            **self.board_settings(),
        )
        # With a photo the strength is how much of it is redrawn (a board takes no photo:
        # the queue refuses the pair in words)
        return replace(request, strength=float(self.f_photo_strength)) if photo else request

    def board_settings(self) -> dict:
        """The request's board fields; none without board mode, so a plain image's record
        carries no stray parts list."""
        if not self.f_compose:
            return {}
        strength = None if self.f_strength is None else float(self.f_strength)
        return {"compose": True, "parts": self.f_parts.strip() or None,
                "explode": float(self.f_explode), "strength": strength}  # fmt: skip

    @classmethod
    def from_record(
        cls,
        record: GenerationRecord,
        sizes: dict[str, tuple[int, int]],
        loaded: list[str],
        current: FormValues | None = None,
    ) -> FormValues:
        """The form that remakes ``record``'s image: same seed, locked, as a single image.

        The form holds one LoRA: the first the image used that is loaded now, else none.
        What a record does not hold stays as in ``current``: the number of images per
        press, and the photo strength when the image did not start from a photo.
        """
        current = current or cls()
        req = request_from_record(record)
        photo = record.init_image is not None and req.strength is not None
        by_size = {size: label for label, size in sizes.items()}
        lora = next(iter(reused_lora_names(record, loaded)), NO_LORA)
        return cls(
            f_mode=JobKind.GENERATE.value,  # a record is one image, whatever job made it
            f_preset=req.preset,
            f_prompt=req.prompt,
            f_negative=req.negative_prompt or "",
            f_lora=lora,
            # An image made without a LoRA recorded scale 0; keep a useful slider value.
            f_scale=req.lora_scale if record.loras else DEFAULTS.lora_scale,
            f_cfg=float(req.cfg),
            f_steps=int(req.steps),
            f_size=by_size.get((req.width, req.height), CUSTOM_SIZE),
            f_width=int(req.width),
            f_height=int(req.height),
            f_sampler=Sampler(req.sampler).value,
            f_seed_lock=True,
            f_seed=int(req.seed),
            f_compose=bool(req.compose),
            f_parts=req.parts or "",
            f_parts_prompt=req.prompt,
            f_explode=float(req.explode),
            f_strength=req.strength if req.compose else None,  # a photo's is not the board's
            f_count=current.f_count,
            f_photo_strength=float(req.strength) if photo else current.f_photo_strength,
        )

    def changes(
        self,
        before: FormValues,
        sizes: dict[str, tuple[int, int]],
        preset_titles: dict[str, str],
    ) -> list[str]:
        """What this form changes from ``before``, in words ("seed 42 locked", "30 steps").

        The seed always leads: it is the setting a reuse fixes without being asked.
        """
        said = [f"seed {self.f_seed} {'locked' if self.f_seed_lock else 'unlocked'}"]
        for name, words in _CHANGE_WORDS.items():
            if getattr(self, name) != getattr(before, name) and (
                text := words(self, preset_titles)
            ):
                said.append(text)
        (width, height), (was_width, was_height) = self.size(sizes), before.size(sizes)
        if (width, height) != (was_width, was_height):
            said.append(f"size {width}×{height}")
        return said


def _quoted(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return f"'{text if len(text) <= limit else text[: limit - 1] + '…'}'"


# How each setting is said when a reuse changes it (the seed and size are said apart).
_CHANGE_WORDS = {
    "f_mode": lambda f, _: f"output {MODES[f.kind].lower()}",
    "f_preset": lambda f, titles: f"scenario {titles.get(f.f_preset, f.f_preset)}",
    "f_prompt": lambda f, _: f"prompt {_quoted(f.f_prompt)}",
    "f_negative": lambda f, _: f"negative prompt {_quoted(f.f_negative)}" if f.f_negative
    else "the scenario's negative prompt",
    "f_lora": lambda f, _: "no LoRA" if f.f_lora == NO_LORA else f"LoRA {f.f_lora}",
    "f_scale": lambda f, _: f"LoRA scale {f.f_scale:g}",
    "f_cfg": lambda f, _: f"CFG {f.f_cfg:g}",
    "f_steps": lambda f, _: f"{f.f_steps} steps",
    "f_sampler": lambda f, _: f"sampler {f.f_sampler}",
    "f_compose": lambda f, _: "parts-first board " + ("on" if f.f_compose else "off"),
    "f_parts": lambda f, _: f"parts {_quoted(f.f_parts)}" if f.f_parts else "",
    "f_explode": lambda f, _: f"explode {f.f_explode:g}" if f.f_compose else "",
    "f_strength": lambda f, _: f"unifying strength {f.f_strength:g}"
    if f.f_compose and f.f_strength is not None else "",
    "f_count": lambda f, _: f"{f.f_count} image{'s' if f.f_count != 1 else ''} per press",
    "f_photo_strength": lambda f, _: f"photo strength {f.f_photo_strength:g}",
}  # fmt: skip


def next_seed(seed: int) -> int:
    """The seed after ``seed`` ("vary"), wrapping at the largest one."""
    return (int(seed) + 1) % (MAX_SEED + 1)


def new_seed() -> int:
    """A fresh random seed ("re-roll")."""
    return draw_seed()
