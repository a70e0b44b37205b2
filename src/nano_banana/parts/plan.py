"""The board plan: where every part of an object goes, as small pure functions of a seed.

A plan is decided before anything is drawn, so the part count is exact and every
part's name and box are known: callouts and the parts list come from the plan,
never from guessing at pixels. Four layouts, one per kind of board:

* ``knolling``: rows and columns, largest part first, even gaps, cells aligned;
* ``exploded``: one line along an axis in assembly order, pulled apart by an
  explosion factor from 0 (assembled) to 1 (fully apart), with a centre line;
* ``panels``: sewing panels laid flat on shelves, largest first, never overlapping;
* ``repair``: a grid of equal cells, each with room under the part for its number.

The seed varies a plan within its layout's rules: the order of parts of about
the same size, which axis an exploded view uses, the column count among the
near-best ones, and the spacing.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ..prompt.presets import BOARD_LAYOUTS
from .catalog import CatalogError, CatalogObject

PLAN_FORMAT = 1
LAYOUTS = BOARD_LAYOUTS
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in board pixels, x1/y1 exclusive
SAME_SIZE = 0.15  # parts whose areas differ by less than this share a rank the seed may reorder
MARGIN = 0.06  # of the board's shorter side, kept empty round the layout
GAP = 0.045  # of the board's shorter side, between parts (the seed jitters it by +-20%)
MIN_SIDE = 0.3  # a part's longer side, at least, as a share of the largest part's
MIN_PART_PX = 4  # a planned part narrower than this cannot be drawn or numbered
MIN_THICKNESS = 0.12  # a part's shorter side, at least, as a share of the largest part's
LABEL_BAND = 0.22  # share of a repair cell under the part, kept free for its number
AXIS_SLACK = 0.8  # the other axis may be used while its parts are at least this large


@dataclass(frozen=True)
class Piece:
    """One physical piece to draw: a part, or one copy of a part that has several."""

    name: str
    size: tuple[float, float]  # relative width, height
    look: str = ""
    copy: int = 1  # 1..count of its part
    count: int = 1


@dataclass(frozen=True)
class PlacedPart:
    """A piece at its place on the board; ``number`` is its callout (1 = first in the list)."""

    number: int
    name: str
    box: Box
    look: str = ""
    copy: int = 1
    count: int = 1


@dataclass(frozen=True)
class BoardPlan:
    """Everything needed to draw, check and label a board; saved as JSON in the PNG."""

    object: str  # catalog key, or "custom" for --parts
    phrase: str
    layout: str  # one of LAYOUTS
    width: int
    height: int
    seed: int
    parts: tuple[PlacedPart, ...]
    axis: str | None = None  # exploded views: "vertical" or "horizontal"
    explode: float | None = None  # exploded views: 0 assembled .. 1 fully apart
    centre_line: bool = False
    pieces: str = "parts"  # what captions call the parts
    format: int = PLAN_FORMAT
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoardPlan:
        """Rebuild a plan from ``to_dict`` output (or an edited copy); a bad one is a ``CatalogError``."""
        try:
            data = dict(data)
            parts = tuple(_placed_part(p) for p in data.pop("parts"))
            plan = cls(**data, parts=parts)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CatalogError(f"the board plan is not valid: {exc}") from None
        check_plan(plan)
        return plan

    @classmethod
    def from_json(cls, text: str) -> BoardPlan:
        """Rebuild a plan from ``to_json`` text (or an edited copy)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CatalogError(f"the board plan is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CatalogError("the board plan is not valid: expected a JSON object")
        return cls.from_dict(data)

    def part_names(self) -> list[str]:
        """The parts list in callout order ("strap (2 of 2)" for copies)."""
        return [label(p) for p in self.parts]


def _placed_part(data: dict[str, Any]) -> PlacedPart:
    """One part of a plan read from JSON, with its types checked (an edited plan may have any)."""
    part = PlacedPart(**{**data, "box": tuple(data["box"])})
    whole = (part.number, part.copy, part.count, *part.box)
    if len(part.box) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in whole):
        raise ValueError(
            f"part '{part.name}': number, copy, count and the 4 box values are whole numbers"
        )
    if not isinstance(part.name, str) or not isinstance(part.look, str):
        raise ValueError(f"part {part.number}: name and look are text")
    return part


