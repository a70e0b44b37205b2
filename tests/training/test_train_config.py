"""TrainConfig: the public trainers' defaults, validation before model work, files that round-trip."""

from __future__ import annotations

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.training.config import Precision, Targets, TrainConfig, load_config, save_config


def test_defaults_follow_the_public_trainers():
    config = TrainConfig(data="d", out="o").validated()
    assert (config.rank, config.alpha, config.targets) == (16, 16.0, Targets.ATTN)
    assert config.lr == 1e-4 and config.warmup_steps > 0
    assert (
        config.precision == Precision.AUTO
    )  # bf16/fp16 on GPU, fp32 on CPU: see train.weight_dtype_for
    assert config.min_snr_gamma == 5.0 and config.resolution == 1024
    assert config.lora_path.name == "o.safetensors" and config.effective_text_encoder_lr == 5e-5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": ""}, "--data"),
        ({"out": ""}, "--out"),
        ({"rank": 0}, "rank 0 is out of range"),
        ({"rank": 4.5}, "rank must be a whole number"),
        ({"alpha": float("nan")}, "alpha must be a finite number"),
        ({"lr": 0}, "lr 0 is out of range"),
        ({"resolution": 1000}, "not a multiple of 64"),
        ({"caption_dropout": 1.5}, "caption_dropout 1.5 is out of range"),
        (
            {"targets": "everything"},
            "targets 'everything' is not one of: attn, attn-ff, attn-ff-conv",
        ),
        ({"precision": "fp8"}, "precision 'fp8'"),
        ({"name": "../evil"}, "plain file name"),
        ({"export": ("onnx",)}, "export 'onnx'"),
        ({"caption_ext": "txt"}, "caption_ext"),
        ({"grad_accum": 0}, "grad_accum 0"),
        ({"sample_prompts": ("ok", "bad\x00")}, "NUL"),
    ],
)
def test_validation_names_the_setting(change, message):
    with pytest.raises(InvalidSettingError, match=message.replace("(", r"\(")):
        TrainConfig(**{"data": "d", "out": "o", **change}).validated()


def test_toml_round_trip(tmp_path):
    config = TrainConfig(
        data="d",
        out="o",
        trigger='quote " and ünïcödé 🍌',
        sample_prompts=("a", "b"),
        export=("kohya",),
        ema_decay=0.999,
        targets="attn-ff",
        min_snr_gamma=0.0,
    ).validated()
    path = save_config(config, tmp_path / "train_config.toml")
    assert load_config(path) == config


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('data = "d"\nlearning_rat = 0.1\n', encoding="utf-8")
    with pytest.raises(InvalidSettingError, match="unknown setting.*learning_rat"):
        load_config(path)
    path.write_text('data = "d"\nrnak = 8\n', encoding="utf-8")
    with pytest.raises(InvalidSettingError, match="did you mean 'rank'"):
        load_config(path)


def test_yaml_and_flags_over_file(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "run.yaml"
    path.write_text("data: d\nout: o\nrank: 8\nsample_prompts: [x, y]\n", encoding="utf-8")
    config = load_config(path)
    assert config.rank == 8 and config.sample_prompts == ("x", "y")
    assert config.with_overrides({"rank": 32}).validated().rank == 32


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text("rank = = 3", encoding="utf-8")
    with pytest.raises(InvalidSettingError, match="not valid TOML"):
        load_config(tmp_path / "a.toml")
    with pytest.raises(InvalidSettingError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "a.ini").write_text("", encoding="utf-8")
    with pytest.raises(InvalidSettingError, match=".toml, .yaml or .json"):
        load_config(tmp_path / "a.ini")
