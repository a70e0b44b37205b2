"""Validation while training on a tiny SDXL: held-out items, a validation loss at fixed steps,
a layout score, the best step kept as its own LoRA, early stopping on a plateau, and resume."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image
from safetensors import safe_open

from nano_banana.errors import InvalidSettingError
from nano_banana.training import loop as loop_mod
from nano_banana.training import validation as val_mod
from nano_banana.training.check import check_dataset
from nano_banana.training.checkpoint import load_checkpoint
from nano_banana.training.config import TrainConfig
from nano_banana.training.data import DatasetError
from nano_banana.training.loop import format_summary, train
from nano_banana.training.validation import ValidationState, layout_requests, split_items
from train_fixtures import make_dataset, tiny_config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "boards", n=8)


def items_of(folder):
    return check_dataset(folder, resolution=64).usable_items(skip_bad=False)


def csv_rows(out) -> list[dict[str, str]]:
    with (out / "loss.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def measured(out, column: str) -> dict[int, float]:
    """{step: value} of the loss log's rows that carry ``column``."""
    return {int(r["step"]): float(r[column]) for r in csv_rows(out) if r[column]}


def metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


# --- the split and the settings ---------------------------------------------------------------


def test_split_holds_items_out_by_the_seed(dataset):
    items = items_of(dataset)
    kept, held = split_items(items, 0.25, seed=0)
    assert len(held) == 2 and len(kept) == 6
    assert sorted(i.path for i in kept + held) == sorted(i.path for i in items)  # all, once each
    assert kept == [i for i in items if i not in held]  # both sides keep the folder's order
    assert split_items(items, 0.25, seed=0) == (kept, held)  # the same seed, the same split
    others = {tuple(i.path.name for i in split_items(items, 0.25, seed=s)[1]) for s in range(6)}
    assert len(others) > 1  # the seed chooses
    assert len(split_items(items, 0.01, seed=0)[1]) == 1  # a share above 0 holds one out at least
    assert split_items(items, 0.0, seed=0) == (items, [])


def test_split_that_leaves_nothing_to_train_on_is_refused(dataset):
    with pytest.raises(DatasetError, match=r"val_split 0\.95 would hold out 8 of the 8 .*none"):
        split_items(items_of(dataset), 0.95, seed=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"val_split": 1.0}, "val_split 1 would hold out every item"),
        ({"val_split": -0.1}, "val_split -0.1 is out of range"),
        ({"early_stop_patience": -1}, "early_stop_patience -1 is out of range"),
        ({"early_stop_min_delta": -0.5}, "early_stop_min_delta -0.5 is out of range"),
        ({"val_every": -5}, "val_every -5 is out of range"),
        ({"layout_eval_images": 0}, "layout_eval_images 0 is out of range"),
        ({"keep_best": True}, "keep_best needs something to judge the steps by: .*--val-split"),
        ({"early_stop_patience": 3}, "early_stop_patience needs something to judge"),
    ],
)
def test_bad_validation_settings_are_refused(change, message):
    with pytest.raises(InvalidSettingError, match=message):
        TrainConfig.from_dict({"data": "d", "out": "o", **change}).validated()


def test_validation_settings_have_a_section_and_flat_names(tmp_path):
    from nano_banana.training.config import load_config, save_config

    config = TrainConfig.from_dict(
        {"data": "d", "out": "o", "validation": {"val_split": 0.1}, "keep_best": True}
    ).validated()
    assert config.validation.val_split == 0.1 and config.validation.keep_best
    assert config.validation.judged_by == "val_loss"
    path = save_config(config, tmp_path / "train_config.toml")
    assert "\n[validation]\nval_split = 0.1\n" in path.read_text(encoding="utf-8")
    assert load_config(path) == config
    with_layout = TrainConfig.from_dict({"val_split": 0.1, "layout_eval_every": 5})
    assert with_layout.validation.judged_by == "layout_score"


def test_layout_eval_prompts_are_the_held_out_captions(dataset):
    _, held = split_items(items_of(dataset), 0.25, seed=0)
    requests = layout_requests(
        held, ("a watch",), count=3, trigger="knolling, flat lay", steps=2, size=64, seed=7
    )
    assert [r.prompt for r in requests] == [
        "knolling, flat lay, parts laid out neatly, top down"
    ] * 3
    assert [r.seed for r in requests] == [7, 8, 9]
    fallback = layout_requests([], ("a watch",), count=1, trigger="t", steps=2, size=64, seed=0)
    assert fallback[0].prompt == "t, a watch"  # nothing held out: the sample prompts