def label(part: PlacedPart) -> str:
    """A part's name in the parts list; copies say which ("strap (2 of 2)")."""
    return part.name if part.count == 1 else f"{part.name} ({part.copy} of {part.count})"


def check_plan(plan: BoardPlan) -> None:
    """Refuse a plan (e.g. an edited one) whose layout or boxes cannot be drawn."""
    if plan.format != PLAN_FORMAT:
        raise CatalogError(
            f"board plan format {plan.format} is not supported (expected {PLAN_FORMAT})"
        )
    if plan.layout not in LAYOUTS:
        raise CatalogError(f"board plan layout '{plan.layout}' is not one of {', '.join(LAYOUTS)}")
    if plan.explode is not None and not 0 <= plan.explode <= 1:
        raise CatalogError(f"board plan explode {plan.explode} is outside 0..1")
    if plan.axis not in (None, "vertical", "horizontal"):
        raise CatalogError(f"board plan axis '{plan.axis}' is not vertical or horizontal")
    if not plan.parts:
        raise CatalogError("the board plan has no parts")
    numbers = [part.number for part in plan.parts]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated or min(numbers) < 1:
        raise CatalogError(
            f"board plan parts need distinct callout numbers from 1 (an edited copy keeps its "
            f"number?); got {numbers}"
        )
    for part in plan.parts:
        x0, y0, x1, y1 = part.box
        if not (0 <= x0 < x1 <= plan.width and 0 <= y0 < y1 <= plan.height):
            raise CatalogError(
                f"board plan part '{part.name}': box {part.box} is outside the board"
            )


# --- from the catalog to pieces ---------------------------------------------------------------------


def pieces_of(obj: CatalogObject) -> list[Piece]:
    """Every physical piece, in assembly order (a part's copies side by side)."""
    largest = max(max(part.size) for part in obj.parts)
    return [
        Piece(part.name, legible_size(part.size, largest), part.look, copy, part.count)
        for part in obj.parts
        for copy in range(1, part.count + 1)
    ]


def legible_size(size: tuple[float, float], largest: float) -> tuple[float, float]:
    """Grow a small part, keeping its proportions, to at least ``MIN_SIDE`` of the largest
    one's longer side: a screw at true scale beside a laptop would be a few pixels, too
    small to draw, cut out or number. A thin part keeps at least ``MIN_THICKNESS``."""
    grow = max(1.0, MIN_SIDE * largest / max(size))
    width, height = size[0] * grow, size[1] * grow
    thinnest = MIN_THICKNESS * largest  # a cable stays thin, but not a hairline
    return max(width, thinnest), max(height, thinnest)


def largest_first(pieces: list[Piece], rng: random.Random) -> list[Piece]:
    """Sort by area, largest first; parts of about the same size come in a seeded order.

    Areas are ranked in steps of ``SAME_SIZE`` (log scale); within a step the seed's shuffle
    decides. Copies of one part stay together, in copy order, so a pair reads as a pair.
    """
    names = list(dict.fromkeys(p.name for p in pieces))
    rng.shuffle(names)
    seeded = {name: i for i, name in enumerate(names)}
    biggest = max(_area(p) for p in pieces)

    def rank(p: Piece) -> tuple[int, int, int]:
        step = round(math.log(biggest / _area(p)) / math.log(1 + SAME_SIZE))
        return step, seeded[p.name], p.copy

    return sorted(pieces, key=rank)


def _area(p: Piece) -> float:
    return p.size[0] * p.size[1]


# --- the layouts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Canvas:
    width: int
    height: int
    margin: int
    gap: int

    @classmethod
    def of(cls, width: int, height: int, rng: random.Random) -> Canvas:
        side = min(width, height)
        return cls(
            width, height, round(MARGIN * side), max(2, round(GAP * side * rng.uniform(0.8, 1.2)))
        )

    @property
    def inner(self) -> tuple[int, int]:
        return self.width - 2 * self.margin, self.height - 2 * self.margin


