"""The board checks itself: the layout analyser's parts against the plan's boxes.

Every planned part should be found once, where it was put. Planned and found
parts are paired by the overlap of their boxes (intersection over union, best
pairing by the Hungarian method); a planned part with no partner above
``MATCH_IOU`` was lost, and a found part that covers two planned parts is two
parts merged (a unifying pass that drew them into each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from ..analysis.layout import AnalysisConfig, LayoutReport, Part, analyze_layout
from .plan import BoardPlan, Box, label

MATCH_IOU = 0.3  # below this a found part is not the planned one
COVER = 0.5  # a found part covering this share of a planned box has taken it in
STRAY_INSIDE = 0.5  # a found part with less of itself inside the planned layout is a stray


@dataclass(frozen=True)
class BoardCheck:
    """What the analyser saw, against the plan."""

    planned: int
    found: int
    ious: tuple[float, ...]  # per planned part (plan order): IoU with its partner, 0 if none
    lost: tuple[str, ...]  # planned parts with no partner (or, planned to overlap, not covered)
    merged: tuple[tuple[str, ...], ...]  # planned parts a single found part took in together
    verdict: bool  # the analyser's "disassembled layout"
    score: int
    # Parts planned to overlap (an exploded view pulled together) are meant to touch, so one
    # found part per group is right; boards with fewer parts than the analyser's minimum for a
    # layout, and exploded views with copies side by side (pairs_across), cannot get its
    # verdict. Those checks are then not required.
    count_required: bool = True
    verdict_required: bool = True
    # Found parts lying mostly outside the planned layout: a backdrop the unifying pass
    # turned grey, a shadow drawn as a shape. Checked in every case, because where parts are
    # planned to overlap a single blob over the whole board would otherwise "cover" them all.
    strays: int = 0

    @property
    def exact_count(self) -> bool:
        return self.found == self.planned

    @property
    def accepted(self) -> bool:
        return (
            (self.verdict or not self.verdict_required)
            and (self.exact_count or not self.count_required)
            and not self.lost
            and not self.merged
            and not self.strays
        )

    def problems(self) -> list[str]:
        """What failed, in words, for the record and the user."""
        out = []
        if self.lost:
            out.append(f"lost: {', '.join(self.lost)}")
        for names in self.merged:
            out.append(f"merged: {' + '.join(names)}")
        if self.count_required and not self.exact_count:
            out.append(f"{self.found} parts found, {self.planned} planned")
        if self.verdict_required and not self.verdict:
            out.append("not judged a disassembled layout")
        if self.strays:
            out.append(f"{self.strays} shape(s) outside the planned layout")
        return out

    def to_dict(self) -> dict:
        return {"planned": self.planned, "found": self.found, "verdict": self.verdict,
                "score": self.score, "lost": list(self.lost),
                "merged": [list(m) for m in self.merged], "strays": self.strays,
                "ious": [round(v, 3) for v in self.ious],
                "problems": self.problems()}  # fmt: skip


def check_board(
    image: Image.Image, plan: BoardPlan, config: AnalysisConfig | None = None
) -> BoardCheck:
    """Analyse ``image`` and compare what it shows with ``plan``."""
    config = config or AnalysisConfig()
    return compare_to_plan(analyze_layout(image, config), plan, config.min_parts)


def compare_to_plan(report: LayoutReport, plan: BoardPlan, min_parts: int = 3) -> BoardCheck:
    """The plan's parts paired with the found ones; what was lost or merged."""
    planned = [p.box for p in plan.parts]
    found = [p.bbox for p in report.parts]
    ious = _pairing(planned, found)
    names = [label(p) for p in plan.parts]
    overlapping = any(_intersection(a, b) for i, a in enumerate(planned) for b in planned[i + 1 :])
    if overlapping:
        lost = tuple(n for n, box in zip(names, planned, strict=True)
                     if not any(_covered(box, f) >= COVER for f in found))  # fmt: skip
        merged: tuple[tuple[str, ...], ...] = ()
    else:
        lost = tuple(n for n, iou in zip(names, ious, strict=True) if iou < MATCH_IOU)
        merged = _merged(report.parts, planned, names)
    return BoardCheck(
        planned=len(planned), found=len(found), ious=tuple(ious), lost=lost, merged=merged,
        verdict=report.verdict, score=report.score, count_required=not overlapping,
        verdict_required=not overlapping and len(planned) >= min_parts and not pairs_across(plan),
        strays=sum(_inside(f, _enclosing(planned)) < STRAY_INSIDE for f in found),
    )  # fmt: skip


def pairs_across(plan: BoardPlan) -> bool:
    """An exploded view whose copies of a part sit side by side across its axis (two ear cups):
    a true exploded view, but not the single line the analyser's verdict asks for. Its count,
    losses, merges and strays are still checked."""
    return plan.layout == "exploded" and any(p.count > 1 for p in plan.parts)


def _enclosing(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip


def _inside(box: Box, area: Box) -> float:
    """The share of ``box`` that lies within ``area``."""
    own = max(0, box[2] - box[0]) * max(0, box[3] - box[1])
    return _intersection(box, area) / own if own else 1.0


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union else 0.0


def _intersection(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _pairing(planned: list[Box], found: list[Box]) -> list[float]:
    """Each planned box's IoU with its partner in the best one-to-one pairing (0: none)."""
    if not found:
        return [0.0] * len(planned)
    table = np.array([[iou(p, f) for f in found] for p in planned])
    rows, cols = linear_sum_assignment(-table)
    best = [0.0] * len(planned)
    for r, c in zip(rows, cols, strict=True):
        best[r] = float(table[r, c])
    return best


def _merged(
    found: tuple[Part, ...], planned: list[Box], names: list[str]
) -> tuple[tuple[str, ...], ...]:
    merged = []
    for part in found:
        taken = [n for n, box in zip(names, planned, strict=True)
                 if _covered(box, part.bbox) >= COVER]  # fmt: skip
        if len(taken) > 1:
            merged.append(tuple(taken))
    return tuple(merged)


def _covered(box: Box, by: Box) -> float:
    """Share of ``box`` inside ``by``."""
    return _intersection(box, by) / max(1, _area(box))
