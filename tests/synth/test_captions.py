"""Captions of synthesized boards: written from the plan, in the preset's words, triggers first."""

from __future__ import annotations

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.parts.plan import BoardPlan, PlacedPart, plan_board
from nano_banana.synth.captions import CAPTION_STYLES, caption, layout_names, parse_styles


@pytest.fixture(scope="module")
def headphones(catalog):
    """Eight pieces of five parts: the ear cups, cushions and drivers come in pairs."""
    return plan_board(catalog["headphones"], "knolling", 512, 512, seed=0)


@pytest.mark.parametrize("preset_id", ["knolling", "exploded-view", "repair-manual"])
@pytest.mark.parametrize("style", CAPTION_STYLES)
def test_every_style_starts_with_the_presets_trigger_words_and_names_the_object(
    headphones, presets, preset_id, style
):
    preset = presets[preset_id]
    text = caption(headphones, preset, style)
    assert text.startswith(preset.trigger) and preset.trigger
    assert headphones.phrase in text


def test_the_preset_style_is_the_prompt_users_send(headphones, presets):
    preset = presets["knolling"]
    assert caption(headphones, preset, "preset") == preset.render("a pair of over-ear headphones")


def test_the_parts_style_names_every_piece_in_reading_order(headphones, presets):
    text = caption(headphones, presets["exploded-view"], "parts")
    listed = text.split(f"{headphones.pieces}: ")[1].split(", parts separated")[0].split(", ")
    assert listed == layout_names(headphones)
    assert len(listed) == len(headphones.parts) == 8  # a pair is named twice, one per piece
    assert listed.count("ear cup") == 2 and "headband" in listed
    assert text.endswith("industrial design diagram")  # the preset's template still wraps it


def test_the_short_style_is_the_trigger_words_and_the_object(headphones, presets):
    preset = presets["knolling"]
    assert caption(headphones, preset, "short") == f"{preset.trigger}, {headphones.phrase}"
    assert caption(headphones, presets["none"], "short") == headphones.phrase  # no trigger


def test_layout_names_read_top_to_bottom_then_left_to_right():
    def part(number, name, x, y):
        return PlacedPart(number, name, (x, y, x + 10, y + 10))

    plan = BoardPlan(object="custom", phrase="a thing", layout="knolling", width=100,
                     height=100, seed=0,
                     parts=(part(1, "c", 60, 50), part(2, "a", 50, 5), part(3, "d", 5, 80),
                            part(4, "b", 5, 50)))  # fmt: skip
    assert layout_names(plan) == ["a", "b", "c", "d"]


def test_an_unknown_style_is_refused_with_the_choices(headphones, presets):
    with pytest.raises(InvalidSettingError, match="unknown caption style 'long'.*preset, parts"):
        caption(headphones, presets["knolling"], "long")


@pytest.mark.parametrize(
    ("given", "styles"),
    [
        ("parts", ("parts",)),
        (" short , preset,short ", ("short", "preset")),  # trimmed, repeats dropped, order kept
        (["preset", "parts"], ("preset", "parts")),
        (("short",), ("short",)),
    ],
)
def test_parse_styles_reads_strings_and_lists(given, styles):
    assert parse_styles(given) == styles


@pytest.mark.parametrize(("given", "message"), [
    ("", "no caption style given"), (" , ", "no caption style given"), ([], "no caption style"),
    ("preset,fancy", "unknown caption style 'fancy'"), (["Parts"], "unknown caption style"),
])  # fmt: skip
def test_parse_styles_refuses_empty_and_unknown_styles(given, message):
    with pytest.raises(InvalidSettingError, match=message):
        parse_styles(given)