def knolling(pieces: list[Piece], canvas: Canvas, rng: random.Random) -> list[tuple[Piece, Box]]:
    """Rows and columns, largest first: each column as wide as its widest part, each row as
    tall as its tallest, parts centred in their cells, so edges and centres line up."""
    ordered = largest_first(pieces, rng)
    options = sorted(
        ((_grid_scale(ordered, cols, canvas), cols) for cols in range(1, len(ordered) + 1)),
        reverse=True,
    )
    # The seed picks among the column counts within 10% of the best scale.
    good = [cols for scale, cols in options if scale >= 0.9 * options[0][0]]
    cols = rng.choice(good)
    scale = _grid_scale(ordered, cols, canvas)
    widths, heights = _grid_tracks(ordered, cols, scale)
    used_w = sum(widths) + canvas.gap * (len(widths) - 1)
    used_h = sum(heights) + canvas.gap * (len(heights) - 1)
    x_start = (canvas.width - used_w) // 2
    y_start = (canvas.height - used_h) // 2
    placed = []
    for i, piece in enumerate(ordered):
        row, col = divmod(i, cols)
        cell_x = x_start + sum(widths[:col]) + canvas.gap * col
        cell_y = y_start + sum(heights[:row]) + canvas.gap * row
        placed.append((piece, _centred(piece, scale, cell_x, cell_y, widths[col], heights[row])))
    return placed


def _grid_tracks(ordered: list[Piece], cols: int, scale: float) -> tuple[list[int], list[int]]:
    rows = math.ceil(len(ordered) / cols)
    widths = [0] * cols
    heights = [0] * rows
    for i, piece in enumerate(ordered):
        row, col = divmod(i, cols)
        widths[col] = max(widths[col], round(piece.size[0] * scale))
        heights[row] = max(heights[row], round(piece.size[1] * scale))
    return widths, heights


def _grid_scale(ordered: list[Piece], cols: int, canvas: Canvas) -> float:
    """Pixels per size unit at which a ``cols``-column grid fills the inner canvas."""
    rows = math.ceil(len(ordered) / cols)
    widths, heights = _grid_tracks(ordered, cols, 1000.0)  # in thousandths of a unit
    inner_w, inner_h = canvas.inner
    room_w = inner_w - canvas.gap * (cols - 1)
    room_h = inner_h - canvas.gap * (rows - 1)
    if room_w <= 0 or room_h <= 0:
        return 0.0
    return 1000.0 * min(room_w / sum(widths), room_h / sum(heights))


def exploded(
    pieces: list[Piece], canvas: Canvas, axis: str, explode: float
) -> list[tuple[Piece, Box]]:
    """Along ``axis`` in assembly order: slots (a part's copies side by side across the axis)
    one gap apart when ``explode`` is 1, sliding toward the middle as it falls to 0, where
    they overlap as in the assembled object. The scale is fixed by the fully apart layout,
    so parts keep their size whatever the factor."""
    along = 1 if axis == "vertical" else 0  # index of the axis in (width, height)
    slots = _slots(pieces)
    scale = exploded_scale(slots, canvas, along)
    spans = [max(p.size[along] for p in slot) * scale for slot in slots]
    centres, position = [], 0.0
    for span in spans:
        centres.append(position + span / 2)
        position += span + canvas.gap
    middle = (position - canvas.gap) / 2
    mid = (canvas.height if along else canvas.width) / 2
    cross_mid = (canvas.width if along else canvas.height) / 2
    placed = []
    for slot, apart in zip(slots, centres, strict=True):
        centre = mid + explode * (apart - middle)
        placed.extend(_place_slot(slot, scale, centre, cross_mid, along, canvas.gap))
    return placed


def exploded_scale(slots: list[list[Piece]], canvas: Canvas, along: int) -> float:
    """Pixels per size unit at which the fully apart line of slots fits the inner canvas."""
    inner = canvas.inner
    spans = [max(p.size[along] for p in slot) for slot in slots]
    fits_along = (inner[along] - canvas.gap * (len(slots) - 1)) / sum(spans)
    fits_across = min(
        (inner[1 - along] - canvas.gap * (len(slot) - 1)) / sum(p.size[1 - along] for p in slot)
        for slot in slots
    )
    return min(fits_along, fits_across)