@pytest.mark.parametrize(
    ("measure", "values", "best_step", "stale"),
    [
        ("val_loss", [1.0, 0.9, 0.95, 0.9], 2, 2),  # lower is better; a tie is no gain
        ("layout_score", [0.25, 0.5, 0.5, 0.75], 4, 0),  # higher is better
        ("val_loss", [1.0, 0.9995, 0.999], 1, 2),  # gains under min_delta (1e-3) do not count
    ],
)
def test_best_and_plateau_count(measure, values, best_step, stale):
    state = ValidationState()
    for step, value in enumerate(values, start=1):
        state.record(measure, value, step, min_delta=1e-3 if len(values) == 3 else 0.0)
    assert (state.best_step, state.stale) == (best_step, stale)
    assert state.plateaued(stale) == (stale > 0) and not state.plateaued(0)


# --- training runs -----------------------------------------------------------------------------


def test_val_loss_rows_at_the_configured_steps_on_held_out_items_only(
    tiny_sdxl_dir, dataset, tmp_path, monkeypatch
):
    seen = []
    real_prepare = loop_mod.prepare_data

    def recording(items, *args, **kwargs):
        seen.append(sorted(i.path.name for i in items))
        return real_prepare(items, *args, **kwargs)

    monkeypatch.setattr(loop_mod, "prepare_data", recording)
    out = tmp_path / "run"
    config = tiny_config(tiny_sdxl_dir, dataset, out, max_steps=8, val_split=0.25, val_every=3)
    result = train(config, progress=False)
    _, held = split_items(items_of(dataset), 0.25, config.seed)
    # the training data and the held-out data are cached apart, and are the two sides of the split
    assert seen == [sorted(set(p.name for p in dataset.glob("*.png")) - {i.path.name for i in held}),
                    sorted(i.path.name for i in held)]  # fmt: skip
    assert result.held_out == 2 and result.cache["latent_misses"] == 8
    losses = measured(out, "val_loss")
    assert sorted(losses) == [0, 3, 6, 8]  # before training, every 3 steps, and at the end
    assert [e.step for e in result.evaluations] == [0, 3, 6, 8]
    assert len(measured(out, "loss")) == 8  # the training rows are all still there
    assert "layout_score" not in "".join(r["layout_score"] for r in csv_rows(out))
    assert Image.open(out / "loss.png").size == (640, 360)  # no layout panel without a layout eval
    summary = format_summary(result)
    assert "validation loss:" in summary and "on 2 held-out item(s)" in summary
    meta = metadata(result.lora_path)
    settings = json.loads(meta["nano_banana.validation"])
    assert settings["val_split"] == 0.25 and settings["held_out_items"] == 2
    assert "## Validation" in (out / "README.md").read_text()


def test_val_every_zero_measures_only_before_and_after(tiny_sdxl_dir, dataset, tmp_path):
    out = tmp_path / "run"
    train(
        tiny_config(tiny_sdxl_dir, dataset, out, max_steps=4, val_split=0.25, val_every=0),
        progress=False,
    )
    assert sorted(measured(out, "val_loss")) == [0, 4]


def test_early_stop_on_a_plateau_and_its_count_survives_resume(tiny_sdxl_dir, dataset, tmp_path):
    # lr at its floor: the validation loss stays flat, so no evaluation after step 1 gains 1e-3
    flat = dict(lr=1e-8, val_split=0.25, val_every=1, early_stop_min_delta=1e-3, max_steps=20)
    straight = train(
        tiny_config(tiny_sdxl_dir, dataset, tmp_path / "a", early_stop_patience=5, **flat),
        progress=False,
    )
    assert (straight.steps, straight.stopped_early_at, straight.best_step) == (6, 6, 1)

    out = tmp_path / "b"
    config = tiny_config(tiny_sdxl_dir, dataset, out, early_stop_patience=2, **flat)
    result = train(config, progress=False)
    # step 1 is the best; steps 2 and 3 gain nothing: two in a row, so the run ends at step 3
    assert (result.steps, result.stopped_early_at, result.best_step) == (3, 3, 1)
    assert result.lora_path.is_file()  # an early stop ends the run normally
    assert "stopped early at step 3: 2 evaluation(s) in a row" in format_summary(result)
    assert metadata(result.lora_path)["nano_banana.stopped_early_at"] == "3"
    saved = load_checkpoint(result.checkpoint)[1]["run"]["validation"]
    assert (saved["best_step"], saved["stale"]) == (1, 2)
    # resumed with more patience, the count goes on from 2 (a lost count would stop at 9)
    resumed = train(
        tiny_config(tiny_sdxl_dir, dataset, out, early_stop_patience=5, resume="latest", **flat),
        progress=False,
    )
    assert (resumed.steps, resumed.steps_this_run, resumed.stopped_early_at) == (6, 3, 6)
    assert resumed.best_step == 1
    # resumed as it was, a run that had plateaued stops at once
    again = train(
        tiny_config(tiny_sdxl_dir, dataset, out, early_stop_patience=5, resume="latest", **flat),
        progress=False,
    )
    assert (again.steps, again.steps_this_run, again.stopped_early_at) == (6, 0, 6)


