"""Callouts and the parts list of a board, straight from its plan: exact, never guessed.

A parts-first board knows every part's name and box, so its numbered callouts
and its parts list (CSV or JSON) come from the plan saved with the image. For
any other image, ``analysis.callouts`` finds the parts in the pixels instead.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from PIL import Image

from ..analysis.callouts import Annotation, annotate_parts
from ..analysis.layout import Part
from .plan import BoardPlan, label

CSV_COLUMNS = ("number", "name", "copy", "count", "look", "x0", "y0", "x1", "y1")


def plan_parts(plan: BoardPlan) -> list[Part]:
    """The plan's boxes as parts for the callout drawer (leader lines end at box centres)."""
    parts = []
    for placed in plan.parts:
        x0, y0, x1, y1 = placed.box
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
        parts.append(Part(placed.box, (x1 - x0) * (y1 - y0), centre, centre, (0, 0, 0), False))
    return parts


def board_callouts(image: Image.Image, plan: BoardPlan) -> Annotation:
    """Numbered callouts and the parts list, one per planned part, in the plan's order."""
    return annotate_parts(image, plan_parts(plan), plan.part_names())


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
