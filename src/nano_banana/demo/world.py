"""The procedural demo world: objects rendered assembled, as a knolling flat lay, or exploded.

Everything is a pure function of a seed. An *instance* is one object with its
own colour and size jitter; each view of it is a ``Render``: the picture, its
caption and the ground truth (part boxes, view, background, axis) that tests and
evaluations compare the layout analysis against. ``write_world`` writes a folder
in the trainer's dataset format (PNG plus same-name .txt caption) and a
``world.jsonl`` with the ground truth of every image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_path, write_text
from ..errors import InvalidSettingError
from .draw import Box, background_image, draw_part
from .objects import (
    BACKGROUNDS,
    CAPTION_TEMPLATES,
    LAYOUT_WHITE_RANGE,
    OBJECTS,
    Background,
    ObjectSpec,
    PartSpec,
)

DEFAULT_SIZE = 128  # what the tiny demo model trains at
SIZE_RANGE = (64, 1024)
SIZE_MULTIPLE = 8  # the VAE downsamples by 8
COLOR_JITTER = (10, 6)  # max shift per channel: whole object, then each part
SIZE_JITTER = 0.08  # max relative change of each side of a part
ASSEMBLED_FILL = (0.62, 0.82)  # fraction of the canvas the assembled object spans
KNOLLING_GAP = (0.08, 0.10)  # between grid cells, fraction of the canvas side (>= 10 px at 128)
EXPLODED_GAP = (0.035, 0.05)  # smaller: exploded views hold every part on one line
MARGIN = (0.06, 0.09)  # empty border around flat lays, fraction of the canvas side
EXPLODED_MARGIN = (0.04, 0.06)
MIN_SIDE = 0.045  # smallest drawn side of a part, fraction of the canvas (legible at 128 px)
AXIS_TIE = 0.85  # both axes fit within this ratio of scale: pick one at random
PART_FILL = (0.5, 0.75)  # a lone part's longer side, as a share of the canvas


class View(str, Enum):
    ASSEMBLED = "assembled"  # the whole object, a product shot on varied backgrounds
    KNOLLING = "knolling"  # parts in rows and columns with even gaps, on white
    EXPLODED = "exploded"  # parts spread along one axis with even gaps, on white
    PART = "part"  # one part alone on white, captioned as parts-first boards draw parts


# The object's own views, what a world is drawn in unless told otherwise; a lone part
# (View.PART) is asked for by name.
VIEWS: tuple[View, ...] = (View.ASSEMBLED, View.KNOLLING, View.EXPLODED)


@dataclass(frozen=True)
class PartTruth:
    """Where the renderer put one part: ``bbox`` is (x0, y0, x1, y1) in pixels, end exclusive."""

    name: str
    bbox: tuple[float, float, float, float]
    color: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bbox": [round(v, 2) for v in self.bbox],
            "color": list(self.color),
        }


@dataclass(frozen=True)
class Render:
    """One picture of the world and its ground truth."""

    image: Image.Image
    caption: str
    object: str  # ObjectSpec.key
    view: View
    background: str  # Background.name
    axis: str | None  # "horizontal" / "vertical" for exploded views, else None
    parts: tuple[PartTruth, ...]
    seed: int  # the instance seed: the same seed gives the same object in every view

    def truth(self) -> dict[str, Any]:
        """The ground truth as JSON-ready data (no pixels)."""
        return {
            "object": self.object,
            "view": self.view.value,
            "background": self.background,
            "axis": self.axis,
            "seed": self.seed,
            "size": list(self.image.size),
            "caption": self.caption,
            "parts": [p.to_dict() for p in self.parts],
        }


@dataclass(frozen=True)
class Instance:
    """One object with its per-instance colour and size jitter applied."""

    spec: ObjectSpec
    parts: tuple[PartSpec, ...]
    seed: int


# --- public API -----------------------------------------------------------------


def object_spec(key: str | ObjectSpec) -> ObjectSpec:
    """The object named ``key`` (or ``key`` itself when it already is one)."""
    if isinstance(key, ObjectSpec):
        return key
    for spec in OBJECTS:
        if spec.key == key:
            return spec
    known = ", ".join(o.key for o in OBJECTS)
    raise InvalidSettingError(f"unknown demo object {key!r}; choose one of {known}")


def make_instance(obj: str | ObjectSpec, seed: int) -> Instance:
    """Jitter colours and part sizes of ``obj``, deterministically from ``seed``."""
    spec = object_spec(obj)
    rng = np.random.default_rng([seed, _object_index(spec), 0])
    shift = rng.integers(-COLOR_JITTER[0], COLOR_JITTER[0] + 1, size=3)
    parts = tuple(_jitter_part(p, shift, rng) for p in spec.parts)
    return Instance(spec, parts, seed)


def render_view(instance: Instance, view: View | str, size: int = DEFAULT_SIZE) -> Render:
    """Draw one view of ``instance`` on a ``size`` x ``size`` canvas."""
    view = parse_view(view)
    check_size(size)
    rng = np.random.default_rng(
        [instance.seed, _object_index(instance.spec), 1 + list(View).index(view)]
    )
    axis = None
    if view is View.PART:
        return render_part(instance, size, rng)
    if view is View.ASSEMBLED:
        background = _pick_background(rng)
        boxes = assembled_boxes(instance.parts, size, rng)
        order = sorted(range(len(instance.parts)), key=lambda i: instance.parts[i].z)
    else:
        background = _layout_white(rng)
        if view is View.KNOLLING:
            boxes = knolling_boxes(instance.parts, size, rng)
        else:
            axis = choose_axis(instance.parts, size, rng)
            boxes = exploded_boxes(instance.parts, size, axis, rng)
        order = list(range(len(instance.parts)))
    image = draw_scene(instance.parts, boxes, order, background, size)
    caption = make_caption(instance.spec, view, background.name, axis, rng)
    truths = tuple(
        PartTruth(p.name, b, p.color) for p, b in zip(instance.parts, boxes, strict=True)
    )
    return Render(
        image, caption, instance.spec.key, view, background.name, axis, truths, instance.seed
    )


def render_part(instance: Instance, size: int, rng: np.random.Generator) -> Render:
    """One part of ``instance``, chosen by ``rng``, alone on white and captioned in the catalog's
    words through the ``part`` preset: what the base model is asked when a board draws it."""
    index = int(rng.integers(len(instance.parts)))
    part = instance.parts[index]
    background = _layout_white(rng)
    scale = size * rng.uniform(*PART_FILL) / max(part.size)
    w, h = part.size[0] * scale, part.size[1] * scale
    x0 = (size - w) * rng.uniform(0.4, 0.6)
    y0 = (size - h) * rng.uniform(0.4, 0.6)
    box = (x0, y0, x0 + w, y0 + h)
    image = draw_scene([part], [box], [0], background, size)
    caption = part_caption(instance.spec, part.name)
    truth = (PartTruth(part.name, box, part.color),)
    return Render(image, caption, instance.spec.key, View.PART, background.name, None, truth,
                  instance.seed)  # fmt: skip


def part_caption(spec: ObjectSpec, name: str) -> str:
    """The part's caption: the part preset around the catalog's words for it."""
    from ..parts.catalog import find_object, load_catalog, part_words
    from ..prompt.presets import load_presets

    entry = find_object(spec.phrase, load_catalog(user_dir=_NO_USER_FILES))
    look = next((p.look for p in entry.parts if p.name == name), "") if entry else ""
    preset = load_presets(user_dir=_NO_USER_FILES)["part"]
    return preset.render(part_words(name, look, spec.phrase))


def render_object(
    obj: str | ObjectSpec, view: View | str, seed: int = 0, size: int = DEFAULT_SIZE
) -> Render:
    """Shortcut: one view of one instance of ``obj``."""
    return render_view(make_instance(obj, seed), view, size)


def instance_seed(world_seed: int, index: int) -> int:
    """The seed of the ``index``-th instance of a world (a 32-bit number)."""
    return int(np.random.SeedSequence([world_seed, index]).generate_state(1)[0])


def generate_world(
    count: int, seed: int = 0, size: int = DEFAULT_SIZE, views: Iterable[View | str] = VIEWS
) -> Iterator[tuple[int, Render]]:
    """Yield ``(instance index, render)`` for ``count`` instances, each in every view.

    Objects take turns (watch, camera, ...), so any ``count`` is balanced to within one.
    """
    views = parse_views(views)  # checked here, not at the first next()
    check_size(size)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidSettingError(f"count must be a whole number of at least 1, got {count!r}")
    return _renders(count, seed, size, views)


def _renders(
    count: int, seed: int, size: int, views: tuple[View, ...]
) -> Iterator[tuple[int, Render]]:
    for index in range(count):
        instance = make_instance(OBJECTS[index % len(OBJECTS)], instance_seed(seed, index))
        for view in views:
            yield index, render_view(instance, view, size)


@dataclass(frozen=True)
class WorldWritten:
    """What ``write_world`` wrote."""

    folder: Path
    images: int
    manifest: Path


# The world is the package's own: its captions never depend on a user's presets or catalog.
_NO_USER_FILES = Path("/nonexistent/nano-banana-user-folder")
MANIFEST_NAME = "world.jsonl"  # not metadata.jsonl: the trainer would read that as captions


def write_world(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    views: Iterable[View | str] = VIEWS,
    overwrite: bool = False,
) -> WorldWritten:
    """Write ``count`` instances as PNG + .txt pairs and a ``world.jsonl`` of ground truth.

    Refuses a folder that already holds files unless ``overwrite`` (then same-name
    files are replaced and others are left alone).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidSettingError(f"output '{out}' exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InvalidSettingError(
            f"output folder '{out}' is not empty; choose a new folder or pass --overwrite"
        )
    renders = generate_world(count, seed, size, views)  # validates before anything is written
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, render in renders:  # every file whole or absent (atomic), even after a crash
        name = f"{index:05d}_{render.object}_{render.view.value}"
        with atomic_path(out / f"{name}.png") as tmp:
            render.image.save(tmp, format="PNG")
        write_text(out / f"{name}.txt", render.caption + "\n")
        rows.append(json.dumps({"file": f"{name}.png", **render.truth()}) + "\n")
    # The ground truth last: a folder with a manifest holds every image it lists.
    manifest = write_text(out / MANIFEST_NAME, "".join(rows))
    return WorldWritten(out, len(rows), manifest)


