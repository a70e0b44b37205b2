"""The trainer's command line: ``dataset check`` and ``train`` with a config file and flags."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nano_banana.cli import app
from nano_banana.training.config import load_config
from train_fixtures import make_dataset

runner = CliRunner()


def test_dataset_check_reports_problems_with_paths_and_exit_code(tmp_path):
    data = make_dataset(tmp_path / "data", n=3)
    (data / "item00.txt").unlink()
    (data / "item02.png").write_bytes((data / "item01.png").read_bytes())  # duplicate
    result = runner.invoke(app, ["dataset", "check", str(data), "--resolution", "64"])
    assert result.exit_code == 1, result.output
    assert "missing caption: 1" in result.output and str(data / "item00.png") in result.output
    assert (
        "duplicate: 1" in result.output
        and f"exact duplicate of {data / 'item01.png'}" in result.output
    )


def test_dataset_check_clean_folder_shows_buckets(tmp_path):
    data = make_dataset(tmp_path / "data", n=2, size=(128, 64))
    make_dataset(data, n=1, size=(64, 128), start=2)
    result = runner.invoke(app, ["dataset", "check", str(data), "--resolution", "128"])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output
    assert "128x64: 2" in result.output and "64x128: 1" in result.output


def test_train_from_config_file_and_flags(tiny_sdxl_dir, tmp_path):
    data = make_dataset(tmp_path / "data", n=2)
    config = tmp_path / "run.toml"
    config.write_text(
        f'data = "{data}"\nbase = "{tiny_sdxl_dir}"\nresolution = 64\nrank = 4\nalpha = 4\n'
        "max_steps = 5\nwarmup_steps = 1\nsample_every = 0\ncheckpoint_every = 2\n",
        encoding="utf-8",
    )
    out = tmp_path / "my_lora"
    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--max-steps",
            "3",
            "--quiet",
            "--trigger",
            "disassemble, knolling",
            "--export",
            "kohya",
            "--no-flip",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained 3 step(s)" in result.output and "s/step" in result.output
    assert f"LoRA: {out / 'my_lora.safetensors'}" in result.output
    assert (out / "my_lora.safetensors").is_file() and (out / "my_lora.kohya.safetensors").is_file()
    saved = load_config(out / "train_config.toml")
    assert (saved.optim.max_steps, saved.adapter.rank, saved.dataset.trigger) == (
        3,
        4,
        "disassemble, knolling",
    )
    assert saved.output.export[0].value == "kohya"


def _single_file_run(data, out, base, *extra) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--base", str(base),
            "--resolution", "64", "--rank", "4", "--alpha", "4", "--max-steps", "2",
            "--warmup-steps", "1", "--sample-every", "0", "--checkpoint-every", "2", "--quiet",
            *map(str, extra)]  # fmt: skip


def test_train_from_a_single_file_with_base_config(tiny_sdxl_file, tiny_sdxl_dir, tmp_path):
    from nano_banana.lora.load import read_lora

    data, out = make_dataset(tmp_path / "data", n=2), tmp_path / "run"
    args = _single_file_run(data, out, tiny_sdxl_file, "--base-config", tiny_sdxl_dir)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trained 2 step(s)" in result.output
    saved = load_config(out / "train_config.toml")  # the run's config names both, to redo it
    assert (saved.model.base, saved.model.base_config) == (str(tiny_sdxl_file), str(tiny_sdxl_dir))
    assert read_lora(out / "run.safetensors").targets["unet"] > 0


def test_train_from_a_single_file_offline_with_the_shipped_configs(
    tiny_sdxl_file, tiny_sdxl_dir, tmp_path, monkeypatch
):
    """No --base-config: the loader's shipped configs (the tiny model's standing in) and CLIP's
    vocabulary from the cache, as for generate; HF_HUB_OFFLINE=1 (conftest)."""
    from single_file_helpers import stand_in_shipped_configs

    stand_in_shipped_configs(tiny_sdxl_dir, tmp_path, monkeypatch)
    data, out = make_dataset(tmp_path / "data", n=2), tmp_path / "run"
    result = runner.invoke(app, _single_file_run(data, out, tiny_sdxl_file))
    assert result.exit_code == 0, result.output
    assert "trained 2 step(s)" in result.output
    assert load_config(out / "train_config.toml").model.base_config is None


def test_a_bad_base_config_is_one_line_naming_it(cli, tiny_sdxl_file, tmp_path):
    from cli_helpers import assert_user_error

    data, missing = make_dataset(tmp_path / "data", n=2), tmp_path / "no-such-configs"
    run = _single_file_run(data, tmp_path / "run", tiny_sdxl_file, "--base-config", missing)
    assert_user_error(cli(*run), f"--base-config '{missing}' not found")


@pytest.mark.slow  # a real process through the installed entry point
def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('data = "x"\nout = "y"\nrnak = 8\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "nano_banana.cli", "train", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: config file '{config}': unknown setting(s) rnak (did you mean 'rank'?); "
        "see 'nano-banana train --help'"
    ]


@pytest.mark.slow
def test_two_processes_train_data_parallel(tiny_sdxl_dir, tmp_path):
    """The same `train` command under a real two-process launcher (torchrun, what
    `accelerate launch --multi_gpu` runs): both processes train, only the main one writes files."""
    from cli_helpers import run_two_processes
    from nano_banana.lora.load import read_lora
    from train_fixtures import make_dataset

    data = make_dataset(tmp_path / "data", n=4)
    out = tmp_path / "run"
    done = run_two_processes(
        "train", "--data", data, "--base", tiny_sdxl_dir, "--out", out, "--resolution", 64,
        "--rank", 4, "--alpha", 4, "--max-steps", 4, "--checkpoint-every", 2,
        "--sample-every", 0, "--lr", "1e-3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lora = read_lora(out / "run.safetensors")
    assert lora.rank == 4 and lora.targets["unet"] > 0
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints and all(name.startswith("checkpoint-") for name in checkpoints)
    assert (done.stdout + done.stderr).count("LoRA: ") == 1  # one summary, from rank 0 only


def test_every_setting_keeps_its_flag_under_its_section_heading():
    """The flags are the settings' flat names, as before they were grouped in sections."""
    import typer
    from typer.main import get_command

    from nano_banana.cli.train import build_command

    names = [
        "data", "out", "name", "base", "base_config", "vae", "trigger", "rank", "alpha", "targets",
        "lora_dropout", "train_text_encoder", "text_encoder_lr", "lr", "warmup_steps", "schedule",
        "max_steps", "batch_size", "grad_accum", "optimizer", "weight_decay", "max_grad_norm",
        "precision", "grad_checkpointing", "min_snr_gamma", "noise_offset", "ema_decay", "seed",
        "resolution", "upscale", "flip", "shuffle_captions", "caption_dropout", "caption_ext",
        "min_size_fraction", "skip_bad", "cache_dir", "checkpoint_every", "keep_checkpoints",
        "resume", "sample_every", "sample_prompts", "sample_seed", "sample_steps", "sample_size",
        "sample_cfg",
        "recommended_scale", "export", "log_every", "val_split", "val_every", "layout_eval_every",
        "layout_eval_images", "keep_best", "early_stop_patience", "early_stop_min_delta",
    ]  # fmt: skip
    app = typer.Typer()
    app.command(name="train")(build_command())
    app.command(name="other")(lambda: None)
    options = {p.name: p for p in get_command(app).commands["train"].params}
    assert set(options) == {"config_file", "quiet", *names}
    for name in names:
        assert options[name].opts == ["--" + name.replace("_", "-")]
    assert options["flip"].secondary_opts == ["--no-flip"]
    assert options["rank"].rich_help_panel == "Adapter"
    assert options["lr"].show_default == "0.0001"
    assert options["val_split"].rich_help_panel == "Validation"
    assert options["keep_best"].secondary_opts == ["--no-keep-best"]


