"""Layout analysis: is a picture a disassembled layout (knolling or exploded view)?

No model is involved. The steps, each a function below:

1. ``estimate_background``: fit the background colour (a plane per channel, so
   gradients are fine) to the image border, and measure its noise.
2. ``foreground_mask``: pixels far from the background, each region cut at half
   its own contrast (where a blurred edge really is), with a light denoise
   (median filter on noisy images, a 3x3 opening, holes filled).
3. ``find_parts``: 8-connected components of the mask, minus specks; parts
   that touch each other merge into one component, which is how touching shows.
   ``find_merges`` then looks inside each component for signs of several parts
   joined: a narrow neck between thick pieces, or two flat colours meeting along
   a straight seam (details in its docstring).
4. ``measure_gaps``: the smallest gap between two parts, in pixels.
5. ``find_arrangement``: rows and columns are the bands where parts' vertical
   (horizontal) extents overlap; a *grid* has >= 2 rows and >= 2 columns with at
   most one part per cell, an *axis* has every part in one row (horizontal) or
   one column (vertical); both need the parts aligned within each band.
6. ``judge``: the verdict and a 0-100 score (formula in ``judge``'s docstring).

The CLI (``analyze``, ``annotate``), the studio and the evaluations all call
``analyze_layout``; the CLI and the studio word its report with ``describe_report``.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from ..errors import ImageAnalysisError, InvalidSettingError

ARRANGEMENTS = ("grid", "axis", "none")
VERDICT_YES = "disassembled layout"
VERDICT_NO = "not a disassembled layout"
MIN_IMAGE_SIDE = 16


@dataclass(frozen=True)
class AnalysisConfig:
    """Thresholds of the analysis; the defaults suit 128 px renders and 1024 px photos alike."""

    threshold: float = 48.0  # RGB distance (0..441) from the background that makes a pixel a part
    noise_factor: float = 4.5  # on noisy images the threshold rises to this many noise sigmas
    min_area_fraction: float = 0.001  # smaller components are specks (16 px at 128²)
    min_parts: int = 3  # a layout needs this many parts; one object, or two, is not a layout
    min_gap_fraction: float = 0.0075  # closer parts touch (share of the shorter side; >= 1 px)
    light_luminance: float = 0.6  # background luminance 0..1 from which a background is light
    max_misalignment: float = 0.2  # allowed spread of aligned edges in a band, of the band's size
    min_grid_fill: float = 0.5  # share of grid cells that must hold a part
    edge_level: float = 0.5  # a region's edge is where it reaches this share of its contrast
    band_shrink: float = 0.1  # extents shrink by this share per side before banding (blur slack)
    work_side: int = 512  # larger images are analysed downscaled to this longer side (speed)
    # A part whose thick core falls apart where it is thinner than this share of its thickest
    # point may be pieces joined by a neck ...
    neck_level: float = 0.5
    # ... when, across the line between two pieces' centres, the part is at most this share as
    # wide at the neck as at either centre. Measured: the demo model's merged blobs 0.48-0.67,
    # a headband's arch 0.8. Of 1683 clean parts in the demo world (128-384 px) one is flagged:
    # a headband squeezed into a vertical exploded view at 128 px, its arch thinned to 0.67.
    neck_width: float = 0.7
    # One straight cut that explains this share of a part's colour variance is a seam between
    # two flat colours: two touching parts. Clean demo parts score at most 0.31, since their
    # own marks sit inside them, and a smooth shading ramp scores 0.75.
    seam_share: float = 0.85
    seam_min_side: float = 0.2  # each side of a seam holds at least this share of the part

    def __post_init__(self) -> None:
        checks = {
            "threshold": 0 < self.threshold < 442,
            "noise_factor": self.noise_factor >= 0,
            "min_area_fraction": 0 <= self.min_area_fraction < 1,
            "min_parts": self.min_parts >= 2,
            "min_gap_fraction": 0 <= self.min_gap_fraction < 1,
            "light_luminance": 0 <= self.light_luminance <= 1,
            "max_misalignment": 0 < self.max_misalignment <= 1,
            "min_grid_fill": 0 < self.min_grid_fill <= 1,
            "edge_level": 0 <= self.edge_level < 1,
            "band_shrink": 0 <= self.band_shrink < 0.5,
            "work_side": self.work_side >= 64,
            "neck_level": 0 < self.neck_level < 1,
            "neck_width": 0 < self.neck_width < 1,
            "seam_share": 0 < self.seam_share <= 1,
            "seam_min_side": 0 < self.seam_min_side < 0.5,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidSettingError(f"analysis setting(s) out of range: {', '.join(bad)}")


@dataclass(frozen=True)
class Part:
    """One separate part, in the pixels of the analysed image."""

    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1; x1/y1 exclusive
    area: int  # pixels
    centroid: tuple[float, float]  # x, y
    anchor: tuple[float, float]  # a pixel of the part nearest its centroid (leader lines end here)
    color: tuple[int, int, int]  # median colour
    touches_border: bool

    @property
    def width(self) -> int:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> int:
        return self.bbox[3] - self.bbox[1]


@dataclass(frozen=True)
class MergedPart:
    """A found part that looks like several parts joined into one (``find_merges``)."""

    part: int  # index into the report's parts (reading order; its callout number is part + 1)
    pieces: int  # how many parts it seems to hold
    cue: str  # what gave it away, in words

    @property
    def text(self) -> str:
        return f"{self.pieces} parts may be merged in part {self.part + 1} ({self.cue})"


@dataclass(frozen=True)
class Arrangement:
    """How the parts are laid out: rows and columns found, and how well they line up."""

    kind: str  # one of ARRANGEMENTS
    axis: str | None  # "horizontal" / "vertical" for kind "axis"
    rows: int
    columns: int
    misalignment: float  # worst spread of aligned edges in a band, of the band's size
    gap_cv: float | None  # coefficient of variation of the gaps between bands
    reason: str | None = None  # why it is "none"


@dataclass(frozen=True)
class LayoutReport:
    """Everything the analysis found, the verdict and the score (see ``judge``)."""

    width: int
    height: int
    parts: tuple[Part, ...]  # in reading order: rows top to bottom, left to right in a row
    background: tuple[int, int, int]
    background_luminance: float  # 0..1
    background_light: bool
    background_cleanliness: float  # 0..1: whiteness x share of background pixels that are flat
    min_gap_px: float | None  # smallest gap between two parts; None with fewer than two
    separation: float  # 0..1
    arrangement: str  # "grid", "axis" or "none"
    axis: str | None  # "horizontal" / "vertical" when arrangement is "axis"
    rows: int
    columns: int
    alignment: float  # 0..1; 0 when there is no arrangement
    gap_cv: float | None
    gap_evenness: float  # 0..1
    verdict: bool
    score: int  # 0..100; >= 50 exactly when verdict is True
    reasons: tuple[str, ...] = field(default=())  # why the verdict is no, and other remarks
    merged: tuple[MergedPart, ...] = field(default=())  # parts that may be several joined

    @property
    def part_count(self) -> int:
        return len(self.parts)

    @property
    def verdict_text(self) -> str:
        return VERDICT_YES if self.verdict else VERDICT_NO

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["part_count"] = self.part_count
        data["verdict_text"] = self.verdict_text
        data["parts"] = [{**asdict(p), "width": p.width, "height": p.height} for p in self.parts]
        data["reasons"] = list(self.reasons)
        data["merged"] = [{**asdict(m), "text": m.text} for m in self.merged]
        return data


@dataclass(frozen=True)
class BackgroundModel:
    field: np.ndarray  # H x W x 3 float32, the fitted background colour at every pixel
    color: tuple[int, int, int]  # median border colour
    noise: float  # robust per-channel standard deviation of the border around the fit


def describe_report(report: LayoutReport, no_arrangement: str = "none") -> dict[str, str]:
    """The report's measures in words, labelled, in reading order (the CLI's table, the studio).

    ``no_arrangement`` words a report without one: the CLI's table says "none", the
    studio's caption something friendlier.
    """
    gap = "-" if report.min_gap_px is None else f"{report.min_gap_px:.0f} px"
    r, g, b = report.background
    shade = "light" if report.background_light else "dark"
    return {
        "verdict": "yes" if report.verdict else "no",
        "layout score": f"{report.score}/100",
        "parts": str(report.part_count),
        "arrangement": describe_arrangement(report, no_arrangement),
        "separation": f"{report.separation:.2f} (smallest gap {gap})",
        "alignment": f"{report.alignment:.2f}",
        "gap evenness": f"{report.gap_evenness:.2f}",
        "background": (
            f"#{r:02x}{g:02x}{b:02x}, {shade}, cleanliness {report.background_cleanliness:.2f}"
        ),
    }


def describe_arrangement(report: LayoutReport, no_arrangement: str = "none") -> str:
    """'grid, 2 rows x 3 columns', 'parts along one axis (horizontal)' or ``no_arrangement``."""
    if report.arrangement == "grid":
        return f"grid, {report.rows} rows x {report.columns} columns"
    if report.arrangement == "axis":
        return f"parts along one axis ({report.axis})"
    return no_arrangement


# --- public entry point -------------------------------------------------------------------


def analyze_layout(
    image: str | Path | Image.Image | np.ndarray, config: AnalysisConfig | None = None
) -> LayoutReport:
    """Analyse the layout of ``image`` (a path, a PIL image or an H x W x 3 uint8 array)."""
    config = config or AnalysisConfig()
    rgb = to_rgb_array(image)
    height, width = rgb.shape[:2]
    work, factor = _downscale(rgb, config.work_side)
    if _noise_sigma(work) > 3.0:  # median-filter noise away before thresholding
        work = ndimage.median_filter(work, size=(3, 3, 1))
    background = estimate_background(work)
    mask = foreground_mask(work, background, config)
    labels, parts = find_parts(mask, work, config)
    merged = find_merges(labels, work, config)
    gap = measure_gaps(labels, parts)
    arrangement = find_arrangement(parts, config)
    cleanliness = background_cleanliness(work, background, labels)
    parts = tuple(_rescale_part(p, factor, width, height) for p in parts)
    gap = None if gap is None else gap / factor
    return judge(parts, (width, height), background, cleanliness, gap, arrangement, config,
                 merged)  # fmt: skip


def load_image(path: str | Path) -> Image.Image:
    """Open an image file for analysis, or raise ``ImageAnalysisError`` naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise ImageAnalysisError(f"image '{path}' does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its pixel limit and twice it; an image that large
            # is no layout to analyse, and decoding it could take all memory.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return ImageOps.exif_transpose(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageAnalysisError(
            f"'{path}' is too large to analyse ({' '.join(str(exc).split())[:160]})"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageAnalysisError(f"'{path}' is not a readable image ({exc})") from None


def to_rgb_array(image: str | Path | Image.Image | np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 array; transparency is composited onto white."""
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(_as_uint8(image))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if min(rgb.shape[:2]) < MIN_IMAGE_SIDE:
        raise ImageAnalysisError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} px; "
            f"at least {MIN_IMAGE_SIDE} px a side is needed"
        )
    return rgb


# --- 1. background --------------------------------------------------------------------------


def estimate_background(rgb: np.ndarray) -> BackgroundModel:
    """Fit ``colour = a*x + b*y + c`` per channel to the border, ignoring parts that cross it."""
    h, w = rgb.shape[:2]
    band = max(1, round(0.02 * min(h, w)))
    border = np.zeros((h, w), dtype=bool)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    ys, xs = np.nonzero(border)
    values = rgb[border].astype(np.float32)
    median = np.median(values, axis=0)
    design = np.stack([xs / w, ys / h, np.ones_like(xs, dtype=np.float64)], axis=1)
    keep = np.linalg.norm(values - median, axis=1) <= 40.0
    coef = np.zeros((3, 3))
    coef[2] = median
    for _ in range(2):  # fit, drop the border pixels far from the fit (parts), refit
        if keep.sum() < max(12, 0.1 * len(values)):
            break
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = np.linalg.norm(values - design @ coef, axis=1)
        keep = residual <= max(12.0, 3.0 * float(np.median(residual[keep])) * 1.4826)
    yy, xx = np.mgrid[0:h, 0:w]
    fitted = (xx[..., None] / w) * coef[0] + (yy[..., None] / h) * coef[1] + coef[2]
    noise = _robust_std(values[keep] - (design @ coef)[keep]) if keep.any() else 0.0
    color = tuple(int(round(float(c))) for c in np.clip(median, 0, 255))
    return BackgroundModel(fitted.astype(np.float32), color, noise)


def luminance(color: tuple[int, int, int] | np.ndarray) -> float:
    """Relative luminance 0..1 (Rec. 709 weights on the 0..255 values)."""
    r, g, b = (float(c) for c in color)
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0


# --- 2-3. foreground and parts ------------------------------------------------------------


def foreground_mask(
    rgb: np.ndarray, background: BackgroundModel, config: AnalysisConfig
) -> np.ndarray:
    """Pixels far from the background: a low threshold finds candidate regions, then each
    region loses its faint rim, cut at half its own contrast (``edge_level``), which is
    where a blurred edge really is.

    The second cut separates parts that blur has joined through a light gap, while
    parts that really touch (no light gap between them) stay one region.
    """
    distance = np.linalg.norm(rgb.astype(np.float32) - background.field, axis=2)
    low = max(config.threshold, config.noise_factor * background.noise)
    candidates = _open(distance > low)
    labels, _ = ndimage.label(candidates, structure=np.ones((3, 3), dtype=bool))
    mask = np.zeros_like(candidates)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        local = labels[box] == index
        level = max(low, config.edge_level * float(np.median(distance[box][local])))
        mask[box] |= local & ~_bays(local, distance[box] <= level)
    return ndimage.binary_fill_holes(_open(mask))


def _bays(region: np.ndarray, faint: np.ndarray) -> np.ndarray:
    """Faint pixels of ``region`` that the outside reaches through faint pixels.

    These are blurred edges and blurred gaps between parts. Faint marks enclosed
    by a part (a pale ring on a dark lens cap) are not reached and stay in the part.
    """
    passable = np.pad(~region | faint, 1, constant_values=True)
    reached, _ = ndimage.label(passable)  # 4-connected: no leaking through corners
    outside = reached[0, 0]
    return (reached[1:-1, 1:-1] == outside) & region


def _open(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_opening(mask, structure=np.ones((3, 3), dtype=bool))


def find_parts(
    mask: np.ndarray, rgb: np.ndarray, config: AnalysisConfig
) -> tuple[np.ndarray, list[Part]]:
    """Label 8-connected components, drop specks; parts come back in reading order.

    The returned label image numbers the kept parts 1..N in that order (0 elsewhere).
    """
    raw, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    h, w = mask.shape
    min_area = max(4, config.min_area_fraction * h * w)
    parts: list[Part] = []
    ids: list[int] = []
    for index, box in enumerate(ndimage.find_objects(raw), start=1):
        if box is None:
            continue
        local = raw[box] == index
        area = int(local.sum())
        if area < min_area:
            continue
        parts.append(_describe_part(local, box, rgb, (h, w)))
        ids.append(index)
    order = reading_order(parts)
    labels = np.zeros((h, w), dtype=np.int32)
    for new, old in enumerate(order, start=1):
        labels[raw == ids[old]] = new
    return labels, [parts[i] for i in order]


def _describe_part(local: np.ndarray, box: tuple[slice, slice], rgb: np.ndarray, shape) -> Part:
    ys, xs = np.nonzero(local)
    y0, x0 = box[0].start, box[1].start
    cx, cy = float(xs.mean()) + x0, float(ys.mean()) + y0
    nearest = int(np.argmin((xs + x0 - cx) ** 2 + (ys + y0 - cy) ** 2))
    color = np.median(rgb[box][local], axis=0)
    bbox = (x0, y0, box[1].stop, box[0].stop)
    touches = bbox[0] == 0 or bbox[1] == 0 or bbox[2] == shape[1] or bbox[3] == shape[0]
    return Part(
        bbox=bbox,
        area=int(local.sum()),
        centroid=(cx, cy),
        anchor=(float(xs[nearest] + x0), float(ys[nearest] + y0)),
        color=tuple(int(c) for c in color),
        touches_border=bool(touches),
    )


def reading_order(parts: list[Part], shrink: float = 0.1) -> list[int]:
    """Indices of ``parts`` row by row (rows are overlapping vertical extents), left to right."""
    if not parts:
        return []
    row_of, _ = bands([(p.bbox[1], p.bbox[3]) for p in parts], shrink)
    return sorted(range(len(parts)), key=lambda i: (row_of[i], parts[i].centroid[0]))


# --- 3b. merged parts -------------------------------------------------------------------------

MIN_LOBE_PX = 2.0  # a piece thinner than this (half-thickness, px) is an edge, not a part
SEAM_CORE_PX = 30  # fewer pixels left after dropping a part's rim: judge the seam on all of it


def find_merges(
    labels: np.ndarray, rgb: np.ndarray, config: AnalysisConfig
) -> tuple[MergedPart, ...]:
    """Parts (labels 1..N, reading order) that look like several parts joined into one.

    Touching parts become one component (step 3), and their gap is then never
    measured, so a layout of merged blobs looked clean. Two cues, each true of
    joined parts and false of the single flat parts a layout shows:

    * a neck (``neck_pieces``): the part's thick core, where it is at least
      ``neck_level`` of its thickest, falls into pieces joined by a waist (at most
      ``neck_width`` as wide as the pieces). A convex part never falls apart (its
      thickness map has one summit); two blobs touching do.
    * a colour seam (``colour_seam``): one straight cut (a row or column
      boundary, as the layout's own axes run) splits the part into two sides of
      different flat colours. A part's own marks sit inside it, so no cut
      separates them.

    Size is no cue: a layout's parts differ in size on purpose (a game
    controller's body is 18x the median of its parts in the demo world). Parts of
    one colour touching along a straight edge look like one part and are missed.
    """
    merged = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        local = labels[box] == index + 1
        pieces = neck_pieces(local, config.neck_level, config.neck_width)
        if pieces >= 2:
            merged.append(MergedPart(index, pieces, "a narrow neck joins them"))
        elif colour_seam(local, rgb[box], config):
            merged.append(MergedPart(index, 2, "two colours meet along a straight seam"))
    return tuple(merged)


def neck_pieces(region: np.ndarray, level: float, width: float) -> int:
    """How many thick pieces ``region`` holds, joined to each other by necks.

    The pieces are the 8-connected parts of its core (pixels at least ``level`` x its
    greatest distance to the outside) that are themselves thick: the usual way to split
    touching round objects, the peaks of the distance transform marking the objects
    (Soille, *Morphological Image Analysis*, ch. 9). Two pieces are joined by a neck when
    the straight line between their centres stays inside the region and, across that line,
    the region is at most ``width`` as wide between them as at either centre: touching parts
    meet between their centres through a waist, while a U-shaped part (a headband) joins its
    thick ends round a hollow, or round a bend as wide as its arms. The answer is the
    largest group of pieces so joined.
    """
    padded = np.pad(region, 1)
    depth = ndimage.distance_transform_edt(padded)
    peak = float(depth.max())
    if peak < MIN_LOBE_PX:
        return 1
    cores, count = ndimage.label(depth > level * peak, structure=np.ones((3, 3), dtype=bool))
    if count < 2:
        return 1
    labels = range(1, count + 1)
    thick = [i for i, p in zip(labels, ndimage.maximum(depth, cores, labels), strict=True)
             if p >= MIN_LOBE_PX]  # fmt: skip
    centres = ndimage.maximum_position(depth, cores, thick)
    group = list(range(len(centres)))  # union-find over "joined by a neck"
    for a in range(len(centres)):
        for b in range(a + 1, len(centres)):
            if _neck_between(padded, centres[a], centres[b], width):
                group[_root(group, b)] = _root(group, a)
    roots = [_root(group, i) for i in range(len(centres))]
    return max((roots.count(r) for r in set(roots)), default=1)


def _root(group: list[int], i: int) -> int:
    while group[i] != i:
        i = group[i]
    return i


def _neck_between(region: np.ndarray, a, b, width: float) -> bool:
    """Whether the segment from ``a`` to ``b`` (row, column) runs inside ``region`` (a pixel's
    slack at a blurred neck) through a waist at most ``width`` as wide as either end."""
    start, end = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    length = float(np.hypot(*(end - start)))
    steps = int(length) + 1
    points = [start + (end - start) * i / steps for i in range(steps + 1)]
    inside = [region[tuple(np.rint(p).astype(int))] for p in points]
    if steps < 2 or len(inside) - sum(inside) > 1:
        return False
    normal = np.array([start[1] - end[1], end[0] - start[0]]) / length
    widths = [_chord(region, p, normal) for p in points]
    return min(widths[1:-1]) <= width * min(widths[0], widths[-1])


def _chord(region: np.ndarray, point: np.ndarray, direction: np.ndarray) -> int:
    """The run of region pixels through ``point`` along ``direction`` (both ways), in pixels."""
    run = 0
    for sign, start in ((1, 0), (-1, 1)):
        t = start
        while True:
            y, x = np.rint(point + sign * t * direction).astype(int)
            if not (0 <= y < region.shape[0] and 0 <= x < region.shape[1]) or not region[y, x]:
                break
            run, t = run + 1, t + 1
    return run


def colour_seam(region: np.ndarray, rgb: np.ndarray, config: AnalysisConfig) -> bool:
    """Whether one cut between two columns (or rows) of ``region`` splits it into two sides
    whose mean colours explain at least ``seam_share`` of its colour variance (eta squared,
    the between-groups share of a one-way ANOVA), lie ``threshold`` apart (as far as a part
    from the background) and each hold ``seam_min_side`` of its pixels.

    The part's blurred rim is left out where enough remains, so edges do not count."""
    core = ndimage.binary_erosion(region)
    if core.sum() < SEAM_CORE_PX:
        core = region
    ys, xs = np.nonzero(core)
    colours = rgb[core].astype(np.float64)
    mean = colours.mean(axis=0)
    total = float(((colours - mean) ** 2).sum())
    if total <= 0:  # one flat colour
        return False
    return any(_seam_along(coord, colours, mean, total, config) for coord in (xs, ys))


def _seam_along(coord, colours, mean, total: float, config: AnalysisConfig) -> bool:
    order = np.argsort(coord, kind="stable")
    coord, colours = coord[order], colours[order]
    n = len(colours)
    left_n = np.nonzero(np.diff(coord))[0] + 1  # pixels left of each cut between positions
    left_n = left_n[(left_n >= config.seam_min_side * n) & (n - left_n >= config.seam_min_side * n)]
    if not len(left_n):
        return False
    sums = np.cumsum(colours, axis=0)
    left = sums[left_n - 1] / left_n[:, None]
    right = (sums[-1] - sums[left_n - 1]) / (n - left_n)[:, None]
    between = left_n * ((left - mean) ** 2).sum(1) + (n - left_n) * ((right - mean) ** 2).sum(1)
    best = int(np.argmax(between))
    apart = float(np.linalg.norm(left[best] - right[best]))
    return between[best] / total >= config.seam_share and apart >= config.threshold


# --- 4. gaps ----------------------------------------------------------------------------------


def measure_gaps(labels: np.ndarray, parts: list[Part]) -> float | None:
    """The smallest gap in pixels between two parts (background pixels on the shortest line).

    Exact (a distance transform) for pairs whose boxes are near; box distance otherwise.
    """
    if len(parts) < 2:
        return None
    if len(parts) > 60:  # noise, not a layout: box distances are enough
        return min(_box_gap(a.bbox, b.bbox) for i, a in enumerate(parts) for b in parts[i + 1 :])
    best = float("inf")
    for i, a in enumerate(parts):
        for j in range(i + 1, len(parts)):
            box_gap = _box_gap(a.bbox, parts[j].bbox)
            if box_gap >= best:
                continue
            best = min(best, _exact_gap(labels, i + 1, j + 1, a.bbox, parts[j].bbox))
    return best


def _box_gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    dx = max(0, b[0] - a[2], a[0] - b[2])
    dy = max(0, b[1] - a[3], a[1] - b[3])
    return float(np.hypot(dx, dy))


def _exact_gap(labels: np.ndarray, la: int, lb: int, a, b) -> float:
    x0, y0 = max(0, min(a[0], b[0]) - 1), max(0, min(a[1], b[1]) - 1)
    x1, y1 = max(a[2], b[2]) + 1, max(a[3], b[3]) + 1
    region = labels[y0:y1, x0:x1]
    distance = ndimage.distance_transform_edt(region != la)
    return float(distance[region == lb].min()) - 1.0


# --- 5. arrangement -------------------------------------------------------------------------


def bands(
    intervals: list[tuple[float, float]], shrink: float
) -> tuple[list[int], list[tuple[float, float]]]:
    """Group 1-D extents into bands of overlapping extents (rows or columns).

    Each extent first shrinks by ``shrink`` of its length per side, so parts whose
    blurry edges just overlap stay in separate bands. Returns each extent's band
    index (bands sorted by position) and each band's true (unshrunk) extent.
    """
    shrunk = [(a + shrink * (b - a), b - shrink * (b - a)) for a, b in intervals]
    order = sorted(range(len(intervals)), key=lambda i: shrunk[i][0])
    band_of = [0] * len(intervals)
    extents: list[tuple[float, float]] = []
    reach = -np.inf
    for i in order:
        start, end = shrunk[i]
        if start >= reach:  # no overlap with the current band: start a new one
            extents.append(intervals[i])
            reach = end
        else:
            lo, hi = extents[-1]
            extents[-1] = (min(lo, intervals[i][0]), max(hi, intervals[i][1]))
            reach = max(reach, end)
        band_of[i] = len(extents) - 1
    return band_of, extents


def find_arrangement(parts: list[Part], config: AnalysisConfig) -> Arrangement:
    """Rows, columns, and whether they make a grid or one axis (module docstring, step 5)."""
    n = len(parts)
    row_of, row_ext = bands([(p.bbox[1], p.bbox[3]) for p in parts], config.band_shrink)
    col_of, col_ext = bands([(p.bbox[0], p.bbox[2]) for p in parts], config.band_shrink)
    rows, cols = len(row_ext), len(col_ext)
    if n < 2:
        return Arrangement("none", None, rows, cols, 0.0, None, "fewer than two parts")
    row_spread = _spread(parts, row_of, row_ext, vertical=True)
    col_spread = _spread(parts, col_of, col_ext, vertical=False)
    if rows == 1 and cols == n:
        kind, axis, spread, gaps = "axis", "horizontal", row_spread, [_gaps(col_ext)]
    elif cols == 1 and rows == n:
        kind, axis, spread, gaps = "axis", "vertical", col_spread, [_gaps(row_ext)]
    else:
        kind, axis = "grid", None
        spread = max(row_spread, col_spread)
        gaps = [_gaps(row_ext), _gaps(col_ext)]
        reason = _grid_problem(row_of, col_of, rows, cols, config)
        if reason:
            return Arrangement("none", None, rows, cols, spread, None, reason)
    if spread > config.max_misalignment:
        reason = f"parts are out of line (edges spread over {spread:.0%} of a row or column)"
        return Arrangement("none", None, rows, cols, spread, None, reason)
    return Arrangement(kind, axis, rows, cols, spread, _mean_cv(gaps))


def _grid_problem(row_of, col_of, rows: int, cols: int, config: AnalysisConfig) -> str | None:
    cells = list(zip(row_of, col_of, strict=True))
    if rows < 2 or cols < 2:
        return "parts are neither in one line nor in rows and columns"
    if len(set(cells)) < len(cells):
        return "parts overlap in rows and columns (no clear grid)"
    if (
        max(row_of.count(r) for r in range(rows)) < 2
        or max(col_of.count(c) for c in range(cols)) < 2
    ):
        return "parts are scattered diagonally, not in rows and columns"
    if len(cells) < config.min_grid_fill * rows * cols:
        return f"only {len(cells)} of {rows}x{cols} grid cells hold a part (scattered)"
    return None


def _spread(parts: list[Part], band_of: list[int], extents, vertical: bool) -> float:
    """Worst misalignment over bands with two or more parts, as a share of the band's size.

    A band's parts may line up by their start edges, centres or end edges; the best of
    the three counts (knolling is often centred, a row of tools is often bottom-aligned).
    """
    lo_i, hi_i = (1, 3) if vertical else (0, 2)
    worst = 0.0
    for band, (lo, hi) in enumerate(extents):
        members = [p for p, b in zip(parts, band_of, strict=True) if b == band]
        if len(members) < 2 or hi <= lo:
            continue
        starts = np.array([p.bbox[lo_i] for p in members], dtype=float)
        ends = np.array([p.bbox[hi_i] for p in members], dtype=float)
        spreads = [np.ptp(starts), np.ptp((starts + ends) / 2), np.ptp(ends)]
        worst = max(worst, min(spreads) / (hi - lo))
    return float(worst)


def _gaps(extents: list[tuple[float, float]]) -> list[float]:
    ordered = sorted(extents)
    return [b[0] - a[1] for a, b in zip(ordered, ordered[1:], strict=False)]


def _mean_cv(gap_lists: list[list[float]]) -> float | None:
    """Mean over directions of the gaps' coefficient of variation (std / mean)."""
    cvs = []
    for gaps in gap_lists:
        if not gaps:
            continue
        mean = float(np.mean(gaps))
        cvs.append(1.0 if mean <= 0 else float(np.std(gaps)) / mean)
    return float(np.mean(cvs)) if cvs else None


# --- background cleanliness ------------------------------------------------------------


def background_cleanliness(
    rgb: np.ndarray, background: BackgroundModel, labels: np.ndarray
) -> float:
    """Whiteness x flatness of everything that is not a part.

    whiteness = clip((L - 0.55) / 0.35, 0, 1) for background luminance L (white is 1);
    flatness = share of non-part pixels within 16 RGB units of the fitted background
    (noise, specks, shadows and stains all lower it).
    """
    near_parts = ndimage.binary_dilation(labels > 0, iterations=2)
    rest = ~near_parts
    if not rest.any():
        return 0.0
    distance = np.linalg.norm(rgb[rest].astype(np.float32) - background.field[rest], axis=1)
    flatness = float((distance <= 16.0).mean())
    whiteness = float(np.clip((luminance(background.color) - 0.55) / 0.35, 0.0, 1.0))
    return whiteness * flatness


# --- 6. verdict and score --------------------------------------------------------------------


def judge(
    parts: tuple[Part, ...],
    size: tuple[int, int],
    background: BackgroundModel,
    cleanliness: float,
    min_gap: float | None,
    arrangement: Arrangement,
    config: AnalysisConfig,
    merged: tuple[MergedPart, ...] = (),
) -> LayoutReport:
    """The verdict and the score.

    Verdict "disassembled layout" needs all of: a light background, at least
    ``min_parts`` separate parts, no two parts closer than the touching distance,
    and a grid or axis arrangement.

    score = 50 * verdict + 50 * quality * seen, capped at 49 without the verdict, where
    quality = 0.15 count + 0.25 separation + 0.30 alignment + 0.15 evenness + 0.15 cleanliness:
      count      = min(1, (N - 1) / min_parts), 0 below two parts;
      separation = min(1, gap / (2 * touching distance)), halved if a part touches the border,
                   0 if a part may be several merged (``find_merges``: their gap is nothing);
      alignment  = 1 - misalignment / (2 * max_misalignment), 0 without an arrangement;
      evenness   = 1 - 2 * gap_cv, clipped to 0..1 (gap_cv: std / mean of the gaps between bands);
      cleanliness: see ``background_cleanliness``;
    seen = the share of the parts seen apart, counting a merged part as the pieces it seems
      to hold (4 parts found, one of them 2 merged: 3 of 5 seen, 0.6). The quality was
      measured on blobs, not parts, so only that share of it is earned.

    Merges are a likely reading, not a measurement, so they lower the score and are
    reported but do not decide the verdict (the board check, which knows the plan, finds
    merged parts itself).
    """
    width, height = size
    n = len(parts)
    lum = luminance(background.color)
    light = lum >= config.light_luminance
    touching = max(1.0, config.min_gap_fraction * min(width, height))
    reasons = _reasons(n, light, lum, min_gap, touching, arrangement, config)
    verdict = not reasons
    if any(p.touches_border for p in parts):
        reasons.append("a part touches the image border")
    reasons += [m.text for m in merged]

    count_term = 0.0 if n < 2 else min(1.0, (n - 1) / config.min_parts)
    separation = 0.0 if min_gap is None else min(1.0, max(0.0, min_gap) / (2 * touching))
    if any(p.touches_border for p in parts):
        separation *= 0.5
    if merged:
        separation = 0.0
    alignment, evenness, cv = _layout_terms(arrangement, config)
    quality = (0.15 * count_term + 0.25 * separation + 0.30 * alignment + 0.15 * evenness
               + 0.15 * cleanliness)  # fmt: skip
    score = int(round(50 * verdict + 50 * quality * seen_share(n, merged)))
    if not verdict:
        score = min(score, 49)
    return LayoutReport(
        width=width,
        height=height,
        parts=parts,
        background=background.color,
        background_luminance=round(lum, 4),
        background_light=light,
        background_cleanliness=round(cleanliness, 4),
        min_gap_px=None if min_gap is None else round(min_gap, 2),
        separation=round(separation, 4),
        arrangement=arrangement.kind,
        axis=arrangement.axis,
        rows=arrangement.rows,
        columns=arrangement.columns,
        alignment=round(alignment, 4),
        gap_cv=None if cv is None else round(cv, 4),
        gap_evenness=round(evenness, 4),
        verdict=verdict,
        score=score,
        reasons=tuple(reasons),
        merged=merged,
    )


def seen_share(found: int, merged: tuple[MergedPart, ...]) -> float:
    """The share of the parts seen apart when ``merged`` of the ``found`` parts hold several."""
    if not merged:
        return 1.0
    hidden = sum(m.pieces for m in merged)
    return (found - len(merged)) / (found - len(merged) + hidden)


def _layout_terms(
    arrangement: Arrangement, config: AnalysisConfig
) -> tuple[float, float, float | None]:
    """(alignment, evenness, gap_cv) of the score; alignment and evenness are 0 without a layout."""
    if arrangement.kind == "none":
        return 0.0, 0.0, None
    alignment = max(0.0, 1.0 - arrangement.misalignment / (2 * config.max_misalignment))
    cv = arrangement.gap_cv
    evenness = 1.0 if cv is None else float(np.clip(1 - 2 * cv, 0, 1))
    return alignment, evenness, cv


def _reasons(n, light, lum, min_gap, touching, arrangement, config) -> list[str]:
    reasons = []
    if not light:
        reasons.append(
            f"the background is dark (luminance {lum:.2f}); a flat lay needs a light one"
        )
    if n == 0:
        reasons.append("no parts found")
    elif n < config.min_parts:
        what = "one part (a whole object is not a layout)" if n == 1 else f"{n} parts"
        reasons.append(f"only {what}; a layout needs at least {config.min_parts}")
    if min_gap is not None and min_gap < touching:
        reasons.append(f"two parts are {max(0.0, min_gap):.0f} px apart (touching)")
    if n >= config.min_parts and arrangement.kind == "none":
        reasons.append(arrangement.reason or "no clear rows, columns or axis")
    return reasons


# --- helpers --------------------------------------------------------------------------------


def _as_uint8(array: np.ndarray) -> np.ndarray:
    if array.ndim not in (2, 3):
        raise ImageAnalysisError(f"expected an H x W (x C) image array, got shape {array.shape}")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(array.max()) <= 1.0:
            array = array * 255.0
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array


def _downscale(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb, 1.0
    factor = side / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    small = Image.fromarray(rgb).resize(size, Image.Resampling.BOX)
    return np.asarray(small), factor


def _rescale_part(part: Part, factor: float, width: int, height: int) -> Part:
    if factor == 1.0:
        return part
    x0, y0, x1, y1 = part.bbox
    bbox = (
        int(np.floor(x0 / factor)),
        int(np.floor(y0 / factor)),
        min(width, int(np.ceil(x1 / factor))),
        min(height, int(np.ceil(y1 / factor))),
    )
    scale = lambda p: (p[0] / factor, p[1] / factor)  # noqa: E731
    return Part(bbox, int(round(part.area / factor**2)), scale(part.centroid), scale(part.anchor),
                part.color, part.touches_border)  # fmt: skip


def _noise_sigma(rgb: np.ndarray) -> float:
    """Noise level from pixel-to-neighbour differences (flat areas dominate the median)."""
    diff = np.diff(rgb.astype(np.float32), axis=1)
    return _robust_std(diff.reshape(-1, 3)) / np.sqrt(2.0)


def _robust_std(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    mad = np.median(np.abs(values - np.median(values, axis=0)), axis=0)
    return float(np.median(1.4826 * mad))