def choose_axis(pieces: list[Piece], canvas: Canvas, preferred: str, rng: random.Random) -> str:
    """The catalog's axis, or the other one where its parts come out nearly as large
    (``AXIS_SLACK``) and the seed says so: a long row of parts across a square board would
    shrink them to specks."""
    other = "horizontal" if preferred == "vertical" else "vertical"
    slots = _slots(pieces)
    scales = {axis: exploded_scale(slots, canvas, 1 if axis == "vertical" else 0)
              for axis in (preferred, other)}  # fmt: skip
    if scales[other] > scales[preferred] / AXIS_SLACK:
        return other  # the other axis draws the parts clearly larger
    if scales[other] >= AXIS_SLACK * scales[preferred] and rng.random() < 0.5:
        return other
    return preferred


def _slots(pieces: list[Piece]) -> list[list[Piece]]:
    """Pieces grouped into one slot per part (its copies together)."""
    slots: list[list[Piece]] = []
    for piece in pieces:
        if slots and piece.copy > 1 and slots[-1][0].name == piece.name:
            slots[-1].append(piece)
        else:
            slots.append([piece])
    return slots


def _place_slot(slot: list[Piece], scale: float, centre: float, cross_mid: float, along: int,
                gap: int) -> list[tuple[Piece, Box]]:  # fmt: skip
    """Copies of one part sit side by side across the axis, centred on it."""
    across = 1 - along
    sizes = [(p.size[0] * scale, p.size[1] * scale) for p in slot]
    span = sum(s[across] for s in sizes) + gap * (len(slot) - 1)
    start = cross_mid - span / 2
    placed = []
    for piece, size in zip(slot, sizes, strict=True):
        lo_across, lo_along = start, centre - size[along] / 2
        x0, y0 = (lo_across, lo_along) if along else (lo_along, lo_across)
        placed.append((piece, _box(x0, y0, *size)))
        start += size[across] + gap
    return placed


