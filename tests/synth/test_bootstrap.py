"""``lora bootstrap``: synth -> check -> train -> eval, resumable, refusing mixed settings."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nano_banana.errors import InvalidSettingError
from nano_banana.generate.spec import EngineSpec
from nano_banana.lora.load import TRIGGER_WORDS_KEY
from nano_banana.parts.catalog import CatalogError
from nano_banana.prompt.presets import load_presets
from nano_banana.synth.bootstrap import (
    QUICK_BOARDS,
    QUICK_EVAL_SEEDS,
    QUICK_STEPS,
    SDXL_OBJECTS,
    STAGES,
    STATE_FILE,
    BootstrapConfig,
    bootstrap,
    default_objects,
    mark_done,
    quick_config,
    read_state,
    stamp_lora,
    train_config_for,
)
from nano_banana.synth.dataset import SynthConfig

WATCH = SynthConfig(objects=("watch",), count=4, variants=1, tries=1)


def metadata_of(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


# --- the config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "message"), [
    ({"steps": 0}, "--steps must be at least 1"), ({"eval_seeds": -1}, "--eval-seeds"),
])  # fmt: skip
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(InvalidSettingError, match=message):
        BootstrapConfig(synth=WATCH, **bad)


def test_eval_seeds_zero_means_no_eval():
    assert BootstrapConfig(synth=WATCH, eval_seeds=0).eval_seeds == 0


@pytest.mark.parametrize(("count", "steps", "seeds", "expected"), [
    (400, None, 4, (QUICK_BOARDS, QUICK_STEPS, QUICK_EVAL_SEEDS)),  # the defaults cut down
    (10, 50, 1, (10, 50, 1)),  # smaller settings kept
    (400, 5000, 0, (QUICK_BOARDS, QUICK_STEPS, 0)),
])  # fmt: skip
def test_quick_caps_every_stage(count, steps, seeds, expected):
    config = BootstrapConfig(synth=replace(WATCH, count=count), steps=steps, eval_seeds=seeds)
    quick = quick_config(config)
    assert (quick.synth.count, quick.steps, quick.eval_seeds) == expected
    assert quick.quick and quick.synth.objects == ("watch",)
    assert quick.settings() != config.settings()  # a quick run is not resumed as a full one


def test_settings_are_plain_json_data():
    settings = BootstrapConfig(synth=WATCH, steps=3).settings()
    assert settings["synth"]["objects"] == ["watch"] and settings["synth"]["explode"] == [0.6, 1.0]
    assert json.loads(json.dumps(settings)) == settings
    assert settings == BootstrapConfig(synth=WATCH, steps=3).settings()


def test_a_demo_base_draws_its_worlds_objects_and_sdxl_a_spread(tmp_path):
    from nano_banana.demo.objects import OBJECTS

    assert default_objects(EngineSpec()) == tuple(o.phrase for o in OBJECTS)
    assert default_objects(EngineSpec(base=str(tmp_path / "sdxl"))) == SDXL_OBJECTS


def test_the_demo_base_trains_with_the_demo_recipe_and_the_runs_steps(tmp_path):
    demo = EngineSpec().resolve().base
    own = train_config_for(demo, tmp_path / "boards", tmp_path / "lora", BootstrapConfig(WATCH))
    short = train_config_for(demo, tmp_path / "boards", tmp_path / "lora",
                             BootstrapConfig(WATCH, steps=3))  # fmt: skip
    assert own.optim.max_steps > 100 and own.dataset.resolution == 128
    assert short.optim.max_steps == 3 and short.optim.warmup_steps == 0
    assert short.dataset.data == str(tmp_path / "boards") and short.dataset.trigger == ""
    assert short.output.out == str(tmp_path / "lora") and short.output.name == "structure_lora"
    assert replace(short, optim=own.optim) == own  # only the step count differs


def test_sdxl_trains_with_the_24_gb_recipe(tmp_path):
    config = train_config_for("some/sdxl", tmp_path / "b", tmp_path / "l", BootstrapConfig(WATCH))
    assert config.dataset.resolution == 1024 and config.optim.max_steps == 2000
    assert (config.optim.batch_size, config.optim.grad_accum) == (1, 4)
    assert config.model.grad_checkpointing and config.validation.keep_best
    shorter = train_config_for("some/sdxl", tmp_path / "b", tmp_path / "l",
                               BootstrapConfig(WATCH, steps=200))  # fmt: skip
    assert (shorter.optim.max_steps, shorter.optim.warmup_steps) == (200, 50)


# --- the state file ---------------------------------------------------------------------------------


def test_the_state_records_stages_and_refuses_other_settings(tmp_path):
    settings = {"base": "b", **BootstrapConfig(WATCH, steps=3).settings()}
    assert read_state(tmp_path, settings) == []
    done: list[str] = []
    mark_done(tmp_path, settings, done, "synth")
    mark_done(tmp_path, settings, done, "check")
    assert read_state(tmp_path, settings) == ["synth", "check"]
    other = {"base": "b", **BootstrapConfig(replace(WATCH, count=5), steps=4).settings()}
    with pytest.raises(InvalidSettingError, match=r"other settings \(steps, synth differ\)"):
        read_state(tmp_path, other)


def test_an_out_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(InvalidSettingError, match="not a folder"):
        bootstrap(EngineSpec(), BootstrapConfig(WATCH), tmp_path / "out", log=print)


def test_a_run_with_other_settings_is_refused_before_loading_the_model(tmp_path, monkeypatch):
    def no_loading(self):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(EngineSpec, "load", no_loading)
    settings = {"base": EngineSpec().resolve().base, **BootstrapConfig(WATCH).settings()}
    mark_done(tmp_path, settings, [], "synth")
    state = (tmp_path / STATE_FILE).read_text()
    with pytest.raises(InvalidSettingError, match=r"\(synth differ\).*same options"):
        bootstrap(EngineSpec(), BootstrapConfig(replace(WATCH, seed=1)), tmp_path, log=print)
    assert (tmp_path / STATE_FILE).read_text() == state


def test_an_unknown_object_writes_nothing(tmp_path):
    config = BootstrapConfig(replace(WATCH, objects=("wat",)))
    with pytest.raises(CatalogError, match="'wat' is not in the parts catalog"):
        bootstrap(EngineSpec(device="cpu"), config, tmp_path / "out", log=print)
    assert not (tmp_path / "out").exists()


# --- stamping the LoRA --------------------------------------------------------------------------------


def test_stamp_lora_adds_triggers_and_settings_and_keeps_the_rest(tmp_path):
    lora = tmp_path / "structure_lora.safetensors"
    tensors = {"unet.a.lora_A.weight": torch.arange(6.0).reshape(2, 3)}
    save_file(tensors, lora, metadata={"nano_banana.train_config": "{}"})
    (tmp_path / "README.md").write_text("# structure_lora\n")
    config = BootstrapConfig(WATCH, steps=3)
    stamp_lora(lora, config, "the/base")
    metadata = metadata_of(lora)
    presets = load_presets()
    assert json.loads(metadata[TRIGGER_WORDS_KEY]) == [presets["knolling"].trigger,
                                                       presets["exploded-view"].trigger]  # fmt: skip
    assert json.loads(metadata["nano_banana.bootstrap"]) == {"base": "the/base",
                                                             **config.settings()}  # fmt: skip
    assert metadata["nano_banana.train_config"] == "{}"
    assert torch.equal(load_file(lora)["unet.a.lora_A.weight"], tensors["unet.a.lora_A.weight"])
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("# structure_lora\n") and "## Bootstrap" in card
    assert "on 4 parts-first boards" in card and "objects watch; presets knolling, exploded" in card


# --- end to end on the demo base ------------------------------------------------------------------------


@pytest.mark.slow  # about 25 s on one CPU thread: 4 boards, 3 training steps, 4 eval images
def test_bootstrap_runs_every_stage_once_and_resumes_nothing(tmp_path, monkeypatch):
    from nano_banana.analysis.evaluation import ObjectClassifier

    fit = ObjectClassifier.fit_on_world
    # The eval fits its classifier for each preset; a small fit keeps this test short.
    monkeypatch.setattr(ObjectClassifier, "fit_on_world", classmethod(lambda cls: fit(instances=4)))
    config = BootstrapConfig(WATCH, steps=3, eval_seeds=1)
    out, spec, log = tmp_path / "run", EngineSpec(device="cpu"), []
    result = bootstrap(spec, config, out, log=log.append)

    headers = [line.split("]")[0] + "]" for line in log if line.startswith("[")]
    assert headers == ["[1/4 synth]", "[2/4 check]", "[3/4 train]", "[4/4 eval]"]
    state = json.loads((out / STATE_FILE).read_text())
    assert state["done"] == list(STAGES) and state["settings"]["steps"] == 3
    rows = (out / "boards" / "plan.jsonl").read_text().splitlines()
    assert len(rows) == 4 and result.synth.items == 4 and result.synth.made_now == 4
    assert result.lora_path == out / "lora" / "structure_lora.safetensors"
    metadata = metadata_of(result.lora_path)
    assert json.loads(metadata["nano_banana.bootstrap"])["synth"]["count"] == 4
    assert "disassemble" in metadata[TRIGGER_WORDS_KEY]
    assert "## Bootstrap" in (out / "lora" / "README.md").read_text()
    assert set(result.evals) == {"knolling", "exploded-view"}
    for preset in result.evals:
        report = json.loads((out / f"eval-{preset}" / "eval.json").read_text())
        assert len(report["rows"]) == 2  # one seed, LoRA off and on

    # The same settings again: every stage is done, nothing is redrawn or retrained.
    lora_bytes, mtime = result.lora_path.read_bytes(), result.lora_path.stat().st_mtime_ns
    started, log = time.monotonic(), []
    again = bootstrap(spec, config, out, log=log.append)
    assert time.monotonic() - started < 10 and log == []
    assert again.synth is None and again.evals == {} and again.lora_path == result.lora_path
    assert result.lora_path.stat().st_mtime_ns == mtime
    assert result.lora_path.read_bytes() == lora_bytes

    # Another count in the same folder is refused, and the folder is left as it was.
    with pytest.raises(InvalidSettingError, match=r"other settings \(synth differ\)"):
        bootstrap(spec, replace(config, synth=replace(WATCH, count=5)), out, log=log.append)
    assert json.loads((out / STATE_FILE).read_text()) == state
