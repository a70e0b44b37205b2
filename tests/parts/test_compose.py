"""Cut-outs, composing a board from them, and the board's self-check against its plan."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from nano_banana.demo import OBJECTS
from nano_banana.demo.draw import draw_part
from nano_banana.parts.catalog import load_catalog
from nano_banana.parts.check import check_board
from nano_banana.parts.compose import compose_board, fit_in_box
from nano_banana.parts.cutout import CutoutRejected, cut_out
from nano_banana.parts.plan import plan_board

SIDE = 128


def render(*shapes, background=(255, 255, 255)) -> Image.Image:
    """A render on a plain backdrop with ellipses at the given boxes (fractions of the side)."""
    image = Image.new("RGB", (SIDE, SIDE), background)
    draw = ImageDraw.Draw(image)
    for box in shapes:
        draw.ellipse([round(v * SIDE) for v in box], fill=(40, 90, 160))
    return image


def test_one_clean_part_is_cut_out_with_alpha_and_cropped():
    cutout = cut_out(render((0.2, 0.3, 0.8, 0.7)))
    assert cutout.image.mode == "RGBA"
    w, h = cutout.image.size
    assert abs(w - 0.6 * SIDE) <= 3 and abs(h - 0.4 * SIDE) <= 3
    alpha = cutout.image.getchannel("A")
    assert alpha.getpixel((w // 2, h // 2)) == 255 and alpha.getpixel((0, 0)) < 40  # corner outside
    assert 0.15 < cutout.coverage < 0.25


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (render(), "nothing was drawn"),
        (render((0.05, 0.1, 0.4, 0.5), (0.55, 0.5, 0.95, 0.9)), "2 separate pieces"),
        (render((-0.2, 0.3, 0.5, 0.7)), "cut off by the edge"),
        (render((0.45, 0.45, 0.52, 0.52)), "too small"),
        (render((0.2, 0.3, 0.8, 0.7), background=(30, 30, 30)), "not white"),
    ],
)
def test_a_render_that_is_not_one_clean_part_is_refused_with_the_reason(image, reason):
    with pytest.raises(CutoutRejected, match=reason):
        cut_out(image)


def test_fit_in_box_keeps_proportions_and_stays_inside():
    assert fit_in_box((100, 50), (10, 10, 110, 110)) == (10, 35, 110, 85)
    assert fit_in_box((10, 40), (0, 0, 40, 40)) == (15, 0, 25, 40)


def world_cutouts(spec_key: str, plan) -> dict:
    """Each planned part drawn alone by the demo world's own drawing code, then cut out."""
    spec = next(o for o in OBJECTS if o.key == spec_key)
    shapes = {p.name: p for p in spec.parts}
    cutouts = {}
    for part in plan.parts:
        shape = shapes[part.name]
        image = Image.new("RGB", (SIDE, SIDE), "white")
        scale = 0.7 * SIDE / max(shape.size)
        w, h = shape.size[0] * scale, shape.size[1] * scale
        draw_part(ImageDraw.Draw(image), shape, (64 - w / 2, 64 - h / 2, 64 + w / 2, 64 + h / 2))
        cutouts[part.number] = cut_out(image)
    return cutouts


@pytest.mark.parametrize("layout", ["knolling", "exploded"])
@pytest.mark.parametrize("key", ["watch", "camera", "speaker"])
def test_a_composed_board_passes_its_own_check(key, layout, tmp_path):
    plan = plan_board(load_catalog(user_dir=tmp_path)[key], layout, SIDE, SIDE, seed=1)
    board, placed = compose_board(plan, world_cutouts(key, plan))
    for before, after in zip(plan.parts, placed.parts, strict=True):
        assert before.box[0] <= after.box[0] and after.box[2] <= before.box[2]  # stays in its box
        assert before.box[1] <= after.box[1] and after.box[3] <= before.box[3]
    check = check_board(board, placed)
    assert check.accepted, check.problems()
    assert check.exact_count and min(check.ious) >= 0.7


def test_a_lost_and_a_merged_part_are_named(tmp_path):
    plan = plan_board(load_catalog(user_dir=tmp_path)["watch"], "knolling", SIDE, SIDE, seed=1)
    board, placed = compose_board(plan, world_cutouts("watch", plan))
    draw = ImageDraw.Draw(board)
    first, second, third = placed.parts[:3]
    draw.rectangle(third.box, fill="white")  # the third part painted out: lost
    # the first two joined by a bar: one blob where two parts were planned
    y = (first.box[1] + first.box[3]) // 2
    draw.rectangle((first.box[2] - 2, y - 3, second.box[0] + 2, y + 3), fill=(40, 40, 40))
    check = check_board(board, placed)
    assert not check.accepted
    assert third.name in check.lost
    assert (first.name, second.name) in check.merged
    assert any("merged" in p for p in check.problems()) and any(
        "lost" in p for p in check.problems()
    )
