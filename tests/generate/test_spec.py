"""EngineSpec: the demo default, the model's own request defaults, checks before loading, passing on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nano_banana.errors import InvalidSettingError, NanoBananaError, PresetError
from nano_banana.generate import spec as spec_module
from nano_banana.generate.spec import EngineSpec
from nano_banana.generate.speed import SpeedConfig
from nano_banana.model.load import SDXL_REPO
from nano_banana.settings import GenerationRequest

FAKE_DEMO = Path("/demo/base")


@pytest.fixture
def demo_installed(monkeypatch):
    monkeypatch.setattr(spec_module, "_demo_base", lambda: FAKE_DEMO)
    monkeypatch.setattr("nano_banana.demo.assets.demo_lora_path", lambda: Path("/demo/lora.st"))


@pytest.fixture
def no_demo(monkeypatch):
    monkeypatch.setattr(spec_module, "_demo_base", lambda: None)


@pytest.mark.parametrize(
    ("given", "demo", "base", "loras", "uses_demo"),
    [
        (EngineSpec(), True, str(FAKE_DEMO), ("/demo/lora.st",), True),  # no base: the demo
        (EngineSpec(loras=("mine.st",)), True, str(FAKE_DEMO), ("mine.st",), True),  # its LoRA
        (EngineSpec(base="b", loras=()), True, "b", (), False),  # a base: taken as given
        (EngineSpec(base="b", loras=("x.st:0.5",)), False, "b", ("x.st:0.5",), False),
        (EngineSpec(), False, SDXL_REPO, (), False),  # no demo installed: SDXL itself
    ],
)
def test_no_base_means_the_demo_model(request, given, demo, base, loras, uses_demo):
    request.getfixturevalue("demo_installed" if demo else "no_demo")
    resolved = given.resolve()
    assert (resolved.base, resolved.loras, given.uses_demo) == (base, loras, uses_demo)
    assert resolved.resolve() == resolved  # resolving twice changes nothing
    assert (resolved.device, resolved.dtype) == (given.device, given.dtype)


def test_request_defaults_are_the_models_own(tiny_sdxl_dir, tmp_path):
    """A model with a demo.toml beside it starts from those settings; any other from SDXL's."""
    assert EngineSpec(base=str(tiny_sdxl_dir)).request_defaults() == GenerationRequest()
    model = tmp_path / "built" / "base"
    model.mkdir(parents=True)
    (model.parent / "demo.toml").write_text("[settings]\nsteps = 7\ncfg = 3.5\n")
    defaults = EngineSpec(base=str(model)).request_defaults()
    assert (defaults.steps, defaults.cfg) == (7, 3.5)


def test_without_a_base_the_defaults_are_the_demos_or_sdxls(request, monkeypatch):
    from nano_banana.demo.assets import demo_settings

    monkeypatch.setattr("nano_banana.demo.assets.demo_base_dir", lambda: FAKE_DEMO)
    request.getfixturevalue("demo_installed")
    assert EngineSpec().request_defaults() == demo_settings().request()
    request.getfixturevalue("no_demo")
    monkeypatch.setattr("nano_banana.demo.assets.demo_base_dir", lambda: None)
    assert EngineSpec().request_defaults() == GenerationRequest()


def test_checks_before_loading(tmp_path):
    spec = EngineSpec(base="b", loras=(str(tmp_path / "missing.safetensors:0.5"),))
    with pytest.raises(NanoBananaError, match="missing.safetensors:0.5: no such file"):
        spec.check_files()
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        spec.check_request(GenerationRequest(preset="nope"))
    with pytest.raises(InvalidSettingError, match="steps 0 is out of range"):
        spec.check_request(GenerationRequest(steps=0))
    assert spec.check_request(GenerationRequest(prompt="x")).seed is not None  # drawn


def test_a_spec_passes_through_json_and_stays_hashable():
    spec = EngineSpec(
        base="b",
        loras=["a.safetensors", "b.safetensors:0.5"],  # a shell's list
        preset_dir="presets",  # and a string
        speed=SpeedConfig(prompt_cache=0),
    )
    assert spec.loras == ("a.safetensors", "b.safetensors:0.5")
    assert spec.preset_dir == Path("presets")
    again = EngineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and hash(again) == hash(spec)
    with pytest.raises(InvalidSettingError, match="unknown setting.*loras_dir"):
        EngineSpec.from_dict({**spec.to_dict(), "loras_dir": "x"})
    speed = {**spec.to_dict()["speed"], "prompt_cahce": 1}
    with pytest.raises(InvalidSettingError, match=r"\[speed\]: unknown setting.*'prompt_cache'"):
        EngineSpec.from_dict({**spec.to_dict(), "speed": speed})


def test_a_lone_lora_file_is_one_lora():
    assert EngineSpec(loras="a.safetensors:0.5").loras == ("a.safetensors:0.5",)
    assert EngineSpec(loras=Path("a.safetensors")).loras == ("a.safetensors",)


def test_loading_builds_the_engine_the_spec_describes(tiny_sdxl_dir, tiny_lora):
    engine = EngineSpec(base=str(tiny_sdxl_dir), loras=(f"{tiny_lora}:0.5",), device="cpu").load()
    assert list(engine.loras) == ["structure"] and engine.native_size == (64, 64)
