"""One check for unknown keys: every reader of settings data refuses a misspelt key the same way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from nano_banana.errors import InvalidSettingError, MetadataError, PresetError
from nano_banana.options import reject_unknown


@dataclass
class Knobs:
    steps: int = 1
    seed: int = 0


@pytest.mark.parametrize(
    ("data", "known", "kwargs", "message"),
    [
        ({"steps": 2}, ["steps", "seed"], {}, None),
        ({}, Knobs, {}, None),
        (
            {"stpes": 2},
            ["steps", "seed"],
            {},
            "here: unknown setting(s) stpes (did you mean 'steps'?); known: seed, steps",
        ),
        (  # a dataclass stands for its fields; every unknown key is named, sorted
            {"zzz": 1, "sede": 2, "steps": 3},
            Knobs,
            {"what": "key", "advice": "see --help"},
            "here: unknown key(s) sede, zzz (did you mean 'seed'?); see --help",
        ),
        ({"colour": 1}, ["steps"], {}, "here: unknown setting(s) colour; known: steps"),
        (  # a reader may word the problem its own way
            {"sede": 1},
            ["seed"],
            {"problem": "cannot override", "advice": "settable: seed"},
            "here: cannot override sede (did you mean 'seed'?); settable: seed",
        ),
    ],
)
def test_reject_unknown(data, known, kwargs, message):
    if message is None:
        reject_unknown(data, known, where="here", **kwargs)
        return
    with pytest.raises(InvalidSettingError) as info:
        reject_unknown(data, known, where="here", **kwargs)
    assert str(info.value) == message


def test_the_error_type_is_the_callers():
    with pytest.raises(PresetError, match="unknown key"):
        reject_unknown({"x": 1}, ["y"], where="preset", what="key", error=PresetError)


# --- every site ------------------------------------------------------------------------------


def _request(bad: str) -> None:
    from nano_banana.settings import GenerationRequest

    GenerationRequest.from_dict({**GenerationRequest(prompt="p").to_dict(), bad: 3})


def _train_config(bad: str) -> None:
    from nano_banana.training.config import TrainConfig

    TrainConfig.from_dict({"data": "d", bad: 3}, source="config file 'run.toml'")


def _preset(bad: str) -> None:
    from nano_banana.prompt.presets import parse_preset

    parse_preset("mine", f'template = "{{prompt}}"\n{bad} = "x"', "mine.toml")


def _demo_settings(bad: str, tmp_path: Path) -> None:
    from nano_banana.demo.assets import demo_settings

    path = tmp_path / "demo.toml"
    path.write_text(f"[settings]\n{bad} = 3\n", encoding="utf-8")
    demo_settings(path)


def _studio_config(bad: str) -> None:
    from nano_banana.studio.config import ENV_VAR, StudioConfig

    StudioConfig.from_env({ENV_VAR: json.dumps({"lora_dir": None, bad: 3})})


def _record(bad: str) -> None:
    from nano_banana.gallery.png import parse_record_json
    from nano_banana.gallery.record import GenerationRecord
    from nano_banana.settings import GenerationRequest

    request = GenerationRequest(prompt="p", seed=1, width=64, height=64).validated()
    record = GenerationRecord(request, "p", "", 1, False, base_model="base")
    parse_record_json(json.dumps({**record.to_dict(), bad: 3}))


def _overrides(bad: str) -> None:
    from nano_banana.generate.reproduce import apply_overrides
    from nano_banana.settings import GenerationRequest

    apply_overrides(GenerationRequest(prompt="p"), {bad: 3})


SITES = [  # (reader, a misspelt key, the key it suggests, the error, a fragment of the message)
    (_request, "stpes", "steps", InvalidSettingError, "generation request: unknown setting(s)"),
    (_train_config, "rnak", "rank", InvalidSettingError, "config file 'run.toml': unknown"),
    (_preset, "triger", "trigger", PresetError, "preset file mine.toml: unknown key(s)"),
    (_demo_settings, "lora_scal", "lora_scale", InvalidSettingError, "unknown demo setting(s)"),
    (_studio_config, "galery", "gallery", InvalidSettingError, "unknown key(s) galery"),
    (_record, "prompt_usd", "prompt_used", MetadataError, "record: unknown field(s)"),
    (_overrides, "stpes", "steps", InvalidSettingError, "request: cannot override stpes"),
]


@pytest.mark.parametrize(
    ("read", "bad", "suggested", "error", "fragment"), SITES, ids=[s[0].__name__ for s in SITES]
)
def test_every_reader_refuses_unknown_keys_with_a_hint(
    read, bad, suggested, error, fragment, tmp_path
):
    with pytest.raises(error) as info:
        read(bad, tmp_path) if read is _demo_settings else read(bad)
    message = str(info.value)
    assert fragment in message and bad in message
    assert f"did you mean '{suggested}'?" in message
