"""Parts-first boards through the engine, and the engine's image-to-image path they use."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from nano_banana.errors import CatalogError, InvalidSettingError
from nano_banana.gallery.png import png_bytes, read_record
from nano_banana.generate.boards import part_prompt, part_side
from nano_banana.generate.engine import Engine, image_to_image_steps
from nano_banana.parts.catalog import load_catalog
from nano_banana.parts.plan import BoardPlan
from nano_banana.settings import GenerationRequest


@pytest.fixture(scope="module")
def tiny(tiny_sdxl_dir) -> Engine:
    return Engine.load(str(tiny_sdxl_dir))


def tiny_request(seed: int = 3, **kw) -> GenerationRequest:
    return GenerationRequest(prompt="a watch", seed=seed, steps=4, width=64, height=64, **kw)


def test_image_to_image_redraws_the_input_by_its_strength(demo_engine):
    """A world render as the input photo: a light pass keeps it, full strength forgets it."""
    from nano_banana.demo import render_object

    photo = render_object("camera", "assembled", seed=4).image
    request = GenerationRequest(prompt="a professional camera", preset="none", seed=2, steps=20,
                                cfg=1.5, lora_scale=0.0)  # fmt: skip
    events = []
    light = demo_engine.generate(replace(request, strength=0.25), init_image=photo,
                                 progress=events.append)  # fmt: skip
    heavy = demo_engine.generate(replace(request, strength=1.0), init_image=photo).image
    plain = demo_engine.generate(request).image
    assert [e.step for e in events] == list(range(1, 6)) and events[-1].total == 5
    diff = lambda a, b: np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()  # noqa: E731
    assert diff(light.image, photo) < 0.5 * diff(heavy, photo)  # a light pass stays near it
    assert diff(heavy, plain) < diff(light.image, plain)  # full strength forgets it
    assert light.record.request.strength == 0.25 and image_to_image_steps(20, 0.25) == 5


@pytest.mark.parametrize(
    ("strength", "fragment"), [(None, "needs a strength"), (0.1, "redraws nothing")]
)
def test_image_to_image_settings_that_draw_nothing_are_refused(tiny, strength, fragment):
    source = Image.new("RGB", (64, 64), "white")
    with pytest.raises(InvalidSettingError, match=fragment):
        tiny.generate(tiny_request(strength=strength), init_image=source)


def test_parts_are_drawn_at_a_quarter_of_the_pixels_but_never_below_a_small_models_size():
    assert part_side(1024) == 512 and part_side(128) == 128 and part_side(256) == 256


def test_a_part_is_drawn_with_its_look_and_what_it_belongs_to(tmp_path):
    from nano_banana.parts.plan import plan_board

    plan = plan_board(load_catalog(user_dir=tmp_path)["watch"], "knolling", 128, 128, seed=0)
    crown = next(p for p in plan.parts if p.name == "crown")
    assert part_prompt(crown, plan) == "small knurled crown, the crown of a mechanical watch"


def demo_board(engine, **kw):
    request = GenerationRequest(prompt="a mechanical watch", preset="knolling", seed=1,
                                steps=20, cfg=1.5, lora_scale=1.0, compose=True, **kw)  # fmt: skip
    return engine.generate(request)


def test_a_composed_board_has_exactly_the_catalogs_parts_and_carries_its_plan(
    demo_engine, tmp_path
):
    events = []
    result = demo_board(demo_engine)
    board = result.record.board
    plan = BoardPlan.from_dict(board["plan"])
    watch = load_catalog(user_dir=tmp_path)["watch"]
    assert [p.name for p in sorted(plan.parts, key=lambda p: p.number)] == [
        p.name for p in plan.parts
    ]  # numbered in order
    assert sorted(p.name for p in plan.parts) == sorted(p.name for p in watch.parts)
    assert result.image.size == (128, 128) and plan.layout == "knolling"
    assert board["check"]["planned"] == 7 and len(board["check"]["ious"]) == 7
    steps = [a["step"] for a in board["attempts"]]
    assert steps.count("part") >= 7 and "unify" in steps
    # the plan travels with the PNG and comes back whole
    path = tmp_path / "board.png"
    path.write_bytes(png_bytes(result.image, result.record))
    assert read_record(path).board == board
    assert demo_board(demo_engine).image.tobytes() == result.image.tobytes()  # same seed
    assert events == []


def test_compose_settings_reach_the_plan(demo_engine):
    parts = demo_board(demo_engine, parts="case, dial, strap x2", strength=0.0)
    plan = BoardPlan.from_dict(parts.record.board["plan"])
    assert [p.name for p in plan.parts].count("strap") == 2 and len(plan.parts) == 4
    assert parts.record.board["unified"] is False or parts.record.request.strength == 0.0
    exploded = demo_engine.generate(
        replace(parts.record.request, preset="exploded-view", parts=None, explode=0.5)
    )
    assert BoardPlan.from_dict(exploded.record.board["plan"]).explode == 0.5


@pytest.mark.parametrize(
    ("prompt", "preset", "error", "fragment"),
    [
        ("a mechanical watch", "none", InvalidSettingError, "has no board layout"),
        ("a hooded sweatshirt", "knolling", CatalogError, "--parts"),
    ],
)
def test_boards_it_cannot_plan_are_refused_before_drawing(
    demo_engine, prompt, preset, error, fragment
):
    request = GenerationRequest(prompt=prompt, preset=preset, seed=1, compose=True)
    with pytest.raises(error, match=fragment):
        demo_engine.generate(request)


def test_a_given_plan_is_drawn_at_its_own_size_or_refused(demo_engine, tmp_path):
    from nano_banana.parts.plan import plan_board

    plan = plan_board(load_catalog(user_dir=tmp_path)["watch"], "knolling", 64, 64, seed=0)
    request = GenerationRequest(prompt="a mechanical watch", seed=1, compose=True,
                                plan=plan.to_json())  # fmt: skip
    with pytest.raises(InvalidSettingError, match="the board plan is 64x64 but the image is asked"):
        demo_engine.generate(request)  # the demo's own size: 128x128