def panels(pieces: list[Piece], canvas: Canvas, rng: random.Random) -> list[tuple[Piece, Box]]:
    """Shelf packing, largest first: panels fill a row left to right, a new row starts when
    one is full; the scale is the largest at which every shelf fits, found by bisection."""
    ordered = largest_first(pieces, rng)
    lo, hi = 0.0, max(canvas.inner) / min(min(p.size) for p in ordered)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _shelves(ordered, mid, canvas) is not None else (lo, mid)
    shelves = _shelves(ordered, lo, canvas) or []
    used_h = sum(h for h, _ in shelves) + canvas.gap * (len(shelves) - 1)
    y = (canvas.height - used_h) // 2
    placed = []
    for height, row in shelves:
        row_w = sum(round(p.size[0] * lo) for p in row) + canvas.gap * (len(row) - 1)
        x = (canvas.width - row_w) // 2
        for piece in row:
            w, h = round(piece.size[0] * lo), round(piece.size[1] * lo)
            placed.append((piece, (x, y + (height - h) // 2, x + w, y + (height - h) // 2 + h)))
            x += w + canvas.gap
        y += height + canvas.gap
    return placed


def _shelves(
    ordered: list[Piece], scale: float, canvas: Canvas
) -> list[tuple[int, list[Piece]]] | None:
    inner_w, inner_h = canvas.inner
    shelves: list[tuple[int, list[Piece]]] = []
    row: list[Piece] = []
    row_w = 0
    for piece in ordered:
        w = round(piece.size[0] * scale)
        if w > inner_w:
            return None
        if row and row_w + canvas.gap + w > inner_w:
            shelves.append((max(round(p.size[1] * scale) for p in row), row))
            row, row_w = [], 0
        row_w = row_w + canvas.gap + w if row else w
        row.append(piece)
    shelves.append((max(round(p.size[1] * scale) for p in row), row))
    total_h = sum(h for h, _ in shelves) + canvas.gap * (len(shelves) - 1)
    return shelves if total_h <= inner_h else None


def repair(pieces: list[Piece], canvas: Canvas) -> list[tuple[Piece, Box]]:
    """Equal cells in assembly order, each part drawn above a band kept free for its number."""
    n = len(pieces)
    inner_w, inner_h = canvas.inner
    cols = max(1, min(n, round(math.sqrt(n * inner_w / inner_h))))
    rows = math.ceil(n / cols)
    cell_w = (inner_w - canvas.gap * (cols - 1)) / cols
    cell_h = (inner_h - canvas.gap * (rows - 1)) / rows
    draw_h = cell_h * (1 - LABEL_BAND)
    biggest = max(max(p.size[0] / cell_w, p.size[1] / draw_h) for p in pieces)
    scale = 1 / biggest
    placed = []
    for i, piece in enumerate(pieces):
        row, col = divmod(i, cols)
        x = canvas.margin + col * (cell_w + canvas.gap)
        y = canvas.margin + row * (cell_h + canvas.gap)
        placed.append((piece, _centred(piece, scale, x, y, cell_w, draw_h)))
    return placed


def _centred(piece: Piece, scale: float, x: float, y: float, w: float, h: float) -> Box:
    pw, ph = piece.size[0] * scale, piece.size[1] * scale
    return _box(x + (w - pw) / 2, y + (h - ph) / 2, pw, ph)


def _box(x0: float, y0: float, width: float, height: float) -> Box:
    """Whole pixels, at least one each way; the size is rounded on its own, so a part keeps
    its size in pixels wherever it moves."""
    left, top = round(x0), round(y0)
    return left, top, left + max(1, round(width)), top + max(1, round(height))


# --- the plan -------------------------------------------------------------------------------------


def _check_fit(placed: list[tuple[Piece, Box]], obj: CatalogObject, layout: str, width: int,
               height: int) -> None:  # fmt: skip
    """Refuse a layout whose smallest part would be too small to draw, cut out or number."""
    smallest = min(min(box[2] - box[0], box[3] - box[1]) for _, box in placed)
    if smallest < MIN_PART_PX:
        raise CatalogError(
            f"{obj.piece_count} parts of {obj.phrase} do not fit a {width}x{height} {layout} "
            f"board (the smallest would be {max(0, smallest)} px); use a larger size or fewer parts"
        )


def plan_board(obj: CatalogObject, layout: str, width: int, height: int, seed: int, *,
               explode: float = 1.0, axis: str | None = None,
               centre_line: bool = True) -> BoardPlan:  # fmt: skip
    """Plan a board of ``obj``'s parts; the same arguments always give the same plan."""
    if layout not in LAYOUTS:
        raise CatalogError(f"unknown board layout '{layout}'; use one of {', '.join(LAYOUTS)}")
    if not 0.0 <= explode <= 1.0:
        raise CatalogError(f"--explode {explode} is outside 0 (assembled) .. 1 (fully apart)")
    rng = random.Random(seed)
    canvas = Canvas.of(width, height, rng)
    pieces = pieces_of(obj)
    if layout == "knolling":
        placed = knolling(pieces, canvas, rng)
    elif layout == "panels":
        placed = panels(pieces, canvas, rng)
    elif layout == "repair":
        placed = repair(pieces, canvas)
    else:
        axis = axis or choose_axis(pieces, canvas, obj.axis, rng)
        placed = exploded(pieces, canvas, axis, explode)
    _check_fit(placed, obj, layout, width, height)
    parts = tuple(
        PlacedPart(i, piece.name, box, piece.look, piece.copy, piece.count)
        for i, (piece, box) in enumerate(placed, 1)
    )
    plan = BoardPlan(
        object=obj.key, phrase=obj.phrase, layout=layout, width=width, height=height, seed=seed,
        parts=parts, axis=axis if layout == "exploded" else None,
        explode=explode if layout == "exploded" else None,
        centre_line=centre_line and layout == "exploded", pieces=obj.pieces,
    )  # fmt: skip
    check_plan(plan)
    return plan
