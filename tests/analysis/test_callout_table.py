"""The editable callout table: rows from the parts found or from a board's plan, drawn and
exported as edited (names, order, shown or not)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from nano_banana.analysis.callouts import (
    EXPORT_COLUMNS,
    annotate,
    annotate_rows,
    callouts_csv,
    callouts_json,
    detected_rows,
    numbered,
)
from nano_banana.analysis.layout import analyze_layout
from nano_banana.errors import ImageAnalysisError
from nano_banana.parts.catalog import load_catalog, resolve_object
from nano_banana.parts.labels import CSV_COLUMNS, board_rows, parts_csv
from nano_banana.parts.plan import plan_board

COLORS = [(200, 40, 40), (40, 90, 200), (30, 150, 60), (230, 150, 30), (120, 60, 170)]


def row_of_squares(n: int = 4, touching_last: bool = False) -> Image.Image:
    """``n`` squares in one row on white; the last two touch when asked."""
    img = Image.new("RGB", (128, 128), "white")
    draw = ImageDraw.Draw(img)
    x = 8
    for i in range(n):
        draw.rectangle((x, 54, x + 15, 69), fill=COLORS[i % len(COLORS)])
        x += 16 if touching_last and i == n - 2 else 26
    return img


def marks(annotation) -> int:
    """How many separate marks (circle, leader, dot) the callouts drew on the picture."""
    side = 512
    out = np.asarray(annotation.image).astype(int)[:side, :side]
    picture = np.asarray(row_of_squares().resize((side, side), Image.Resampling.LANCZOS)).astype(
        int
    )
    changed = np.abs(out - picture).sum(axis=2) > 60
    return ndimage.label(ndimage.binary_fill_holes(changed), structure=np.ones((3, 3)))[1]


def test_detected_parts_are_named_part_n_never_guessed():
    rows = detected_rows(analyze_layout(row_of_squares()))
    assert [(r.name, r.order, r.show) for r in rows] == [
        ("part 1", 1, True), ("part 2", 2, True), ("part 3", 3, True), ("part 4", 4, True)
    ]  # fmt: skip
    assert [r.part.centroid[0] for r in rows] == sorted(r.part.centroid[0] for r in rows)


def test_a_part_that_may_be_merged_says_so_in_its_note():
    rows = detected_rows(analyze_layout(row_of_squares(4, touching_last=True)))
    assert len(rows) == 3 and rows[-1].note.startswith("may be 2 parts merged")
    assert [r.note for r in rows[:2]] == ["", ""]


def test_edited_names_order_and_hidden_rows_are_drawn_and_numbered_as_edited():
    rows = detected_rows(analyze_layout(row_of_squares()))
    edited = [
        replace(rows[0], name="strap", order=3),
        replace(rows[1], show=False),  # a shadow, say: not a part
        replace(rows[2], name="case", order=1),
        replace(rows[3], name="crown", order=3),  # ties keep the table's order
    ]
    assert [r.name for r in numbered(edited)] == ["case", "strap", "crown"]
    drawn = annotate_rows(row_of_squares(), edited)
    assert [(c.number, c.name) for c in drawn.callouts] == [(1, "case"), (2, "strap"), (3, "crown")]
    assert [c.part for c in drawn.callouts] == [rows[2].part, rows[0].part, rows[3].part]
    assert marks(drawn) == 3  # the hidden part gets no mark
    assert drawn.report is None  # the table's parts, not a second analysis
    # Unedited, the table draws what annotate draws.
    plain = annotate(row_of_squares())
    assert np.array_equal(np.asarray(annotate_rows(row_of_squares(), rows).image),
                          np.asarray(plain.image))  # fmt: skip


def test_a_shown_row_without_a_name_is_refused_with_its_row_number():
    rows = detected_rows(analyze_layout(row_of_squares()))
    with pytest.raises(ImageAnalysisError, match="callout row 2 has no name"):
        numbered([rows[0], replace(rows[1], name="  ")])
    assert len(numbered([rows[0], replace(rows[1], name="", show=False)])) == 1


def test_csv_and_json_exports_hold_the_drawn_callouts():
    rows = detected_rows(analyze_layout(row_of_squares()))
    edited = [replace(rows[1], name="case, steel", order=0), rows[0], replace(rows[2], show=False),
              rows[3]]  # fmt: skip
    table = list(csv.DictReader(io.StringIO(callouts_csv(edited))))
    assert list(table[0]) == list(EXPORT_COLUMNS)
    assert [(r["number"], r["name"]) for r in table] == [
        ("1", "case, steel"),
        ("2", "part 1"),
        ("3", "part 4"),
    ]  # fmt: skip  (a comma in a name is quoted, not a new column)
    assert [int(table[0][k]) for k in ("x0", "y0", "x1", "y1")] == list(rows[1].part.bbox)
    records = json.loads(callouts_json(edited))
    assert [list(r) for r in records] == [list(EXPORT_COLUMNS)] * 3
    assert [(r["number"], r["name"]) for r in records] == [
        (1, "case, steel"), (2, "part 1"), (3, "part 4")
    ]  # fmt: skip


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A knolling plan of a watch with a pair of straps, and a picture with its boxes filled."""
    catalog = load_catalog(user_dir=tmp_path_factory.mktemp("catalog"))
    obj = resolve_object("a watch", "case, strap x2, crown", catalog)
    plan = plan_board(obj, "knolling", 256, 256, seed=1)
    image = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(image)
    for i, part in enumerate(plan.parts):
        x0, y0, x1, y1 = part.box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=COLORS[i % len(COLORS)])
    return plan, image