def world_vocabulary() -> list[str]:
    """Every word any caption or part name of the world can contain, sorted (for a tokenizer)."""
    texts: list[str] = [p.name for o in OBJECTS for p in o.parts]
    texts += [part_caption(o, p.name) for o in OBJECTS for p in o.parts]
    for template in (t for ts in CAPTION_TEMPLATES.values() for t in ts):
        for obj in OBJECTS:
            for bg in BACKGROUNDS:
                for axis in ("horizontal", "vertical"):
                    texts.append(
                        template.format(
                            object=obj.phrase, pieces=obj.pieces, background=bg.name, axis=axis
                        )
                    )
    return sorted({w for text in texts for w in re.findall(r"[a-z]+", text.lower())})


def parse_view(value: View | str) -> View:
    try:
        return View(value)
    except ValueError:
        names = ", ".join(v.value for v in View)
        raise InvalidSettingError(f"unknown view {value!r}; choose from {names}") from None


def parse_views(values: Iterable[View | str] | str) -> tuple[View, ...]:
    """Views from a list or a comma-separated string, in the order given, without repeats."""
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    views = tuple(dict.fromkeys(parse_view(v) for v in values))
    if not views:
        raise InvalidSettingError("no views given; use assembled, knolling and/or exploded")
    return views


def check_size(size: Any) -> None:
    low, high = SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
        raise InvalidSettingError(f"image size must be a whole number {low}..{high}, got {size!r}")
    if size % SIZE_MULTIPLE:
        raise InvalidSettingError(f"image size {size} is not a multiple of {SIZE_MULTIPLE}")


