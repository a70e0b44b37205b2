"""``dataset synth`` and ``lora bootstrap`` from the command line, on the built-in demo model."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_user_error

SMALL_SET = ("--count", "2", "--variants", "1", "--tries", "1", "-q")


@pytest.mark.slow  # about 15 s: two boards at the demo's recommended 20 steps, loaded twice
def test_dataset_synth_writes_a_balanced_set_and_a_rerun_finishes_it(cli, tmp_path):
    out = tmp_path / "set"
    code, stdout, err = cli("dataset", "synth", "--out", out, "--objects", "watch,sneaker",
                            *SMALL_SET)  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "plan.jsonl").read_text().splitlines()]
    assert [(r["object"], r["preset"]) for r in rows] == [("watch", "knolling"),
                                                           ("sneaker", "knolling")]  # fmt: skip
    kept = [r for r in rows if r["file"]]
    assert f"{len(kept)} of 2 boards kept in {out}" in stdout and "2 made now" in stdout
    assert all((out / r["file"]).with_suffix(".txt").is_file() for r in kept)
    code, stdout, err = cli("dataset", "synth", "--out", out, "--objects", "watch,sneaker",
                            *SMALL_SET)  # fmt: skip
    assert code == 0 and "0 made now" in stdout, err


@pytest.mark.parametrize(("args", "fragments"), [
    (("--objects", "watch", "--explode", "a,b"), ("--explode takes LOW,HIGH", "'a,b'")),
    (("--objects", "watch", "--count", "0"), ("--count must be at least 1",)),
    (("--objects", "watch", "--scale", "0.1,1"), ("--scale 0.1..1.0",)),
    (("--objects", "watch", "--styles", "long"), ("unknown caption style 'long'",)),
    (("--objects", " , "), ("no objects given",)),
])  # fmt: skip
def test_dataset_synth_setting_errors_are_one_line_and_write_nothing(cli, tmp_path, args,
                                                                     fragments):  # fmt: skip
    assert_user_error(cli("dataset", "synth", "--out", tmp_path / "set", *args), *fragments)
    assert not (tmp_path / "set").exists()


NAME_ERRORS = [
    (("--objects", "wat"), ("'wat' is not in the parts catalog",)),
    (("--objects", "watch", "--presets", "part"), ("preset 'part' has no board layout",)),
]


@pytest.mark.parametrize(("args", "fragments"), NAME_ERRORS)
def test_dataset_synth_name_errors_are_one_line_and_write_nothing(cli, tmp_path, args, fragments):
    # -q: without it the demo model's hint comes first (the names are checked after loading)
    assert_user_error(cli("dataset", "synth", "--out", tmp_path / "set", "-q", *args), *fragments)
    assert not (tmp_path / "set").exists()


def test_dataset_synth_refuses_an_out_path_that_is_a_file(cli, tmp_path):
    (tmp_path / "set").write_text("x")
    assert_user_error(
        cli("dataset", "synth", "--out", tmp_path / "set", "-q", "--objects", "watch"),
        "not a folder",
    )


@pytest.mark.parametrize("command", [("dataset", "synth"), ("lora", "bootstrap")])
@pytest.mark.parametrize(("args", "fragments"), NAME_ERRORS)
def test_bad_names_are_refused_before_the_model_loads(cli, tmp_path, monkeypatch, command, args,
                                                       fragments):  # fmt: skip
    """On SDXL loading takes minutes: a typo should not cost them."""
    from nano_banana.generate.spec import EngineSpec

    def no_loading(self):
        raise AssertionError("the model was loaded before the names were checked")

    monkeypatch.setattr(EngineSpec, "load", no_loading)
    assert_user_error(cli(*command, "--out", tmp_path / "out", *args), *fragments)


@pytest.mark.parametrize(("args", "fragments"), [
    *NAME_ERRORS,
    (("--objects", "watch", "--count", "0"), ("--count must be at least 1",)),
    (("--objects", "watch", "--steps", "0"), ("--steps must be at least 1",)),
    (("--objects", "watch", "--eval-seeds", "-1"), ("--eval-seeds",)),
])  # fmt: skip
def test_lora_bootstrap_errors_are_one_line_and_write_nothing(cli, tmp_path, args, fragments):
    assert_user_error(cli("lora", "bootstrap", "--out", tmp_path / "run", *args), *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # about 20 s: two boards and two training steps on the demo base
def test_lora_bootstrap_quick_trains_a_lora_and_resumes(cli, tmp_path):
    out = tmp_path / "run"
    args = ("lora", "bootstrap", "--out", out, "--objects", "watch", "--presets", "knolling",
            "--quick", "--count", "2", "--steps", "2", "--eval-seeds", "0")  # fmt: skip
    code, stdout, err = cli(*args)
    assert code == 0, err
    lora = out / "lora" / "structure_lora.safetensors"
    assert f"LoRA: {lora}" in stdout and lora.is_file()
    assert "[1/4 synth]" in err and "[3/4 train]" in err and "[4/4 eval]" not in err
    state = json.loads((out / "bootstrap.json").read_text())
    assert state["done"] == ["synth", "check", "train"]
    assert state["settings"]["quick"] and state["settings"]["synth"]["count"] == 2
    assert state["settings"]["steps"] == 2
    # The same command again does nothing; another count is refused in one line.
    code, stdout, err = cli(*args)
    assert code == 0 and f"LoRA: {lora}" in stdout and "[1/4 synth]" not in err, err
    more = list(args)
    more[more.index("--count") + 1] = "3"
    assert_user_error(cli(*more), "other settings (synth differ)")
    assert json.loads((out / "bootstrap.json").read_text()) == state
