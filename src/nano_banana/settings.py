"""Generation settings: the design's defaults, their bounds and their validation.

This is the one place that says what a generation request may contain. The CLI
and the studio build their options from these fields (default, help text and,
for the studio's widgets, bounds included), and every saved image records the
resolved request.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from typing import Any

from .errors import InvalidSettingError
from .options import reject_unknown

# Bounds. Sizes are checked against the latent grid later, once the model is
# known; here we check what holds for every SDXL-style model.
SIZE_MULTIPLE = 8  # the VAE downsamples by 8; diffusers' own check
MIN_SIZE = 64
MAX_SIZE = 4096  # 4096² already needs ~40 GB for SDXL attention; beyond that is a typo
MAX_STEPS = 150
MAX_CFG = 30.0
LORA_SCALE_RANGE = (-1.0, 2.0)  # negative scales invert a LoRA (slider LoRAs); >2 only burns images
UNIFY_STRENGTH = (
    0.3  # a board's unifying pass: one light and soft shadows, parts stay in their boxes
)
# Image to image from a product photo: the product's shape and colours stay, its lighting,
# backdrop and surface are redrawn in the scenario's style.
PHOTO_STRENGTH = 0.6
MAX_SEED = 2**32 - 1  # torch generators take 64 bits, but A1111 and most UIs record 32
# Text limits. CLIP reads only 77 tokens (some 300 characters) and the rest is cut with a
# warning, so a longer prompt is still allowed: pasted notes, A1111 prompts with weights.
# But nothing useful is 10,000 characters long, and unbounded text (a 20 MB prompt in a
# foreign PNG) makes the tokenizer, the gallery index and every display crawl for minutes.
MAX_PROMPT_CHARS = 10_000
# A board plan is JSON with one line per part (at most 40 parts, parts.catalog.MAX_PARTS).
MAX_PLAN_CHARS = 100_000


class Sampler(str, Enum):
    """Schedulers we offer, by the names users know from other UIs."""

    EULER_A = "euler-a"  # the design's choice: fast and varied
    EULER = "euler"
    DPMPP_2M = "dpmpp-2m"
    DDIM = "ddim"

    @property
    def a1111_name(self) -> str:
        return _A1111_SAMPLER_NAMES[self]


_A1111_SAMPLER_NAMES = {
    Sampler.EULER_A: "Euler a",
    Sampler.EULER: "Euler",
    Sampler.DPMPP_2M: "DPM++ 2M",
    Sampler.DDIM: "DDIM",
}


@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting accepts (``validated`` checks them), and what a widget offers.

    The studio's sliders show only ``slider``, the range where the setting is useful;
    values outside it but within low..high may still come from the CLI or a saved image.
    """

    low: float
    high: float
    step: float = 1  # a widget's increment
    slider: tuple[float, float] | None = None  # None: the whole of low..high

    @property
    def range(self) -> tuple[float, float]:
        return self.low, self.high

    def slider_range(self, value: float | None = None) -> tuple[float, float]:
        """The slider's ends, widened to take ``value`` (a reused image may lie outside them)."""
        low, high = self.slider or self.range
        if value is None:
            return low, high
        return min(low, value), max(high, value)


SIZE_BOUNDS = Bounds(MIN_SIZE, MAX_SIZE, step=SIZE_MULTIPLE)
# A LoRA-scale slider runs from off to 1.5, already past "strict".
LORA_SCALE_BOUNDS = Bounds(*LORA_SCALE_RANGE, step=0.05, slider=(0.0, 1.5))


def _opt(default: Any, help: str, bounds: Bounds | None = None, **kw: Any) -> Any:
    """A dataclass field whose help text (and bounds) the CLI and the studio show."""
    metadata = {"help": help} if bounds is None else {"help": help, "bounds": bounds}
    return field(default=default, metadata=metadata, **kw)


