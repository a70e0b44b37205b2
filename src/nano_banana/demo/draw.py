"""Pillow drawing of one part (shape plus second-tone detail) into a box.

Boxes are ``(x0, y0, x1, y1)`` in the pixels of the (supersampled) canvas; a
part fills its box exactly, so the box is the part's ground-truth bounding box.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .objects import RGB, Background, Detail, PartSpec

Box = tuple[float, float, float, float]

_BUTTON_COLORS: tuple[RGB, ...] = ((226, 52, 52), (52, 176, 84), (52, 110, 226), (240, 200, 40))


def draw_part(draw: ImageDraw.ImageDraw, part: PartSpec, box: Box) -> None:
    """Draw ``part`` filling ``box``, then its detail on top."""
    draw_shape(draw, part, box)
    if part.detail is not None:
        draw_detail(draw, part.detail, box)


def draw_shape(draw: ImageDraw.ImageDraw, part: PartSpec, box: Box) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    # Pillow treats the end coordinates as inclusive; shave one pixel so the shape covers w x h.
    inner = (x0, y0, x1 - 1, y1 - 1)
    if part.shape == "rect":
        draw.rectangle(inner, fill=part.color)
    elif part.shape == "rounded":
        draw.rounded_rectangle(inner, radius=0.25 * min(w, h), fill=part.color)
    elif part.shape == "capsule":
        draw.rounded_rectangle(inner, radius=0.5 * min(w, h) - 0.5, fill=part.color)
    elif part.shape == "ellipse":
        draw.ellipse(inner, fill=part.color)
    elif part.shape == "polygon":
        corners = [(x0 + u * (w - 1), y0 + v * (h - 1)) for u, v in part.points]
        draw.polygon(corners, fill=part.color)
    else:
        raise ValueError(f"part '{part.name}' has unknown shape {part.shape!r}")


def draw_detail(draw: ImageDraw.ImageDraw, detail: Detail, box: Box) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = detail.size * min(x1 - x0, y1 - y0)
    r = side / 2
    if detail.kind == "dot":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=detail.color)
    elif detail.kind == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=detail.color, width=_stroke(side))
    elif detail.kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=detail.color)
    elif detail.kind == "bar":
        half = detail.size * (y1 - y0) / 2
        draw.rectangle((x0 + 0.15 * (x1 - x0), cy - half, x1 - 0.15 * (x1 - x0), cy + half),
                       fill=detail.color)  # fmt: skip
    elif detail.kind == "stripes":
        _draw_stripes(draw, detail, box)
    elif detail.kind == "buttons4":
        _draw_buttons(draw, detail, box)
    else:
        raise ValueError(f"unknown detail {detail.kind!r}")


def _stroke(side: float) -> int:
    return max(1, round(side * 0.18))


def _draw_stripes(draw: ImageDraw.ImageDraw, detail: Detail, box: Box) -> None:
    """Three bold horizontal bars across the middle of the box."""
    x0, y0, x1, y1 = box
    h = (y1 - y0) * detail.size
    top = (y0 + y1 - h) / 2
    bar = h / 5  # bar, gap, bar, gap, bar
    left, right = x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0)
    for i in range(3):
        y = top + 2 * i * bar
        draw.rectangle((left, y, right, y + bar), fill=detail.color)


def _draw_buttons(draw: ImageDraw.ImageDraw, detail: Detail, box: Box) -> None:
    """Four coloured buttons in a diamond (top, right, bottom, left), inside the part."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    reach = detail.size * min(x1 - x0, y1 - y0) / 2  # centre to the outer edge of a button
    r = reach * 0.36
    d = reach - r
    for (dx, dy), color in zip(((0, -1), (1, 0), (0, 1), (-1, 0)), _BUTTON_COLORS, strict=True):
        bx, by = cx + dx * d, cy + dy * d
        draw.ellipse((bx - r, by - r, bx + r, by + r), fill=color)


def background_image(background: Background, size: tuple[int, int]) -> Image.Image:
    """A solid or top-to-bottom gradient canvas of ``size`` (width, height)."""
    w, h = size
    top = np.array(background.top, dtype=np.float32)
    bottom = np.array(background.bottom, dtype=np.float32)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    rows = top * (1 - t) + bottom * t
    pixels = np.broadcast_to(rows, (h, w, 3))
    return Image.fromarray(np.rint(pixels).astype(np.uint8), "RGB")