def test_a_boards_rows_come_from_its_plan_and_export_as_its_parts_list(board):
    plan, image = board
    rows = board_rows(plan, image)
    assert [r.name for r in rows] == [p.name for p in plan.parts]  # the catalog's names
    assert sorted(r.name for r in rows) == ["case", "crown", "strap", "strap"]
    assert [r.label for r in rows] == plan.part_names()  # "strap (1 of 2)"
    assert [r.part.bbox for r in rows] == [p.box for p in plan.parts]
    assert [r.note[:11] for r in rows if r.name == "strap"] == ["copy 1 of 2", "copy 2 of 2"]
    assert callouts_csv(rows, CSV_COLUMNS) == parts_csv(plan)  # unedited: the same file
    records = json.loads(callouts_json(rows, CSV_COLUMNS))
    assert all(list(r) == list(CSV_COLUMNS) for r in records)
    assert [r["count"] for r in records if r["name"] == "strap"] == [2, 2]


def test_a_renamed_and_reordered_board_keeps_its_copies_apart(board):
    plan, image = board
    rows = {r.label: r for r in board_rows(plan, image)}
    edited = [replace(rows["case"], order=4), rows["crown"],
              replace(rows["strap (1 of 2)"], name="leather strap", order=1),
              replace(rows["strap (2 of 2)"], name="leather strap", order=1)]  # fmt: skip
    drawn = annotate_rows(image, edited)
    assert [c.name for c in drawn.callouts] == [
        "leather strap (1 of 2)", "leather strap (2 of 2)", "crown", "case"
    ]  # fmt: skip
    table = list(csv.DictReader(io.StringIO(callouts_csv(edited, CSV_COLUMNS))))
    assert [(r["number"], r["name"], r["copy"], r["count"]) for r in table] == [
        ("1", "leather strap", "1", "2"), ("2", "leather strap", "2", "2"),
        ("3", "crown", "1", "1"), ("4", "case", "1", "1"),
    ]  # fmt: skip


def test_a_board_shown_smaller_than_planned_gets_its_boxes_scaled(board):
    plan, image = board
    rows = board_rows(plan, image.resize((128, 128)))
    for row, planned in zip(rows, plan.parts, strict=True):
        assert np.allclose(row.part.bbox, [v / 2 for v in planned.box], atol=1)
