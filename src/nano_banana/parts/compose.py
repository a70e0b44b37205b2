"""Lay the cut-out parts on a white board at their planned boxes.

Each cut-out is scaled to fit inside its box, keeping its proportions, and
centred there, so no part leaves its box and the plan's boxes stay the truth for
callouts. An exploded view may get a thin dashed centre line along its axis:
thin enough (under 3 px) that the layout analyser's opening removes it, so it
never counts as a part.
"""

from __future__ import annotations

from dataclasses import replace

from PIL import Image, ImageDraw

from .cutout import Cutout
from .plan import BoardPlan, Box, PlacedPart

BOARD_COLOUR = (255, 255, 255)
LINE_COLOUR = (170, 170, 170)
DASH = 0.02  # dash length, of the board's longer side


def compose_board(plan: BoardPlan, cutouts: dict[int, Cutout]) -> tuple[Image.Image, BoardPlan]:
    """The board, every part of ``plan`` (by number) pasted in its box on white, and the plan
    with each box shrunk to where its part really is (the callouts' boxes)."""
    board = Image.new("RGB", (plan.width, plan.height), BOARD_COLOUR)
    if plan.centre_line and plan.axis:
        draw_centre_line(board, plan)
    placed = [
        replace(part, box=paste_part(board, cutouts[part.number], part)) for part in plan.parts
    ]
    return board, replace(plan, parts=tuple(placed))


def fit_in_box(size: tuple[int, int], box: Box) -> Box:
    """The largest box of ``size``'s proportions centred inside ``box``."""
    x0, y0, x1, y1 = box
    scale = min((x1 - x0) / size[0], (y1 - y0) / size[1])
    w, h = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    left, top = x0 + (x1 - x0 - w) // 2, y0 + (y1 - y0 - h) // 2
    return left, top, left + w, top + h


def paste_part(board: Image.Image, cutout: Cutout, part: PlacedPart) -> Box:
    """Paste the cut-out fitted into the part's box; returns where it went."""
    target = fit_in_box(cutout.image.size, part.box)
    size = (target[2] - target[0], target[3] - target[1])
    piece = cutout.image.resize(size, Image.Resampling.LANCZOS)
    board.paste(piece, target[:2], piece)
    return target


def draw_centre_line(board: Image.Image, plan: BoardPlan) -> None:
    """A dashed line through the parts' centres along the axis, from the first part to the last."""
    draw = ImageDraw.Draw(board)
    width = max(1, min(2, round(min(plan.width, plan.height) / 512)))
    dash = max(2, round(DASH * max(plan.width, plan.height)))
    boxes = [p.box for p in plan.parts]
    if plan.axis == "vertical":
        x = round(sum((b[0] + b[2]) / 2 for b in boxes) / len(boxes))
        start, end = min(b[1] for b in boxes), max(b[3] for b in boxes)
        segments = [((x, y), (x, min(y + dash, end))) for y in range(start, end, 2 * dash)]
    else:
        y = round(sum((b[1] + b[3]) / 2 for b in boxes) / len(boxes))
        start, end = min(b[0] for b in boxes), max(b[2] for b in boxes)
        segments = [((x, y), (min(x + dash, end), y)) for x in range(start, end, 2 * dash)]
    for segment in segments:
        draw.line(segment, fill=LINE_COLOUR, width=width)
