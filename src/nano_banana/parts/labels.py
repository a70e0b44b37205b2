"""Callouts and the parts list of a board, straight from its plan: exact, never guessed.

A parts-first board knows every part's name and box, so its numbered callouts
and its parts list (CSV or JSON) come from the plan saved with the image. For
any other image, ``analysis.callouts`` finds the parts in the pixels instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import replace
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..analysis.callouts import (
    Annotation,
    CalloutRow,
    annotate,
    annotate_parts,
    default_output_path,
    write_atomically,
)
from ..analysis.layout import Part
from ..atomic import write_text
from .catalog import COUNTED_PART, MAX_COUNT, CatalogError, CatalogObject, parse_parts
from .plan import BoardPlan, label

CSV_COLUMNS = ("number", "name", "copy", "count", "look", "x0", "y0", "x1", "y1")


def plan_of(record) -> BoardPlan | None:
    """The board plan a generation record carries (a parts-first board), or None."""
    board = getattr(record, "board", None)
    return BoardPlan.from_dict(board["plan"]) if board and "plan" in board else None


def image_callouts(image: Image.Image, record=None) -> Annotation:
    """Callouts for any image: from its board plan when it has one, else from the parts the
    layout analyser finds (numbered in reading order, "part N")."""
    plan = plan_of(record) if record is not None else None
    return board_callouts(image, plan) if plan is not None else annotate(image)


def plan_parts(plan: BoardPlan, image: Image.Image) -> list[Part]:
    """The plan's boxes as parts for the callout drawer: leader lines end at box centres, and
    each part's colour (for the parts list) is the median of its box's darker pixels."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    parts = []
    for placed in plan.parts:
        x0, y0, x1, y1 = placed.box
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
        colour = _box_colour(rgb[y0:y1, x0:x1])
        parts.append(Part(placed.box, (x1 - x0) * (y1 - y0), centre, centre, colour, False))
    return parts


def _box_colour(pixels: np.ndarray) -> tuple[int, int, int]:
    ink = pixels[pixels.min(axis=-1) < 235]  # not the white board showing round the part
    values = np.median(ink if len(ink) else pixels.reshape(-1, 3), axis=0)
    return tuple(int(v) for v in values)


def board_callouts(image: Image.Image, plan: BoardPlan) -> Annotation:
    """Numbered callouts and the parts list, one per planned part, in the plan's order. An
    image resized since it was made (its metadata kept) gets the plan's boxes scaled to it."""
    return annotate_parts(image, plan_parts(fitted(plan, image.size), image), plan.part_names())


def board_rows(plan: BoardPlan, image: Image.Image) -> list[CalloutRow]:
    """The plan's parts as an editable callout table (``analysis.callouts.CalloutRow``): named
    as the catalog names them (the plan knows what each part is), in the plan's order, boxed
    as placed (fitted to ``image``). Copies keep their "(1 of 2)" after any new name, and the
    exports carry the parts list's own columns (``CSV_COLUMNS``)."""
    placed = fitted(plan, image.size)
    rows = []
    for planned, part in zip(placed.parts, plan_parts(placed, image), strict=True):
        tag = label(planned).removeprefix(planned.name).strip()
        note = " · ".join(n for n in (f"copy {tag.strip('()')}" if tag else "", planned.look) if n)
        extra = {"copy": planned.copy, "count": planned.count, "look": planned.look}
        rows.append(CalloutRow(part, planned.name, planned.number, tag=tag, note=note,
                               extra=extra))  # fmt: skip
    return rows


def fitted(plan: BoardPlan, size: tuple[int, int]) -> BoardPlan:
    """``plan`` with its boxes scaled to an image of ``size``."""
    if size == (plan.width, plan.height):
        return plan
    sx, sy = size[0] / plan.width, size[1] / plan.height
    parts = tuple(
        replace(p, box=(int(p.box[0] * sx), int(p.box[1] * sy),
                        max(int(p.box[0] * sx) + 1, round(p.box[2] * sx)),
                        max(int(p.box[1] * sy) + 1, round(p.box[3] * sy))))
        for p in plan.parts
    )  # fmt: skip
    return replace(plan, width=size[0], height=size[1], parts=parts)


def parts_rows(plan: BoardPlan) -> list[dict[str, Any]]:
    """The parts list as rows: number, name, copy of count, look and box."""
    return [
        {"number": p.number, "name": p.name, "copy": p.copy, "count": p.count, "look": p.look,
         "x0": p.box[0], "y0": p.box[1], "x1": p.box[2], "y1": p.box[3], "label": label(p)}
        for p in plan.parts
    ]  # fmt: skip


def parts_csv(plan: BoardPlan) -> str:
    """The parts list as CSV text (a header row, then one row per part)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(parts_rows(plan))
    return out.getvalue()


def write_callouts(image: Image.Image, record, source: Path) -> Path:
    """``<source>_annotated.png`` beside ``source``: the image with its callouts, written whole."""
    out = default_output_path(source)
    write_atomically(image_callouts(image, record).image, out, "PNG")
    return out


def write_parts_csv(plan: BoardPlan, out: Path) -> Path:
    """The parts list as a CSV file, written whole."""
    return write_text(Path(out), parts_csv(plan))


# --- the parts list as an editable table (the studio's) ------------------------------------------

TABLE_COLUMNS = ("part", "count")
NOT_IN_CATALOG = "not in the parts catalog: list its parts in the table"


def table_rows(obj: CatalogObject | None, parts: str | None = None) -> list[dict[str, Any]]:
    """The rows a parts table starts from: ``parts`` ("case, strap x2") when given, else the
    catalog object's own list, else none (an object the catalog does not know)."""
    listed = parse_parts(parts).parts if parts else obj.parts if obj is not None else ()
    return [{"part": part.name, "count": part.count} for part in listed]


def table_parts(rows: Iterable[Mapping[str, Any]], obj: CatalogObject | None) -> str | None:
    """A request's ``parts`` from an edited table: "case, strap x2", or None when the table is
    ``obj``'s catalog list as it is (the record then says the catalog decided).

    Rows without a name are skipped (a table's new, still blank row); a blank count is 1.
    An empty table is an error: the catalog object's list was deleted, or there was none.
    """
    items = [item for n, row in enumerate(rows, 1) if (item := _table_item(row, n))]
    if not items:
        raise CatalogError(NOT_IN_CATALOG if obj is None else "the parts table is empty")
    text = ", ".join(items)
    listed = parse_parts(text).parts  # the checks --parts gets: repeated names, the total
    if obj is not None and _counts(listed) == _counts(obj.parts):
        return None
    return text


def _table_item(row: Mapping[str, Any], n: int) -> str | None:
    """One row as a --parts item ("strap x2"), None for a blank row, or why it is wrong."""
    name = str(row.get("part") or "").strip()
    if not name:
        return None
    if "," in name:
        raise CatalogError(f"parts table row {n}: a part name cannot contain a comma")
    count = row.get("count")
    if count is None or count != count:  # a blank cell: None, or NaN from a table's number column
        count = 1
    whole = isinstance(count, Real) and not isinstance(count, bool) and count == int(count)
    if not whole or not 1 <= count <= MAX_COUNT:
        raise CatalogError(
            f"parts table row {n} ({name}): the count must be a whole number from 1 to {MAX_COUNT}"
        )
    # A name that itself ends in "x2" keeps an explicit count, so it is not read as one.
    counted = count > 1 or COUNTED_PART.match(name)["count"] is not None
    return f"{name} x{int(count)}" if counted else name


def _counts(parts) -> list[tuple[str, int]]:
    return [(part.name, part.count) for part in parts]