# --- instances --------------------------------------------------------------------


def _object_index(spec: ObjectSpec) -> int:
    keys = [o.key for o in OBJECTS]
    return keys.index(spec.key) if spec.key in keys else len(keys)


def _jitter_part(part: PartSpec, shift: np.ndarray, rng: np.random.Generator) -> PartSpec:
    own = rng.integers(-COLOR_JITTER[1], COLOR_JITTER[1] + 1, size=3)
    color = tuple(int(c) for c in np.clip(np.array(part.color) + shift + own, 0, 255))
    w, h = part.size
    fw, fh = 1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER, size=2)
    if part.shape == "ellipse" and w == h:
        fh = fw  # circles stay circles
    return replace(part, color=color, size=(w * fw, h * fh))


def _pick_background(rng: np.random.Generator) -> Background:
    weights = np.array([b.weight for b in BACKGROUNDS])
    return BACKGROUNDS[int(rng.choice(len(BACKGROUNDS), p=weights / weights.sum()))]


def _layout_white(rng: np.random.Generator) -> Background:
    level = int(rng.integers(LAYOUT_WHITE_RANGE[0], LAYOUT_WHITE_RANGE[1] + 1))
    return Background("white", (level,) * 3, (level,) * 3, 0.0)


def make_caption(
    spec: ObjectSpec, view: View, background: str, axis: str | None, rng: np.random.Generator
) -> str:
    templates = CAPTION_TEMPLATES[view.value]
    template = templates[int(rng.integers(len(templates)))]
    return template.format(object=spec.phrase, pieces=spec.pieces, background=background, axis=axis)


