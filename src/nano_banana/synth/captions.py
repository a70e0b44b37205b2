"""Captions of synthesized boards, written from their plans in the presets' wording.

The plan knows exactly what a board shows, so its caption can say so: the object,
its parts by name, and (for an exploded view) the axis. Every style starts with
the preset's trigger words, because that is what a LoRA trained on the set
learns to answer, and what the preset sends at generation time.

* ``preset``: the preset's own prompt around the object, the words users send;
* ``parts``: the preset's prompt with the parts named in layout order;
* ``short``: the trigger words and the object only.
"""

from __future__ import annotations

from ..errors import InvalidSettingError
from ..parts.plan import BoardPlan
from ..prompt.presets import Preset

CAPTION_STYLES = ("preset", "parts", "short")
DEFAULT_STYLES = CAPTION_STYLES


def caption(plan: BoardPlan, preset: Preset, style: str) -> str:
    """The caption of a board drawn from ``plan`` with ``preset``, in ``style``."""
    if style == "preset":
        return preset.render(plan.phrase)
    if style == "parts":
        return preset.render(f"{plan.phrase}, {plan.pieces}: {', '.join(layout_names(plan))}")
    if style == "short":
        return ", ".join(t for t in (preset.trigger, plan.phrase) if t)
    raise InvalidSettingError(caption_style_error(style))


def layout_names(plan: BoardPlan) -> list[str]:
    """The parts' names in reading order (top to bottom, then left to right), one per piece."""
    ordered = sorted(plan.parts, key=lambda p: (p.box[1], p.box[0]))
    return [p.name for p in ordered]


def parse_styles(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Caption styles from a comma-separated string or a list, each checked."""
    items = text.split(",") if isinstance(text, str) else list(text)
    styles = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    for style in styles:
        if style not in CAPTION_STYLES:
            raise InvalidSettingError(caption_style_error(style))
    if not styles:
        raise InvalidSettingError(
            f"no caption style given; choose from {', '.join(CAPTION_STYLES)}"
        )
    return styles


def caption_style_error(style: str) -> str:
    return f"unknown caption style {style!r}; choose from {', '.join(CAPTION_STYLES)}"
