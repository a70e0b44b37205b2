"""TrainConfig: the public trainers' defaults, validation before model work, files that round-trip."""

from __future__ import annotations

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.training.config import Precision, Targets, TrainConfig, load_config, save_config


def test_defaults_follow_the_public_trainers():
    config = TrainConfig.from_dict({"data": "d", "out": "o"}).validated()
    adapter, optim = config.adapter, config.optim
    assert (adapter.rank, adapter.alpha, adapter.targets) == (16, 16.0, Targets.ATTN)
    assert optim.lr == 1e-4 and optim.warmup_steps > 0
    assert (
        config.model.precision == Precision.AUTO
    )  # bf16/fp16 on GPU, fp32 on CPU: see models.weight_dtype_for
    assert config.loss.min_snr_gamma == 5.0 and config.dataset.resolution == 1024
    assert config.output.lora_path.name == "o.safetensors"
    assert optim.effective_text_encoder_lr == 5e-5


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
        TrainConfig.from_dict({"data": "d", "out": "o", **change}).validated()


def test_toml_round_trip(tmp_path):
    config = TrainConfig.from_dict(
        {
            "data": "d",
            "out": "o",
            "trigger": 'quote " and ünïcödé 🍌',
            "sample_prompts": ("a", "b"),
            "export": ("kohya",),
            "ema_decay": 0.999,
            "targets": "attn-ff",
            "min_snr_gamma": 0.0,
        }
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
    assert config.adapter.rank == 8 and config.samples.sample_prompts == ("x", "y")
    assert config.with_overrides({"rank": 32}).validated().adapter.rank == 32


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text("rank = = 3", encoding="utf-8")
    with pytest.raises(InvalidSettingError, match="not valid TOML"):
        load_config(tmp_path / "a.toml")
    with pytest.raises(InvalidSettingError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "a.ini").write_text("", encoding="utf-8")
    with pytest.raises(InvalidSettingError, match=".toml, .yaml or .json"):
        load_config(tmp_path / "a.ini")


# --- sections and flat names ------------------------------------------------------------------

# Every setting's flat name and default before the settings were grouped into sections:
# the CLI flags, old flat files and the LoRA metadata all use these names.
FLAT_DEFAULTS = {
    "data": "", "out": "", "name": None, "base": "stabilityai/stable-diffusion-xl-base-1.0",
    "vae": None, "trigger": "disassemble, knolling, flat lay, white background", "rank": 16,
    "alpha": 16.0, "targets": "attn", "lora_dropout": 0.0, "train_text_encoder": False,
    "text_encoder_lr": None, "lr": 0.0001, "warmup_steps": 100, "schedule": "constant",
    "max_steps": 1500, "batch_size": 1, "grad_accum": 1, "optimizer": "auto",
    "weight_decay": 0.01, "max_grad_norm": 1.0, "precision": "auto", "grad_checkpointing": False,
    "min_snr_gamma": 5.0, "noise_offset": 0.0, "ema_decay": None, "seed": 0, "resolution": 1024,
    "upscale": False, "flip": False, "shuffle_captions": False, "caption_dropout": 0.0,
    "caption_ext": ".txt", "min_size_fraction": 0.5, "skip_bad": False, "cache_dir": None,
    "checkpoint_every": 250, "keep_checkpoints": 2, "resume": None, "sample_every": None,
    "sample_prompts": ["a complex mechanical watch", "a pair of sneakers",
                       "a professional camera", "a wireless bluetooth speaker"],
    "sample_seed": 1234, "sample_steps": 20, "sample_size": None, "sample_cfg": None, "recommended_scale": 0.8,
    "export": [], "log_every": 1,
    # settings added since, each off by default
    "val_split": 0.0, "val_every": 100, "layout_eval_every": 0, "layout_eval_images": 4,
    "keep_best": False, "early_stop_patience": 0, "early_stop_min_delta": 0.0,
    "base_config": None,
}  # fmt: skip


def test_grouping_kept_every_flat_name_and_default():
    assert TrainConfig().flat_dict() == FLAT_DEFAULTS
    assert TrainConfig.from_dict(FLAT_DEFAULTS) == TrainConfig.from_dict({})


@pytest.mark.parametrize(
    "data",
    [
        {"data": "d", "rank": 8, "lr": 1e-3, "export": ["kohya"]},  # flat, as older files
        {
            "dataset": {"data": "d"},
            "adapter": {"rank": 8},
            "optim": {"lr": 1e-3},
            "output": {"export": ["kohya"]},
        },  # in sections
        {"data": "d", "adapter": {"rank": 8}, "lr": 1e-3, "output": {"export": ["kohya"]}},
    ],  # fmt: skip
)
def test_flat_and_sectioned_keys_build_the_same_config(data):
    config = TrainConfig.from_dict(data)
    assert (config.dataset.data, config.adapter.rank, config.optim.lr) == ("d", 8, 1e-3)
    assert config.output.export[0].value == "kohya"
    assert TrainConfig.from_dict(config.to_dict()) == config  # sections round-trip
    assert TrainConfig.from_dict(config.flat_dict()) == config  # and flat names too


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rank": 4, "adapter": {"rank": 8}}, r"rank is given twice"),
        ({"optim": {"rank": 8}}, r"rank belongs in \[adapter\], not in \[optim\]"),
        ({"adapter": {"rnak": 8}}, r"\[adapter\]: unknown setting\(s\) rnak \(did you mean 'rank'"),
        ({"adapter": 8}, "adapter must be a table of settings"),
    ],
)
def test_sectioned_mistakes_are_named(data, message):
    with pytest.raises(InvalidSettingError, match=message):
        TrainConfig.from_dict(data)


def test_saved_config_has_sections_and_old_flat_files_still_load(tmp_path):
    config = TrainConfig.from_dict({"data": "d", "out": "o", "rank": 8}).validated()
    path = save_config(config, tmp_path / "train_config.toml")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("format = 2\nseed = 0\n") and "\n[adapter]\nrank = 8\n" in text
    flat = tmp_path / "old.toml"  # what format 1 wrote: every setting at the top level
    flat.write_text('format = 1\ndata = "d"\nout = "o"\nrank = 8\n', encoding="utf-8")
    assert load_config(flat) == load_config(path) == config