def test_quiet_train_prints_no_library_loading_bars(tiny_sdxl_dir, tmp_path, monkeypatch, capsys):
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from cli_helpers import invoke

    # as in a fresh process: another test's quiet command may have switched them off already
    diffusers_logging.enable_progress_bar()
    transformers_logging.enable_progress_bar()
    data = make_dataset(tmp_path / "data", n=2)
    code, out, err = invoke(
        monkeypatch, capsys,
        ["train", "--data", data, "--base", tiny_sdxl_dir, "--out", tmp_path / "run",
         "--resolution", 64, "--max-steps", 1, "--sample-every", 0, "--quiet"],
    )  # fmt: skip
    assert code == 0, err
    assert "trained 1 step(s)" in out
    assert "Loading" not in err and "it/s" not in err, err


def test_out_naming_a_file_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from cli_helpers import assert_user_error, invoke

    data = make_dataset(tmp_path / "data", n=2)
    afile = tmp_path / "lora.safetensors"
    afile.write_bytes(b"not a folder")
    for out, says in ((afile, "is a file"), (afile / "run", f"lies under '{afile}'")):
        result = invoke(
            monkeypatch, capsys, ["train", "--data", data, "--out", out, "--resolution", 64]
        )
        assert_user_error(result, f"--out '{out}' {says}", "name a folder")