# --- layouts: boxes in output pixels, in the order of the parts ------------------------


def assembled_boxes(parts: Sequence[PartSpec], size: int, rng: np.random.Generator) -> list[Box]:
    """Parts at their assembled positions, the whole scaled to fill part of the canvas."""
    units = [(p.at[0] - p.size[0] / 2, p.at[1] - p.size[1] / 2, p.at[0] + p.size[0] / 2,
              p.at[1] + p.size[1] / 2) for p in parts]  # fmt: skip
    left, top = min(b[0] for b in units), min(b[1] for b in units)
    right, bottom = max(b[2] for b in units), max(b[3] for b in units)
    scale = size * rng.uniform(*ASSEMBLED_FILL) / max(right - left, bottom - top)
    room_x = size - (right - left) * scale
    room_y = size - (bottom - top) * scale
    ox = room_x * rng.uniform(0.35, 0.65) - left * scale
    oy = room_y * rng.uniform(0.35, 0.65) - top * scale
    return [
        (ox + a * scale, oy + b * scale, ox + c * scale, oy + d * scale) for a, b, c, d in units
    ]


def knolling_boxes(parts: Sequence[PartSpec], size: int, rng: np.random.Generator) -> list[Box]:
    """Parts largest first, row by row, in the grid of at least 2 x 2 cells that shows them
    largest; centred in their cells, even gaps.

    Sorting by size is how knolling is done by hand, and it gives each object one
    recognisable layout (a tiny model learns one layout per object far sooner than
    every shuffle of it). Column widths and row heights are those of their largest
    part, so the gaps between columns and between rows are all exactly ``gap`` pixels.
    """
    n = len(parts)
    order = sorted(range(n), key=lambda i: -parts[i].size[0] * parts[i].size[1])
    gap = round(size * rng.uniform(*KNOLLING_GAP))
    margin = round(size * rng.uniform(*MARGIN))
    grids = [(r, c) for r in range(2, n + 1) if (c := -(-n // r)) >= 2 and r * c - n < c]
    fits = [_grid_scale(parts, order, r, c, size, gap, margin) for r, c in grids]
    rows, cols = grids[int(np.argmax(fits))]
    scale = first_scale = _grid_scale(parts, order, rows, cols, size, gap, margin)
    room = size - 2 * margin
    while True:  # small parts are enlarged to a legible size; shrink the rest until all fit
        sizes = [_pixel_size(p, scale, size) for p in parts]
        col_w, row_h = _cell_sizes(sizes, order, rows, cols)
        if max(sum(col_w) + (cols - 1) * gap, sum(row_h) + (rows - 1) * gap) <= room:
            break
        if scale < 0.5 * first_scale and gap > 2:
            gap -= 1  # a crowded object gives up gap width before its parts shrink further
        else:
            scale = _shrunk(scale, len(parts), size)
    x_edges = _edges(col_w, gap, size)
    y_edges = _edges(row_h, gap, size)
    boxes: list[Box] = [(0, 0, 0, 0)] * n
    for slot, i in enumerate(order):
        r, c = divmod(slot, cols)
        w, h = sizes[i]
        x0 = x_edges[c] + (col_w[c] - w) // 2
        y0 = y_edges[r] + (row_h[r] - h) // 2
        boxes[i] = (x0, y0, x0 + w, y0 + h)
    return boxes


def _pixel_size(part: PartSpec, scale: float, size: int) -> tuple[int, int]:
    """A part's drawn size: ``scale`` pixels per unit, its smaller side at least MIN_SIDE."""
    w, h = part.size[0] * scale, part.size[1] * scale
    grow = max(1.0, MIN_SIDE * size / min(w, h))
    return max(1, round(w * grow)), max(1, round(h * grow))


def _shrunk(scale: float, parts: int, size: int) -> float:
    """One step of the fitting loops; parts that stay too big at their legible minimum never fit."""
    if scale < 1e-3:
        raise InvalidSettingError(
            f"{parts} parts do not fit side by side on a {size} px canvas; use a larger size"
        )
    return scale * 0.96


def _grid_scale(parts, order, rows: int, cols: int, size: int, gap: int, margin: int) -> float:
    """Pixels per unit at which the grid's cells and gaps just fill the canvas inside the margin."""
    col_w, row_h = _cell_sizes([p.size for p in parts], order, rows, cols)
    return min((size - 2 * margin - (cols - 1) * gap) / sum(col_w),
               (size - 2 * margin - (rows - 1) * gap) / sum(row_h))  # fmt: skip


def _cell_sizes(sizes, order: Sequence[int], rows: int, cols: int):
    """Width of each column and height of each row: those of their largest part."""
    col_w = [0] * cols
    row_h = [0] * rows
    for slot, i in enumerate(order):
        r, c = divmod(slot, cols)
        col_w[c] = max(col_w[c], sizes[i][0])
        row_h[r] = max(row_h[r], sizes[i][1])
    return col_w, row_h


def _edges(lengths: Sequence[int], gap: int, size: int) -> list[int]:
    """Start of each cell when cells of ``lengths``, ``gap`` apart, are centred on the canvas."""
    start = (size - (sum(lengths) + gap * (len(lengths) - 1))) // 2
    edges = []
    for length in lengths:
        edges.append(start)
        start += length + gap
    return edges


def choose_axis(parts: Sequence[PartSpec], size: int, rng: np.random.Generator) -> str:
    """The axis that shows the parts larger; either one when they are about equal."""
    gap, margin = np.mean(EXPLODED_GAP), np.mean(EXPLODED_MARGIN)
    h = _axis_scale(parts, size, "horizontal", gap, margin)
    v = _axis_scale(parts, size, "vertical", gap, margin)
    if min(h, v) >= AXIS_TIE * max(h, v):
        return "horizontal" if rng.random() < 0.5 else "vertical"
    return "horizontal" if h > v else "vertical"


def _axis_scale(parts, size: int, axis: str, gap_frac: float, margin_frac: float) -> float:
    along, cross = (0, 1) if axis == "horizontal" else (1, 0)
    room = size * (1 - 2 * margin_frac)
    gaps = size * gap_frac * (len(parts) - 1)
    return min((room - gaps) / sum(p.size[along] for p in parts),
               room / max(p.size[cross] for p in parts))  # fmt: skip


def exploded_boxes(
    parts: Sequence[PartSpec], size: int, axis: str, rng: np.random.Generator
) -> list[Box]:
    """Parts in assembly order along ``axis``, centred on the canvas's mid line, even gaps."""
    along, cross = (0, 1) if axis == "horizontal" else (1, 0)
    gap = round(size * rng.uniform(*EXPLODED_GAP))
    margin = round(size * rng.uniform(*EXPLODED_MARGIN))
    scale = _axis_scale(parts, size, axis, gap / size, margin / size)
    # Sort by assembled position along the axis, so the view reads as the object pulled apart.
    order = sorted(range(len(parts)), key=lambda i: (parts[i].at[along], parts[i].z))
    room = size - 2 * margin
    while True:  # as in knolling_boxes: enlarge small parts, shrink the rest until all fit
        sizes = [_pixel_size(p, scale, size) for p in parts]
        lengths = [sizes[i][along] for i in order]
        if sum(lengths) + gap * (len(parts) - 1) <= room and max(s[cross] for s in sizes) <= room:
            break
        scale = _shrunk(scale, len(parts), size)
    boxes: list[Box] = [(0, 0, 0, 0)] * len(parts)
    for i, start, length in zip(order, _edges(lengths, gap, size), lengths, strict=True):
        thick = sizes[i][cross]
        lo = (size - thick) // 2
        box = (start, lo, start + length, lo + thick)
        boxes[i] = box if axis == "horizontal" else (box[1], box[0], box[3], box[2])
    return boxes


# --- drawing ------------------------------------------------------------------------------


def draw_scene(
    parts: Sequence[PartSpec],
    boxes: Sequence[Box],
    order: Sequence[int],
    background: Background,
    size: int,
) -> Image.Image:
    """Draw parts in ``order`` onto ``background``; supersampled, then box-filtered."""
    ss = 4 if size <= 256 else 2
    canvas = background_image(background, (size * ss, size * ss))
    draw = ImageDraw.Draw(canvas)
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        draw_part(draw, parts[i], (x0 * ss, y0 * ss, x1 * ss, y1 * ss))
    return canvas.reduce(ss)