def test_keep_best_writes_the_best_steps_lora(tiny_sdxl_dir, dataset, tmp_path):
    from nano_banana.lora.load import read_lora

    out = tmp_path / "my_lora"
    config = tiny_config(
        tiny_sdxl_dir, dataset, out, lr=3e-3, max_steps=8, val_split=0.25, val_every=2,
        keep_best=True,
    )  # fmt: skip
    result = train(config, progress=False)
    losses = {s: v for s, v in measured(out, "val_loss").items() if s > 0}
    best_step = min(losses, key=losses.get)
    assert result.best_lora == out / "my_lora-best.safetensors" and result.best_lora.is_file()
    assert (result.best_step, result.best_measure) == (best_step, "val_loss")
    meta = metadata(result.best_lora)
    assert meta["nano_banana.best_step"] == str(best_step) == meta["nano_banana.steps"]
    assert float(meta["nano_banana.best_score"]) == pytest.approx(losses[best_step], rel=1e-4)
    assert meta["nano_banana.best_measure"] == "val_loss"
    assert meta["nano_banana.trigger"] == config.dataset.trigger  # the final file's metadata too
    assert read_lora(result.best_lora).rank == 4  # a LoRA like the final one
    assert metadata(result.lora_path)["nano_banana.best_step"] == str(best_step)
    assert f"best: step {best_step}, validation loss" in format_summary(result)
    assert "my_lora-best.safetensors" in (out / "README.md").read_text()


def test_layout_eval_logs_a_score_and_picks_the_best(tiny_sdxl_dir, dataset, tmp_path):
    out = tmp_path / "run"
    config = tiny_config(
        tiny_sdxl_dir, dataset, out, max_steps=4, val_split=0.25, val_every=2,
        layout_eval_every=2, layout_eval_images=2, keep_best=True,
    )  # fmt: skip
    result = train(config, progress=False)
    scores = measured(out, "layout_score")
    assert sorted(scores) == [0, 2, 4]
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert all(v >= 0 for v in measured(out, "layout_parts").values())
    assert result.best_measure == "layout_score" and result.best_step in (2, 4)
    assert result.best_score == scores[result.best_step]
    assert "layout score:" in format_summary(result)
    width, height = Image.open(out / "loss.png").size
    assert width == 640 and height > 360  # the layout score has a panel of its own


def test_layout_score_is_the_share_judged_a_layout():
    from train_fixtures import knolling_image

    blank = Image.new("RGB", (128, 128), "white")
    share, parts = val_mod.layout_score([knolling_image(0, (128, 128)), blank])
    assert share == 0.5 and parts >= 1


def test_resume_refuses_another_split_and_reads_checkpoints_from_before_it(
    tiny_sdxl_dir, dataset, tmp_path
):
    from nano_banana.training.loop import TrainingError
    from nano_banana.training.resume import changed_settings

    out = tmp_path / "run"
    train(tiny_config(tiny_sdxl_dir, dataset, out, max_steps=2, val_split=0.25), progress=False)
    with pytest.raises(TrainingError, match="different val_split"):  # other items would train
        train(
            tiny_config(tiny_sdxl_dir, dataset, out, max_steps=4, val_split=0.5, resume="latest"),
            progress=False,
        )
    # a checkpoint saved before validation existed has no val_split: it held nothing out
    config = tiny_config(tiny_sdxl_dir, dataset, out).validated()
    before = {k: v for k, v in config.flat_dict().items() if k != "val_split"}
    assert changed_settings(before, config) == []
    assert changed_settings(before, config.with_overrides({"val_split": 0.25})) == ["val_split"]
