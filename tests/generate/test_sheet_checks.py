"""The compare and sweep checks: one set, run by the CLI before loading and by the job queue."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.generate.sheets import (
    DEFAULT_SWEEP_SCALES,
    LORA_STRENGTHS,
    active_loras,
    check_compare,
    check_sweep,
    format_sweep_values,
    parse_sweep_values,
)
from nano_banana.settings import GenerationRequest, LoraWeight

REQUEST = GenerationRequest(prompt="a watch", seed=3, lora_scale=0.8)


@pytest.mark.parametrize(
    ("request_changes", "loras", "message"),
    [
        ({}, ["structure"], None),
        ({}, None, None),  # no model loaded yet: the LoRAs are checked later
        ({"lora_scale": -0.5}, ["structure"], None),  # an inverted LoRA is still a LoRA
        ({}, [], "compare shows what a LoRA does: choose a LoRA first"),
        ({"lora_scale": 0.0}, ["structure"], "set a LoRA scale other than 0"),
        ({"lora_scale": 0.0}, None, "set a LoRA scale other than 0"),
    ],
)
def test_check_compare(request_changes, loras, message):
    request = replace(REQUEST, **request_changes)
    if message is None:
        check_compare(request, loras)
        return
    with pytest.raises(InvalidSettingError, match=message):
        check_compare(request, loras)


@pytest.mark.parametrize(
    ("setting", "values", "loras", "message"),
    [
        ("lora_scale", DEFAULT_SWEEP_SCALES, ["structure"], None),
        ("cfg", (1.0, 5.0), [], None),  # only a LoRA-scale sweep needs a LoRA
        ("seed", (1, 2), None, None),
        ("lora_scale", (0.6,), [], "sweep shows what a LoRA does: choose a LoRA first"),
        ("lora_scale", (0.6,), None, None),  # no model loaded yet: the LoRAs are checked later
        ("lora_scale", (), ["structure"], "a sweep needs at least one value"),
        ("lora_scale", (0.6, 5.0), ["structure"], "lora scale 5.0 is out of range"),
        ("steps", (10, 0), None, "steps 0 is out of range"),
        ("width", (64,), None, "cannot sweep 'width'"),
        ("seed", tuple(range(65)), None, "a sweep takes at most 64 values, got 65"),
    ],
)
def test_check_sweep(setting, values, loras, message):
    if message is None:
        variants = check_sweep(REQUEST, setting, values, loras)
        assert [getattr(v, setting) for v in variants] == list(values)
        assert {v.seed for v in variants} == {3} or setting == "seed"
        return
    with pytest.raises(InvalidSettingError, match=message):
        check_sweep(REQUEST, setting, values, loras)


def test_the_cli_may_sweep_the_lora_scale_without_a_lora():
    variants = check_sweep(REQUEST, "lora_scale", (0.0, 1.0), [], require_lora=False)
    assert [v.lora_scale for v in variants] == [0.0, 1.0]


@pytest.mark.parametrize("kind", ["compare", "sweep"])
def test_without_a_lora_both_shells_are_told_how_to_give_one(kind):
    with pytest.raises(InvalidSettingError) as info:
        check_compare(REQUEST, []) if kind == "compare" else check_sweep(
            REQUEST, "lora_scale", (1.0,), []
        )
    assert str(info.value) == (
        f"{kind} shows what a LoRA does: choose a LoRA first (--lora FILE, or the demo model)"
    )


def test_one_set_of_sweep_values():
    assert DEFAULT_SWEEP_SCALES == (0.0, *LORA_STRENGTHS) == (0.0, 0.6, 0.8, 1.0)
    text = format_sweep_values(DEFAULT_SWEEP_SCALES)
    assert parse_sweep_values("lora_scale", text) == list(DEFAULT_SWEEP_SCALES)
    assert format_sweep_values([10, 20]) == "10,20"


@pytest.mark.parametrize(
    ("loras", "loaded", "active"),
    [
        (None, ["a", "b"], ["a", "b"]),  # every loaded LoRA
        ((LoraWeight("b"),), ["a", "b"], ["b"]),
        ((), ["a"], []),
    ],
)
def test_active_loras(loras, loaded, active):
    assert active_loras(GenerationRequest(loras=loras), loaded) == active


def test_sweep_values_are_capped_before_they_are_read():
    assert len(parse_sweep_values("seed", ",".join(map(str, range(64))))) == 64
    with pytest.raises(InvalidSettingError, match="at most 64 values, got 100000"):
        parse_sweep_values("steps", ",".join(["9" * 5000] * 100_000))
