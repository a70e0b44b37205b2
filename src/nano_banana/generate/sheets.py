"""Side-by-side comparisons and sweep grids, built from ordinary engine calls.

``compare`` is the design's "pure SDXL vs SDXL + LoRA" table: one prompt, one
seed, LoRA off and on; a request with ``compose`` adds the parts-first board of
the same prompt, seed and preset as a third panel. ``sweep`` renders a row over
values of one setting (default: LoRA scale 0, 0.6, 0.8, 1.0), like A1111's X/Y plot. Their checks
(``check_compare``, ``check_sweep``) are the ones the CLI runs before loading a
model and the job queue runs before queueing a job; the two shells differ in one
rule only, which ``check_sweep``'s ``require_lora`` names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from ..errors import InvalidSettingError
from ..settings import GenerationRequest

# The engine's names are annotations only here: importing it means torch, which the
# checks and constants below (the CLI's --help, the studio's form) should not wait for.
if TYPE_CHECKING:
    from .engine import Engine, GenerationResult, ProgressCallback

LORA_STRENGTHS = (0.6, 0.8, 1.0)  # the design's three LoRA strengths: loose, balanced, strict
# The LoRA off first, as the reference the strengths are judged against. The studio
# sweeps LORA_STRENGTHS only: its "Base vs LoRA" mode shows that reference.
DEFAULT_SWEEP_SCALES = (0.0, *LORA_STRENGTHS)
# Values one sweep may take: as many images as ``generate --count`` makes at most. A sheet
# of more panels is too wide to compare, and a typo ("0,0.1,...") would queue hours of work.
MAX_SWEEP_VALUES = 64
MIN_PANEL_SIDE = 256  # sheets show smaller images enlarged; the saved panels keep their size
# Settings a sweep may vary, with how to read a value from the command line.
SWEEPABLE: dict[str, Callable[[str], object]] = {
    "lora_scale": float,
    "cfg": float,
    "steps": int,
    "seed": int,
}


@dataclass
class Panel:
    label: str
    result: GenerationResult


@dataclass
class SheetResult:
    panels: list[Panel]
    sheet: Image.Image  # all panels in one labelled image


def compare(
    engine: Engine,
    request: GenerationRequest,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> SheetResult:
    """Same prompt and seed, LoRA off then on; with ``request.compose`` the composed board
    too (``compare_images``). The seed is fixed first so every panel shares it."""
    check_compare(request, active_loras(request, engine.adapter_names))
    request = request.sized(*engine.native_size).validated()
    if request.compose:
        from .boards import board_plan  # deferred: boards bring scipy and layout analysis

        board_plan(engine, request)  # a board it cannot plan fails before the first image
    plain = replace(request, compose=False)  # the request itself when it asks for no board
    base = engine.generate(replace(plain, lora_scale=0.0), progress, cancel)
    with_lora = engine.generate(plain, progress, cancel)
    panels = [
        Panel("base model (LoRA off)", base),
        Panel(f"base + LoRA (scale {request.lora_scale:g})", with_lora),
    ]
    if request.compose:
        board = engine.generate(request, progress, cancel)
        parts = len(board.record.board["plan"]["parts"])
        panels.append(Panel(f"composed board ({parts} parts)", board))
    return SheetResult(panels, compose_sheet(panels, title=request.prompt))


def compare_images(request: GenerationRequest) -> int:
    """How many images ``compare`` makes: base and base + LoRA, and the board with ``compose``."""
    return 3 if request.compose else 2


def sweep(
    engine: Engine,
    request: GenerationRequest,
    setting: str = "lora_scale",
    values: Sequence[object] = DEFAULT_SWEEP_SCALES,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    *,
    require_lora: bool = True,
    on_panel: Callable[[Panel], None] | None = None,
) -> SheetResult:
    """One image per value of ``setting``, everything else (the seed too) held fixed
    (``require_lora`` as in ``check_sweep``). ``on_panel`` gets each panel as soon as it
    is made, e.g. to save it: a sweep stopped halfway keeps the images it made."""
    request = request.sized(*engine.native_size).validated()
    loras = active_loras(request, engine.adapter_names)
    variants = check_sweep(request, setting, values, loras, require_lora=require_lora)
    panels = []
    for variant, value in zip(variants, values, strict=True):
        label = f"{setting} = {value:g}" if isinstance(value, float) else f"{setting} = {value}"
        panels.append(Panel(label, engine.generate(variant, progress, cancel)))
        if on_panel is not None:
            on_panel(panels[-1])
    return SheetResult(panels, compose_sheet(panels, title=request.prompt))


# --- checks: run before any image is made -------------------------------------------


def active_loras(request: GenerationRequest, loaded: Collection[str]) -> list[str]:
    """The LoRAs ``request`` uses: those it names, or every loaded one when it names none."""
    return list(loaded) if request.loras is None else [lw.name for lw in request.loras]


def check_compare(request: GenerationRequest, loras: Collection[str] | None = None) -> None:
    """A comparison switches a LoRA off and on: it needs one, at a scale other than 0.

    ``loras``: the LoRAs the request uses (``active_loras``); None when they are not
    known yet, and ``compare`` checks again with the engine's.
    """
    if loras is not None and not loras:
        raise InvalidSettingError(_needs_lora("compare"))
    if request.lora_scale == 0:  # a negative scale inverts the LoRA: still worth comparing
        raise InvalidSettingError(
            "compare shows the LoRA at its scale: set a LoRA scale other than 0 "
            "(a scale above 0 applies it, below 0 inverts it)"
        )


def check_sweep(
    request: GenerationRequest,
    setting: str,
    values: Sequence[object],
    loras: Collection[str] | None = None,
    *,
    require_lora: bool = True,
) -> list[GenerationRequest]:
    """Every variant of a sweep, validated.

    With ``require_lora`` a LoRA-scale sweep needs a LoRA (``loras`` as in
    ``check_compare``): the studio refuses one without. The CLI passes False: it has
    always allowed one, which makes a row of base-model images.
    """
    _check_sweepable(setting)
    if not values:
        raise InvalidSettingError("a sweep needs at least one value")
    _check_value_count(values)
    if require_lora and setting == "lora_scale" and loras is not None and not loras:
        raise InvalidSettingError(_needs_lora("sweep"))
    return [replace(request, **{setting: value}).validated() for value in values]


def _needs_lora(kind: str) -> str:
    # Worded for both shells: the CLI's --lora, the studio's LoRA choice, the demo's own LoRA.
    return f"{kind} shows what a LoRA does: choose a LoRA first (--lora FILE, or the demo model)"


def parse_sweep_values(setting: str, text: str) -> list[object]:
    """'0,0.6,0.8,1' -> [0.0, 0.6, 0.8, 1.0] for ``setting``."""
    _check_sweepable(setting)
    convert = SWEEPABLE[setting]
    parts = [part.strip() for part in text.split(",") if part.strip()]
    _check_value_count(parts)  # before converting: a huge list is refused without reading it
    try:
        return [convert(part) for part in parts]
    except ValueError:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise InvalidSettingError(
            f"sweep values '{shown}' are not all valid for {setting}"
        ) from None


def _check_value_count(values: Sequence[object]) -> None:
    if len(values) > MAX_SWEEP_VALUES:
        raise InvalidSettingError(
            f"a sweep takes at most {MAX_SWEEP_VALUES} values, got {len(values)}; "
            "split it into several sweeps"
        )


def format_sweep_values(values: Sequence[object]) -> str:
    """The inverse of ``parse_sweep_values``: (0.0, 0.6) -> '0,0.6'."""
    return ",".join(f"{value:g}" if isinstance(value, float) else str(value) for value in values)


def _check_sweepable(setting: str) -> None:
    if setting not in SWEEPABLE:
        raise InvalidSettingError(f"cannot sweep '{setting}'; choose one of {', '.join(SWEEPABLE)}")


# --- the sheet -------------------------------------------------------------------------


def compose_sheet(panels: Sequence[Panel], title: str = "") -> Image.Image:
    """Panels in one row, each captioned, with the prompt as a title bar."""
    images = [_enlarge(p.result.image) for p in panels]
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    font = _font(max(12, w // 24))
    pad = max(8, w // 32)
    caption_h = font.size + 2 * pad if hasattr(font, "size") else 24
    title_h = caption_h if title else 0
    sheet = Image.new(
        "RGB", (len(images) * (w + pad) + pad, title_h + h + caption_h + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text(
            (pad, pad), _fit(draw, title, font, sheet.width - 2 * pad), fill="black", font=font
        )
    for i, (panel, image) in enumerate(zip(panels, images, strict=True)):
        x = pad + i * (w + pad)
        sheet.paste(image, (x, title_h))
        label = _fit(draw, panel.label, font, w)
        draw.text((x, title_h + h + pad // 2), label, fill=(40, 40, 40), font=font)
    return sheet


# --- the before/after view ------------------------------------------------------------

BEFORE_AFTER_SIDE = 512  # small images are shown this wide at least, so the divider stays thin
DIVIDER_PX = 3  # the divider: a dark line this wide, edged in white to show on any picture


def before_after(
    before: Image.Image,
    after: Image.Image,
    split: float,
    labels: tuple[str, str] = ("before", "after"),
) -> Image.Image:
    """``before`` left of ``split`` (a share of the width, 0..1), ``after`` right of it, a thin
    divider between them and each side's label in its top corner: moving ``split`` (a
    slider) reveals one image over the other. ``after`` is compared at ``before``'s size."""
    if not 0.0 <= split <= 1.0:
        raise InvalidSettingError(f"the before/after split must be from 0 to 1, got {split}")
    left = _enlarge(before.convert("RGB"), BEFORE_AFTER_SIDE)
    right = after.convert("RGB").resize(left.size, Image.NEAREST)
    x = round(split * left.width)
    view = right.copy()
    view.paste(left.crop((0, 0, x, left.height)), (0, 0))
    draw = ImageDraw.Draw(view)
    half = DIVIDER_PX // 2
    draw.rectangle((x - half - 1, 0, x + half + 1, view.height), fill="white")
    draw.rectangle((x - half, 0, x + half, view.height), fill=(24, 24, 28))
    _corner_tags(draw, view.size, x, labels)
    return view


def _corner_tags(draw: ImageDraw.ImageDraw, size: tuple[int, int], x: int,
                 labels: tuple[str, str]) -> None:  # fmt: skip
    """Each side's label in its top corner, where that side has room to show it."""
    font = _font(max(12, size[0] // 32))
    pad = max(4, size[0] // 96)
    for text, on_left in zip(labels, (True, False), strict=True):
        width = draw.textlength(text, font=font) + 2 * pad
        room = x if on_left else size[0] - x
        if not text or room < width + 2 * pad:
            continue
        x0 = pad if on_left else size[0] - pad - width
        box = (x0, pad, x0 + width, pad + getattr(font, "size", 11) + 2 * pad)
        draw.rectangle(box, fill=(24, 24, 28))
        draw.text((x0 + pad, pad + pad), text, fill="white", font=font)


def _enlarge(image: Image.Image, side: int = MIN_PANEL_SIDE) -> Image.Image:
    """Blow small images (the demo model's) up by a whole factor so labels and parts stay readable."""
    factor = -(-side // image.width)
    if factor <= 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
