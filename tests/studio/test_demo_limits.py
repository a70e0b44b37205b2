"""The demo model's limits: the objects it draws, prompts that name none, examples it can draw."""

from __future__ import annotations

from pathlib import Path

import pytest

from nano_banana.demo.objects import OBJECTS
from nano_banana.generate.spec import EngineSpec
from nano_banana.prompt.presets import load_presets
from nano_banana.studio.demo_limits import DemoObjects, demo_objects_for, unknown_object_note


@pytest.fixture(scope="module")
def demo() -> DemoObjects:
    return DemoObjects.load()


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("a mechanical watch", "a mechanical watch"),
        ("a vintage wristwatch, top view", "a mechanical watch"),  # the catalog's alias
        ("a desk lamp", "a desk lamp"),
        ("a hooded sweatshirt", None),
        ("a drone", None),  # in the parts catalog, but the demo world never drew one
        ("", None),
    ],
)
def test_a_prompt_names_a_demo_object_or_none(demo, prompt, named):
    assert demo.named_in(prompt) == named


def test_the_demo_lists_its_ten_objects(demo):
    assert demo.phrases == [spec.phrase for spec in OBJECTS]


def test_no_scenario_offers_an_example_the_demo_cannot_draw(demo, tmp_path):
    presets = load_presets(user_dir=tmp_path)  # the shipped scenarios only
    fashion = presets["fashion-flat-lay"].examples
    assert "a hooded sweatshirt" in fashion
    assert demo.drawable(fashion) == ("a denim jacket", "a sneaker")
    for preset in presets.values():
        assert all(demo.named_in(example) for example in demo.drawable(preset.examples))


def test_only_a_demo_model_has_demo_limits(tiny_sdxl_dir: Path):
    assert demo_objects_for(EngineSpec(base=str(tiny_sdxl_dir))) is None
    if EngineSpec().uses_demo:  # the shipped demo, as the CLI resolves it
        assert demo_objects_for(EngineSpec().resolve()) is not None


def test_the_note_for_an_unknown_object_says_where_parts_come_from():
    assert "generic shapes" in unknown_object_note("a hooded  sweatshirt", compose=False)
    assert "parts come from the parts list" in unknown_object_note("a kite", compose=True)
