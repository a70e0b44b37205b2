"""Request validation: every bad value gets a precise message; good values pass unchanged."""

import math

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.settings import (
    DEFAULTS,
    MAX_SEED,
    GenerationRequest,
    LoraWeight,
    Sampler,
    field_bounds,
    parse_seed_option,
)


def test_defaults_are_the_designs():
    assert (DEFAULTS.lora_scale, DEFAULTS.cfg, DEFAULTS.steps) == (0.8, 7.5, 30)
    assert (DEFAULTS.width, DEFAULTS.height, DEFAULTS.sampler) == (None, None, Sampler.EULER_A)
    assert DEFAULTS.sized(1024, 1024).validated().width == 1024  # SDXL's native size


def test_random_seed_is_drawn_and_recorded():
    a = GenerationRequest(prompt="x").validated()
    b = GenerationRequest(prompt="x").validated()
    assert 0 <= a.seed <= MAX_SEED and isinstance(a.seed, int)
    assert a.seed != b.seed  # 1 in 4 billion chance of a false failure


def test_given_seed_is_kept():
    assert GenerationRequest(seed=MAX_SEED).validated().seed == MAX_SEED
    assert GenerationRequest(seed="17").validated().seed == 17


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 1000 + 1}, "width 1001 is not a multiple of 8"),
        ({"height": 0}, "height 0 is out of range"),
        ({"width": -64}, "width -64 is out of range"),
        ({"width": 65536}, "width 65536 is out of range"),
        ({"width": 512.0}, "width must be a whole number"),
        ({"steps": 0}, "steps 0 is out of range: use 1..150"),
        ({"steps": 10_000}, "steps 10000 is out of range"),
        ({"cfg": math.nan}, "cfg must be a finite number"),
        ({"cfg": -1.0}, "cfg -1.0 is out of range"),
        ({"cfg": math.inf}, "cfg must be a finite number"),
        ({"lora_scale": 5.0}, "lora scale 5.0 is out of range: use -1.0..2.0"),
        ({"lora_scale": math.nan}, "lora scale must be a finite number"),
        ({"seed": -1}, "seed -1 is out of range"),
        ({"seed": 2**64}, "is out of range"),
        ({"seed": "abc"}, "seed must be a whole number"),
        ({"seed": True}, "seed must be a whole number"),
        ({"sampler": "plms"}, "unknown sampler 'plms'"),
        ({"prompt": "a\x00b"}, "prompt contains a NUL"),
        ({"prompt": "w" * 10_001}, "prompt is 10,001 characters long; the limit is 10,000"),
        ({"negative_prompt": "w" * 10_001}, "negative prompt is 10,001 characters long"),
        ({"parts": "case, " * 2_000}, "parts list is 12,000 characters long"),
        ({"prompt": "caf\udce9"}, "prompt is not valid UTF-8 text"),
        ({"preset": 3}, "preset must be text"),
        ({"loras": (LoraWeight("x", 9.0),)}, "weight of LoRA 'x' 9.0 is out of range"),
    ],
)
def test_bad_values_are_named(changes, message):
    with pytest.raises(InvalidSettingError, match=message.replace("(", r"\(").replace(".", r"\.")):
        GenerationRequest(**changes).validated()


def test_dict_round_trip_and_unknown_keys():
    request = GenerationRequest(prompt="ü 😀", loras=(LoraWeight("a", 0.5),), seed=3).validated()
    assert GenerationRequest.from_dict(request.to_dict()) == request
    with pytest.raises(InvalidSettingError, match="unknown setting"):
        GenerationRequest.from_dict({**request.to_dict(), "guidance": 3})


@pytest.mark.parametrize(
    ("name", "low", "high", "step", "slider"),
    [
        ("steps", 1, 150, 1, (1, 80)),
        ("cfg", 0.0, 30.0, 0.5, (1.0, 20.0)),
        ("lora_scale", -1.0, 2.0, 0.05, (0.0, 1.5)),
        ("width", 64, 4096, 8, (64, 4096)),
        ("height", 64, 4096, 8, (64, 4096)),
        ("seed", 0, MAX_SEED, 1, (0, MAX_SEED)),
    ],
)
def test_bounds_are_what_validation_accepts(name, low, high, step, slider):
    """The studio's widgets take these bounds; validation accepts exactly low..high."""
    bounds = field_bounds(name)
    assert (bounds.low, bounds.high, bounds.step, bounds.slider_range()) == (
        low,
        high,
        step,
        slider,
    )
    for ok in (low, high):
        GenerationRequest(**{name: ok}).validated()
    for bad in (low - step, high + step):
        value = type(low)(bad)
        with pytest.raises(InvalidSettingError, match="out of range"):
            GenerationRequest(**{name: value}).validated()


def test_a_slider_widens_for_a_value_outside_its_useful_range():
    steps = field_bounds("steps")
    assert steps.slider_range(100) == (1, 100)  # a reused image made with 100 steps
    assert steps.slider_range(30) == (1, 80)
    assert field_bounds("lora_scale").slider_range(-0.5) == (-0.5, 1.5)


@pytest.mark.parametrize(
    ("given", "seed"), [("random", None), ("RANDOM ", None), ("17", 17), (17, 17), ("0", 0)]
)
def test_seed_options(given, seed):
    assert parse_seed_option(given) == seed


def test_a_prompt_at_the_limit_is_accepted():
    assert len(GenerationRequest(prompt="w" * 10_000).validated().prompt) == 10_000
