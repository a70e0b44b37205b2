"""A1111's ``<lora:NAME:WEIGHT>`` tags: the grammar, matching loaded LoRAs, applying them to a request."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.prompt.loratags import (
    apply_lora_tags,
    find_lora_tags,
    lora_aliases,
    with_lora_tags,
)
from nano_banana.settings import GenerationRequest, LoraWeight

# prompt -> (text the encoders get, [(name, weight)])
GRAMMAR = {
    "a watch <lora:knolling:0.8>": ("a watch", [("knolling", 0.8)]),
    "<lora:knolling:0.8> a watch": (" a watch", [("knolling", 0.8)]),  # the space stays
    "a <lora:knolling> watch": ("a watch", [("knolling", 1.0)]),  # no weight: 1.0
    "a watch, <lyco:knolling:.5>": ("a watch,", [("knolling", 0.5)]),  # lyco = lora
    "x <lora:knolling:0.7:0.7>": ("x", [("knolling", 0.7)]),  # text encoder : UNet
    "x <lora:knolling:te=0.6:unet=0.6>": ("x", [("knolling", 0.6)]),  # named
    "x <lora:knolling:unet=0.6:te=0.6>": ("x", [("knolling", 0.6)]),
    "x <lora:a:1> <lora:b:-0.5>": ("x", [("a", 1.0), ("b", -0.5)]),
    "x <hypernet:h:1> <lora:a:1>": ("x <hypernet:h:1>", [("a", 1.0)]),  # other kinds stay
    "x <LORA:a:1>": ("x <LORA:a:1>", []),  # A1111's type names are lower case
    "line one\n  line two  <lora:a:2>": ("line one\n  line two ", [("a", 2.0)]),  # one space
    "no tags at all: a <b> c": ("no tags at all: a <b> c", []),
}


@pytest.mark.parametrize("prompt", GRAMMAR)
def test_tags_are_read_and_taken_out_of_the_prompt(prompt):
    text, tags = find_lora_tags(prompt)
    expected_text, expected_tags = GRAMMAR[prompt]
    assert text == expected_text
    assert [(t.name, t.weight) for t in tags] == expected_tags


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("x <lora:a:0.5:1>", "weights the text encoders 0.5 and the UNet 1"),
        ("x <lora:a:te=1:unet=0>", "weights the text encoders 1 and the UNet 0"),
        ("x <lora:a:strong>", "weight 'strong' is not a number"),
        ("x <lora:a:nan>", "not a finite number"),
        ("x <lora::1>", "names no LoRA"),
        ("x <lora:a:1:1:dyn=8>", "dyn="),
    ],
)
def test_tags_we_cannot_apply_exactly_are_refused_in_one_line(prompt, message):
    with pytest.raises(InvalidSettingError, match=message) as err:
        find_lora_tags(prompt)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("prompt", ["", " ", "knolling, a watch", "a\n  b  ", 'q "x": y, z'])
def test_written_tags_read_back_to_the_same_prompt(prompt):
    text = with_lora_tags(prompt, [("knolling", 0.8), ("exploded:v2", 0.25)])
    assert text.endswith("<lora:knolling:0.8> <lora:exploded_v2:0.25>")  # ':' would split it
    back, tags = find_lora_tags(text)
    assert back == prompt
    assert [(t.name, t.weight) for t in tags] == [("knolling", 0.8), ("exploded_v2", 0.25)]
    assert with_lora_tags(prompt, []) == prompt


# --- matching and applying ------------------------------------------------------------

AUTOV3, AUTOV2 = "0a1b2c3d4e5f", "f9e8d7c6b5"


def loaded() -> dict[str, tuple[str, ...]]:
    structure = SimpleNamespace(
        path=Path("/loras/Structure-V2.safetensors"),
        metadata={"ss_output_name": "structure_lora"},
        sha256=AUTOV2 + "0" * 54,
        data_sha256=AUTOV3 + "1" * 52,
    )
    return {"structure_v2": lora_aliases("structure_v2", structure), "trainee": ("trainee",)}


def pasted(prompt: str, **kw) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, preset="none", **kw)


@pytest.mark.parametrize(
    "name", ["structure_v2", "Structure-V2", "structure_lora", AUTOV3, AUTOV3.upper(), AUTOV2]
)
def test_a_tag_finds_its_lora_by_name_stem_alias_or_short_hash(name):
    request = apply_lora_tags(pasted(f"a watch <lora:{name}:0.7>"), loaded())
    assert request.prompt == "a watch"
    assert request.loras == (LoraWeight("structure_v2", 0.7),)


def test_tags_choose_the_loras_or_adjust_the_chosen_ones():
    # no LoRAs chosen: the tags choose them, like A1111 (untagged LoRAs are off)
    assert apply_lora_tags(pasted("x <lora:trainee:0.5>"), loaded()).loras == (
        LoraWeight("trainee", 0.5),
    )
    chosen = pasted("x <lora:trainee:0.5>", loras=(LoraWeight("structure_v2", 1.0),))
    assert apply_lora_tags(chosen, loaded()).loras == (
        LoraWeight("structure_v2", 1.0),
        LoraWeight("trainee", 0.5),
    )
    untagged = pasted("x", loras=(LoraWeight("structure_v2", 1.0),))
    assert apply_lora_tags(untagged, loaded()) is untagged


def test_a_pasted_hash_finds_the_lora_under_another_name():
    """As A1111 on paste: ``Lora hashes`` maps the tag's name to a short hash of a local file."""
    request = apply_lora_tags(pasted("x <lora:their_name:1>"), loaded(), {"their_name": AUTOV3})
    assert request.loras == (LoraWeight("structure_v2", 1.0),)


def test_an_unknown_tag_names_itself_and_the_loaded_loras():
    with pytest.raises(InvalidSettingError) as err:
        apply_lora_tags(pasted("x <lora:nope:1>"), loaded())
    assert str(err.value) == (
        "LoRA tag <lora:nope:1> names no loaded LoRA 'nope' (loaded: structure_v2, trainee)"
    )
    with pytest.raises(InvalidSettingError, match=r"loaded: none\)"):
        apply_lora_tags(pasted("x <lora:nope:1>"), {})


def test_bad_tag_uses_are_refused():
    with pytest.raises(InvalidSettingError, match="tagged twice"):
        apply_lora_tags(pasted("x <lora:trainee:1> <lora:TRAINEE:1>"), loaded())
    with pytest.raises(InvalidSettingError, match="weight of LoRA tag <lora:trainee:5>"):
        apply_lora_tags(pasted("x <lora:trainee:5>"), loaded())
    twins = {"a": ("a", "same"), "b": ("b", "same")}
    with pytest.raises(InvalidSettingError, match=r"fits several loaded LoRAs \(a, b\)"):
        apply_lora_tags(pasted("x <lora:same:1>"), twins)