@dataclass(frozen=True)
class LoraWeight:
    """One loaded LoRA and its own weight in a request (multiplied by ``lora_scale``)."""

    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides an image. Build one, ``validated()`` it, hand it to the engine."""

    prompt: str = _opt(
        "", "What to show, e.g. 'a mechanical watch'. The preset adds trigger words."
    )
    preset: str = _opt(
        "knolling", "Scenario preset that wraps the prompt ('none' for the raw prompt)."
    )
    negative_prompt: str | None = _opt(
        None, "What to avoid. Default: the preset's own negative prompt."
    )
    lora_scale: float = _opt(
        0.8,
        "LoRA strength: 0.6 looser and closer to the base model's style, 0.8 balanced, "
        "1.0 strict layout. 0 switches the LoRA off.",
        LORA_SCALE_BOUNDS,
    )
    loras: tuple[LoraWeight, ...] | None = _opt(
        None, "Which loaded LoRAs to use and their own weights. None: all loaded LoRAs at 1.0."
    )
    cfg: float = _opt(
        7.5,
        "Guidance (CFG): 7-10 follows the prompt closely, 5-7 is freer.",
        Bounds(0.0, MAX_CFG, step=0.5, slider=(1.0, 20.0)),  # above 20 only burns colours
    )
    steps: int = _opt(
        30,
        "Denoising steps; 25-30 is enough, more adds little.",
        Bounds(1, MAX_STEPS, slider=(1, 80)),  # past 80 no sampler we offer changes visibly
    )
    width: int | None = _opt(
        None,
        "Image width in pixels (multiple of 8). None: the model's native size (SDXL: 1024).",
        SIZE_BOUNDS,
    )
    height: int | None = _opt(
        None,
        "Image height in pixels (multiple of 8). None: the model's native size (SDXL: 1024).",
        SIZE_BOUNDS,
    )
    sampler: Sampler = _opt(
        Sampler.EULER_A, "Scheduler; Euler Ancestral balances speed and quality."
    )
    seed: int | None = _opt(
        None,
        "Seed 0..4294967295 for a reproducible image; None draws one.",
        Bounds(0, MAX_SEED),
    )
    compose: bool = _opt(
        False,
        "Parts-first board: plan the parts, draw each alone, lay them out, unify, check. "
        "Exact part count and callouts; the preset gives the layout.",
    )
    parts: str | None = _opt(
        None,
        "The parts of a composed board, e.g. 'case, dial, strap x2'. "
        "None: the parts catalog's entry for the object in the prompt.",
    )
    explode: float = _opt(
        1.0,
        "How far apart an exploded view's parts are: 0 assembled .. 1 fully apart.",
        Bounds(0.0, 1.0, step=0.05),
    )
    strength: float | None = _opt(
        None,
        f"How much of an input image is redrawn, 0..1 (a photo: {PHOTO_STRENGTH}). A composed "
        f"board's unifying pass uses it too (None: {UNIFY_STRENGTH}; 0 keeps the board as "
        "composed).",
        # A photo redrawn below 0.3 comes back almost as it went in; above 0.9 little of it
        # is left (the product's shape and colours are lost to the noise).
        Bounds(0.0, 1.0, step=0.05, slider=(0.3, 0.9)),
    )
    plan: str | None = _opt(
        None,
        "A composed board's plan as JSON, e.g. an edited one (show --plan-json writes it): the "
        "board is drawn from it as it is. None: planned from the preset's layout and the parts.",
    )

    def validated(self) -> GenerationRequest:
        """Check every field and return a copy with the seed drawn if it was random."""
        _check_prompt(self.prompt, "prompt")
        _check_prompt(self.preset, "preset")
        if self.negative_prompt is not None:
            _check_prompt(self.negative_prompt, "negative prompt")
        for name in ("width", "height"):
            if getattr(self, name) is not None:
                _check_size(name, getattr(self, name))
        check_int_range("steps", self.steps, *field_bounds("steps").range)
        check_float_range("cfg", self.cfg, *field_bounds("cfg").range)
        check_float_range("lora scale", self.lora_scale, *field_bounds("lora_scale").range)
        for lora in self.loras or ():
            # a LoRA's own weight multiplies the scale, so it takes the scale's range
            check_float_range(f"weight of LoRA '{lora.name}'", lora.weight, *LORA_SCALE_RANGE)
        check_float_range("explode", self.explode, *field_bounds("explode").range)
        if self.strength is not None:
            check_float_range("strength", self.strength, *field_bounds("strength").range)
        if self.parts is not None:
            _check_prompt(self.parts, "parts list")
        if self.plan is not None:
            _check_prompt(self.plan, "board plan", MAX_PLAN_CHARS)
        sampler = parse_sampler(self.sampler)
        seed = draw_seed() if self.seed is None else parse_seed(self.seed)
        return replace(self, sampler=sampler, seed=seed)

    def sized(self, width: int, height: int) -> GenerationRequest:
        """This request with any unset side filled in (the engine passes its model's native size)."""
        return replace(self, width=self.width or width, height=self.height or height)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sampler"] = Sampler(self.sampler).value
        data["loras"] = None if self.loras is None else [asdict(lw) for lw in self.loras]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Rebuild a request from ``to_dict`` output; unknown keys are an error, not ignored."""
        reject_unknown(data, cls, where="generation request")
        data = dict(data)
        if data.get("loras") is not None:
            data["loras"] = tuple(LoraWeight(**lw) for lw in data["loras"])
        if "sampler" in data:
            data["sampler"] = parse_sampler(data["sampler"])
        return cls(**data)


def field_help(name: str) -> str:
    """Help text of a request field, for the CLI and the studio."""
    return _field(name).metadata["help"]


def field_bounds(name: str) -> Bounds:
    """Bounds of a numeric request field: what ``validated`` accepts and what widgets offer."""
    return _field(name).metadata["bounds"]


def _field(name: str):
    for f in fields(GenerationRequest):
        if f.name == name:
            return f
    raise KeyError(name)


DEFAULTS = GenerationRequest()


# --- checks ---------------------------------------------------------------


def draw_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def parse_seed(value: Any) -> int:
    """Accept an int or a numeric string in 0..2^32-1; 'random' is handled by ``parse_seed_option``."""
    if isinstance(value, bool):
        raise InvalidSettingError(f"seed must be a whole number, got {value!r}")
    try:
        seed = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidSettingError(
            f"seed must be a whole number 0..{MAX_SEED} or 'random', got {value!r}"
        ) from None
    if not 0 <= seed <= MAX_SEED:
        raise InvalidSettingError(
            f"seed {seed} is out of range: use 0..{MAX_SEED}, or 'random' for a fresh one"
        )
    return seed


def parse_seed_option(value: Any) -> int | None:
    """A seed as a user gives it: a number, or 'random' (None: drawn when the request is validated)."""
    if str(value).strip().lower() == "random":
        return None
    return parse_seed(value)


def parse_sampler(value: Any) -> Sampler:
    try:
        return Sampler(value)
    except ValueError:
        names = ", ".join(s.value for s in Sampler)
        raise InvalidSettingError(f"unknown sampler {value!r}; choose one of {names}") from None


def _check_prompt(text: Any, what: str, limit: int = MAX_PROMPT_CHARS) -> None:
    if not isinstance(text, str):
        raise InvalidSettingError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > limit:
        raise InvalidSettingError(
            f"{what} is {len(text):,} characters long; the limit is {limit:,} "
            "(CLIP reads only the first 77 tokens)"
        )
    if "\x00" in text:
        raise InvalidSettingError(f"{what} contains a NUL character; remove it")
    if _SURROGATE.search(text):
        # what Python makes of bytes that are not UTF-8 (a command line in another encoding)
        raise InvalidSettingError(
            f"{what} is not valid UTF-8 text (it holds undecodable bytes); give it in UTF-8"
        )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_size(name: str, value: Any) -> None:
    bounds = field_bounds(name)
    check_int_range(name, value, *bounds.range)
    if value % bounds.step:
        lower = value - value % bounds.step
        raise InvalidSettingError(
            f"{name} {value} is not a multiple of {bounds.step}; try {max(lower, bounds.low)} "
            f"or {lower + bounds.step}"
        )


def check_int_range(name: str, value: Any, low: int, high: int) -> None:
    """A whole number in low..high, or an InvalidSettingError naming ``name`` (shared with training)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettingError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise InvalidSettingError(f"{name} {value} is out of range: use {low}..{high}")


def check_float_range(name: str, value: Any, low: float, high: float) -> None:
    """A finite number in low..high, or an InvalidSettingError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSettingError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidSettingError(f"{name} must be a finite number, got {value}")
    if not low <= value <= high:
        raise InvalidSettingError(f"{name} {value} is out of range: use {low}..{high}")
