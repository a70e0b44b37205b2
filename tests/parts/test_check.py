"""The board check: found parts against the plan, and shapes that lie outside the planned layout."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from PIL import Image, ImageDraw

from nano_banana.parts.board import make_board
from nano_banana.parts.catalog import load_catalog
from nano_banana.parts.check import check_board
from nano_banana.parts.plan import plan_board

SIDE = 128


class BoxRenderer:
    """Each part as a flat rectangle of its box's shape on white; no unifying pass."""

    def render_part(self, part, plan, seed):
        w, h = part.box[2] - part.box[0], part.box[3] - part.box[1]
        scale = 0.7 * SIDE / max(w, h)
        w, h = max(4, w * scale), max(4, h * scale)
        colour = tuple(random.Random(seed).randrange(20, 160) for _ in range(3))
        image = Image.new("RGB", (SIDE, SIDE), "white")
        c = SIDE / 2
        ImageDraw.Draw(image).rectangle((c - w / 2, c - h / 2, c + w / 2, c + h / 2), fill=colour)
        return image

    def unify(self, board, plan, seed):
        return None


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(user_dir=tmp_path_factory.mktemp("no-user-catalog"))


def overlapping(plan) -> bool:
    boxes = [p.box for p in plan.parts]
    return any(
        a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
    )


def grey_square_over_the_board() -> Image.Image:
    """What a unifying pass that greyed the backdrop draws: one shape over nearly everything."""
    image = Image.new("RGB", (SIDE, SIDE), "white")
    ImageDraw.Draw(image).rectangle((4, 4, SIDE - 5, SIDE - 5), fill=(128, 128, 128))
    return image


@pytest.mark.parametrize("key", ["watch", "sneaker"])
@pytest.mark.parametrize("explode", [0.0, 0.6])
def test_one_blob_over_a_pulled_together_exploded_view_is_rejected_as_a_stray(
    catalog, key, explode
):
    plan = plan_board(catalog[key], "exploded", SIDE, SIDE, seed=1, explode=explode)
    assert overlapping(plan)  # parts meant to touch: count and verdict are not required
    check = check_board(grey_square_over_the_board(), plan)
    assert check.found == 1 and not check.lost  # the blob "covers" every planned box ...
    assert check.strays == 1 and not check.accepted  # ... but lies mostly outside the layout
    assert check.problems() == ["1 shape(s) outside the planned layout"]
    assert check.to_dict()["strays"] == 1
    assert replace(check, strays=0).accepted  # the stray check alone rejects it


@pytest.mark.parametrize(("key", "layout", "explode"), [
    ("watch", "exploded", 0.0), ("sneaker", "exploded", 0.6), ("watch", "knolling", 1.0),
    ("camera", "knolling", 1.0), ("sneaker", "exploded", 1.0),
])  # fmt: skip
def test_a_clean_composed_board_still_passes_with_no_strays(catalog, key, layout, explode):
    plan = plan_board(catalog[key], layout, SIDE, SIDE, seed=2, explode=explode)
    result = make_board(plan, BoxRenderer(), seed=3)
    assert not result.unified  # the composed board itself was checked
    assert result.check.strays == 0 and result.accepted, result.check.problems()


def test_a_shape_beside_a_knolling_layout_is_a_stray(catalog):
    plan = plan_board(catalog["watch"], "knolling", SIDE, SIDE, seed=2)
    board = make_board(plan, BoxRenderer(), seed=3).image.copy()
    # A dark shadow along the bottom edge, below every planned part.
    bottom = max(p.box[3] for p in plan.parts)
    assert bottom < SIDE - 6
    ImageDraw.Draw(board).rectangle((10, bottom + 3, SIDE - 10, SIDE - 2), fill=(60, 60, 60))
    check = check_board(board, plan)
    assert check.strays == 1 and not check.accepted
    assert "1 shape(s) outside the planned layout" in check.problems()


@pytest.mark.parametrize("name", ["headphones", "toaster", "jacket"])
def test_an_exploded_board_with_pairs_across_its_axis_is_accepted_when_drawn_as_planned(name):
    """Copies of a part sit side by side across the axis: not the single line the analyser's
    verdict asks for, so its verdict is not required; its count still is."""
    from pathlib import Path

    plan = plan_board(load_catalog(user_dir=Path("/nonexistent"))[name], "exploded", 128, 128, 0)
    image = Image.new("RGB", (128, 128), "white")
    draw = ImageDraw.Draw(image)
    for part in plan.parts:
        draw.rectangle(
            (part.box[0], part.box[1], part.box[2] - 1, part.box[3] - 1), fill=(60, 60, 160)
        )
    check = check_board(image, plan)
    assert not check.verdict and check.exact_count  # the analyser alone would say no
    assert check.accepted, check.problems()
    missing = Image.new("RGB", (128, 128), "white")  # and a board that lost its parts still fails
    assert not check_board(missing, plan).accepted
