"""Cut one part out of its render on white, or say why the render is not usable.

A part is drawn alone on a white background; the cut-out is its foreground, found
with the layout analyser's own background fit and foreground mask (so what counts
as "a part" here is what the board check counts later). A render is refused when
it is not one clean piece: nothing drawn, several separate pieces, the part cut
off by the frame, or a backdrop that is not white. The caller then tries the
next seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from ..analysis.layout import (
    AnalysisConfig,
    estimate_background,
    find_parts,
    foreground_mask,
    luminance,
    to_rgb_array,
)

MIN_MAIN_SHARE = 0.9  # the largest piece holds at least this share of the foreground
MIN_COVERAGE = 0.01  # the part covers at least this share of its render
FEATHER_PX = 0.6  # Gaussian radius softening the cut edge, in pixels of the render


@dataclass(frozen=True)
class Cutout:
    """A part's pixels with an alpha channel, cropped to its bounding box."""

    image: Image.Image  # RGBA
    coverage: float  # share of the render the part covered


class CutoutRejected(ValueError):
    """The render is not one clean piece on white; ``reason`` says what was wrong."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def cut_out(render: Image.Image, config: AnalysisConfig | None = None) -> Cutout:
    """The part in ``render`` as an RGBA cut-out, or ``CutoutRejected`` with the reason."""
    config = config or AnalysisConfig()
    rgb = to_rgb_array(render)
    background = estimate_background(rgb)
    if luminance(background.color) < config.light_luminance:
        raise CutoutRejected("the backdrop is not white")
    mask = foreground_mask(rgb, background, config)
    labels, parts = find_parts(mask, rgb, config)
    if not parts:
        raise CutoutRejected("nothing was drawn on the white backdrop")
    main = max(range(len(parts)), key=lambda i: parts[i].area)
    part = parts[main]
    total = sum(p.area for p in parts)
    if part.area < MIN_MAIN_SHARE * total:
        raise CutoutRejected(f"{len(parts)} separate pieces, not one part")
    if part.touches_border:
        raise CutoutRejected("the part is cut off by the edge of the frame")
    coverage = part.area / mask.size
    if coverage < MIN_COVERAGE:
        raise CutoutRejected("the part is too small to use")
    return Cutout(_crop_with_alpha(rgb, labels == main + 1, part.bbox), coverage)


def _crop_with_alpha(
    rgb: np.ndarray, piece: np.ndarray, bbox: tuple[int, int, int, int]
) -> Image.Image:
    """The piece's pixels, its mask (holes filled) as a softly feathered alpha, cropped."""
    filled = ndimage.binary_fill_holes(piece)
    alpha = Image.fromarray((filled * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(FEATHER_PX)
    )
    rgba = Image.fromarray(rgb).convert("RGBA")
    rgba.putalpha(alpha)
    return rgba.crop(bbox)
