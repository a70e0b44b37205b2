"""The LoRA trainer end to end on a tiny random SDXL: it learns, resumes exactly, survives
faults, refuses NaN, and its file loads in plain diffusers, in our loader and as a kohya export."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from nano_banana.errors import NanoBananaError
from nano_banana.training import checkpoint as checkpoint_mod
from nano_banana.training import loop as loop_mod
from nano_banana.training import loss as loss_mod
from nano_banana.training import models as models_mod
from nano_banana.training.config import Schedule, TrainConfig, load_config
from nano_banana.training.data import DatasetError
from nano_banana.training.loop import TrainingError, TrainingInterrupted, train
from nano_banana.training.loss import min_snr_weights
from nano_banana.training.optim import lr_factor
from train_fixtures import make_dataset, tiny_config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "knolling", n=4)


@pytest.fixture(scope="module")
def trained(tiny_sdxl_dir, dataset, tmp_path_factory):
    """One real run: rank 4, alpha 2 (so alpha != rank), 40 steps, samples and a kohya export."""
    out = tmp_path_factory.mktemp("runs") / "my_lora"
    config = tiny_config(
        tiny_sdxl_dir,
        dataset,
        out,
        rank=4,
        alpha=2.0,
        lr=3e-3,
        max_steps=40,
        checkpoint_every=20,
        sample_every=20,
        export=("kohya",),
    )
    return config, train(config, progress=False)


def load_pipe(base):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(base, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render(pipe, **kwargs) -> torch.Tensor:
    """Latents of a 2-step 64px image at a fixed seed (the design's call, made small)."""
    out = pipe(
        "knolling, flat lay, a watch",
        num_inference_steps=2,
        guidance_scale=7.5,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="latent",
        **kwargs,
    )
    return out.images


def adapter_tensors(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


# --- learning and the output file ----------------------------------------------------


def test_training_lowers_the_loss(trained):
    _, result = trained
    assert result.steps == 40
    # fixed noise and timesteps: the same measurement before and after, not a noisy running loss
    assert result.eval_loss_after < 0.97 * result.eval_loss_before
    print(
        f"fixed-noise loss {result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f}; "
        f"{result.seconds_per_step * 1000:.0f} ms/step"
    )


def test_outputs_are_all_there(trained):
    config, result = trained
    out = config.output.out_dir
    assert result.lora_path == out / "my_lora.safetensors" and result.lora_path.is_file()
    assert (out / "train_config.toml").is_file()
    header = "step,loss,lr,samples_per_s,elapsed_s,val_loss,layout_score,layout_parts"
    assert (out / "loss.csv").read_text().splitlines()[0] == header
    assert len((out / "loss.csv").read_text().splitlines()) == 41  # no validation: no such rows
    assert (out / "loss.png").is_file()
    assert [p.name for p in result.sample_grids] == ["step-0000020.png", "step-0000040.png"]
    card = (out / "README.md").read_text()
    assert config.dataset.trigger in card and "0.8" in card and "samples/step-0000040.png" in card
    assert result.checkpoint.name == "checkpoint-0000040"


def test_file_carries_metadata(trained):
    config, result = trained
    with safe_open(str(result.lora_path), "pt") as f:
        meta = f.metadata()
    assert meta["nano_banana.trigger"] == config.dataset.trigger
    assert json.loads(meta["nano_banana.trigger_words"]) == ["knolling", "flat lay"]
    assert meta["nano_banana.base_model"] == config.model.base
    assert meta["nano_banana.resolution"] == "64" and meta["nano_banana.steps"] == "40"
    assert json.loads(meta["nano_banana.dataset"])["images"] == 4
    assert TrainConfig.from_dict(json.loads(meta["nano_banana.train_config"])) == config.validated()
    # flat names, as before the settings were grouped (external readers index it so)
    assert json.loads(meta["nano_banana.train_config"]) == config.validated().flat_dict()
    peft_meta = json.loads(
        meta["lora_adapter_metadata"]
    )  # diffusers' key: rank/alpha for reloading
    assert peft_meta["unet.r"] == 4 and peft_meta["unet.lora_alpha"] == 2.0


def test_plain_diffusers_loads_it_with_the_design_snippet(trained, tiny_sdxl_dir):
    _, result = trained
    pipe = load_pipe(tiny_sdxl_dir)
    base = render(pipe)
    pipe.load_lora_weights(str(result.lora_path), adapter_name="nano_banana")
    config = pipe.unet.peft_config["nano_banana"]
    assert (config.r, config.lora_alpha) == (4, 2.0)  # alpha != rank survives
    full = render(pipe, cross_attention_kwargs={"scale": 1.0})
    scaled = render(pipe, cross_attention_kwargs={"scale": 0.8})
    assert (full - base).abs().max() > 1e-4, "the trained LoRA does not change the image"
    assert (scaled - full).abs().max() > 1e-4, "the scale has no effect"
    assert torch.allclose(render(pipe, cross_attention_kwargs={"scale": 0.0}), base, atol=1e-5)
    pipe.set_adapters(["nano_banana"], [0.8])
    assert torch.allclose(render(pipe), scaled, atol=1e-5)


def test_reloaded_strength_equals_the_trained_adapter(trained, tiny_sdxl_dir):
    """The file's output equals the in-training adapter's: alpha/rank scaling is not lost."""
    config, result = trained
    pipe = load_pipe(tiny_sdxl_dir)
    pipe.unet = models_mod.add_adapters(
        models_mod.Models(
            (pipe.tokenizer, pipe.tokenizer_2),
            (pipe.text_encoder, pipe.text_encoder_2),
            pipe.vae,
            pipe.unet,
            None,
            None,
        ),
        config.validated().adapter,
        config.seed,
    ).unet
    ckpt = checkpoint_mod.load_checkpoint(result.checkpoint)[1]["adapters"]
    with torch.no_grad():
        for name, param in pipe.unet.named_parameters():
            if param.requires_grad:
                param.copy_(ckpt[f"unet.{name}"])
    in_training = render(pipe)
    plain = load_pipe(tiny_sdxl_dir)
    plain.load_lora_weights(str(result.lora_path), adapter_name="nano_banana")
    assert torch.allclose(render(plain), in_training, atol=1e-5)


def test_our_loader_and_the_kohya_export(trained, tiny_sdxl_dir):
    from nano_banana.lora.load import apply_adapter_state, attach_lora, read_lora

    _, result = trained
    kohya_path = result.exported["kohya"]
    assert kohya_path.name == "my_lora.kohya.safetensors"
    outputs = []
    for path in (result.lora_path, kohya_path):
        lora = read_lora(path, name="nano_banana")
        assert (lora.rank, lora.alpha) == (4, 2.0)
        assert lora.trigger_words == ("knolling", "flat lay")
        pipe = load_pipe(tiny_sdxl_dir)
        attach_lora(pipe, lora)
        apply_adapter_state(pipe, {"nano_banana": 0.8})
        outputs.append(render(pipe))
    assert read_lora(kohya_path).format == "kohya"
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)


# --- resume, faults, Ctrl-C -------------------------------------------------------------


def resume_config(base, data, out, **kw) -> TrainConfig:
    """Exercise everything resume must carry: cosine lr, warm-up, accumulation, EMA, flips, dropout."""
    values = dict(
        max_steps=8,
        checkpoint_every=4,
        schedule="cosine",
        warmup_steps=3,
        grad_accum=2,
        ema_decay=0.9,
        flip=True,
        caption_dropout=0.3,
        noise_offset=0.05,
        lora_dropout=0.1,
    )
    return tiny_config(base, data, out, **{**values, **kw})


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tiny_sdxl_dir, dataset, tmp_path):
    straight = train(resume_config(tiny_sdxl_dir, dataset, tmp_path / "a"), progress=False)

    def press_ctrl_c(info):
        if info.step == 3:
            signal.raise_signal(signal.SIGINT)  # handled: finish step 3, checkpoint, stop

    config = resume_config(tiny_sdxl_dir, dataset, tmp_path / "b")
    with pytest.raises(TrainingInterrupted, match="resume latest"):
        train(config, progress=False, on_step=press_ctrl_c)
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-0000003").is_dir()
    assert not config.output.lora_path.exists()
    resumed = train(
        resume_config(tiny_sdxl_dir, dataset, tmp_path / "b", resume="latest"), progress=False
    )
    assert resumed.steps == 8 and resumed.steps_this_run == 5
    a, b = adapter_tensors(straight.lora_path), adapter_tensors(resumed.lora_path)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    rows_a = (tmp_path / "a" / "loss.csv").read_text().splitlines()
    rows_b = (tmp_path / "b" / "loss.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in rows_a] == [r.split(",")[:3] for r in rows_b]


def test_fault_during_checkpoint_save_keeps_the_previous_one(
    tiny_sdxl_dir, dataset, tmp_path, monkeypatch
):
    straight = train(resume_config(tiny_sdxl_dir, dataset, tmp_path / "a"), progress=False)
    out = tmp_path / "b"
    real_marker = checkpoint_mod._write_marker

    def failing_marker(folder, step):
        if step == 8:
            raise OSError("disk full (injected)")
        real_marker(folder, step)

    monkeypatch.setattr(checkpoint_mod, "_write_marker", failing_marker)
    with pytest.raises(OSError, match="injected"):
        train(resume_config(tiny_sdxl_dir, dataset, out), progress=False)
    monkeypatch.undo()
    root = out / "checkpoints"
    assert (root / "checkpoint-0000004" / "COMPLETE").is_file()
    assert any(
        p.name.startswith(".tmp-checkpoint-0000008") for p in root.iterdir()
    )  # the broken save
    # a folder that looks like a newer checkpoint but never got its marker is skipped too
    (root / "checkpoint-0000006").mkdir()
    assert checkpoint_mod.find_latest(out) == root / "checkpoint-0000004"
    resumed = train(resume_config(tiny_sdxl_dir, dataset, out, resume="latest"), progress=False)
    assert resumed.steps_this_run == 4
    a, b = adapter_tensors(straight.lora_path), adapter_tensors(resumed.lora_path)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tiny_sdxl_dir, dataset, tmp_path):
    """A job scheduler's SIGTERM (before it kills the job) keeps the work since the last checkpoint."""

    def unhandled(signum, frame):
        raise RuntimeError("SIGTERM reached the default handler: the process would be killed")

    def send_sigterm(info):
        if info.step == 3:
            signal.raise_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        config = resume_config(tiny_sdxl_dir, dataset, tmp_path / "run")
        with pytest.raises(TrainingInterrupted, match="checkpoint-0000003.*resume latest"):
            train(config, progress=False, on_step=send_sigterm)
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the handler before is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-0000003" / "COMPLETE").is_file()
    resumed = train(
        resume_config(tiny_sdxl_dir, dataset, tmp_path / "run", resume="latest"), progress=False
    )
    assert resumed.steps_this_run == 5


def test_resume_refuses_changed_settings(tiny_sdxl_dir, dataset, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(tiny_sdxl_dir, dataset, out, max_steps=4), progress=False)
    with pytest.raises(TrainingError, match="rank"):
        train(
            tiny_config(tiny_sdxl_dir, dataset, out, max_steps=8, rank=8, resume="latest"),
            progress=False,
        )
    # the refused run left the config of the run it refused to continue, which its message cites
    assert load_config(out / "train_config.toml").adapter.rank == 4
    # a decaying schedule is tied to max_steps: changing it would not match an uninterrupted run
    cosine = tmp_path / "cosine"
    train(
        tiny_config(tiny_sdxl_dir, dataset, cosine, max_steps=4, schedule="cosine"), progress=False
    )
    with pytest.raises(TrainingError, match="different max_steps;"):
        train(
            tiny_config(
                tiny_sdxl_dir, dataset, cosine, max_steps=8, schedule="cosine", resume="latest"
            ),
            progress=False,
        )
    # more steps on the same settings is fine: training continues from step 4
    more = train(
        tiny_config(tiny_sdxl_dir, dataset, out, max_steps=6, resume="latest"), progress=False
    )
    assert (more.steps, more.steps_this_run) == (6, 2)


# --- NaN, caches, options ----------------------------------------------------------------


def test_nan_loss_stops_training_and_writes_no_lora(tiny_sdxl_dir, dataset, tmp_path, monkeypatch):
    real_loss = loss_mod.diffusion_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return (
            loss * float("nan") if calls["n"] > 13 else loss
        )  # after the 4 fixed-noise evaluations

    # looked up by the fixed-noise evaluation (loss) and by the training step (loop)
    monkeypatch.setattr(loss_mod, "diffusion_loss", poisoned)
    monkeypatch.setattr(loop_mod, "diffusion_loss", poisoned)
    config = tiny_config(tiny_sdxl_dir, dataset, tmp_path / "nan", max_steps=20, checkpoint_every=5)
    with pytest.raises(
        TrainingError, match=r"loss became nan at step 10; no LoRA was written"
    ) as err:
        train(config, progress=False)
    assert "checkpoint-0000005" in str(err.value)
    assert not config.output.lora_path.exists()
    assert not list((tmp_path / "nan").glob("*.safetensors"))
    weights = checkpoint_mod.load_checkpoint(
        tmp_path / "nan" / "checkpoints" / "checkpoint-0000005"
    )[1]
    assert all(torch.isfinite(t).all() for t in weights["adapters"].values())


def test_diverged_run_leaves_no_poisoned_checkpoint(tiny_sdxl_dir, dataset, tmp_path):
    """The audit's run (lr 1, alpha 1e6 at rank 1, no clipping, a checkpoint every step) once
    advertised and resumed from a checkpoint whose adapter and optimizer held NaN/Inf."""
    out = tmp_path / "diverged"
    config = tiny_config(
        tiny_sdxl_dir, dataset, out, lr=1.0, alpha=1e6, rank=1, max_grad_norm=0.0,
        checkpoint_every=1, warmup_steps=0, max_steps=10,
    )  # fmt: skip
    with pytest.raises(TrainingError, match="no LoRA was written") as err:
        train(config, progress=False)
    assert not list(out.glob("*.safetensors"))
    for path in sorted((out / "checkpoints").glob("checkpoint-*")):  # each one left can resume
        tensors = load_file(str(path / checkpoint_mod.TENSORS))
        assert all(torch.isfinite(t).all() for t in tensors.values()), f"{path.name}: NaN/Inf"
    latest = checkpoint_mod.find_latest(out)
    named = f"the last good checkpoint is {latest}" if latest else "there is no checkpoint yet"
    assert named in str(err.value)
    # the weights (or the optimizer's moments) diverge before the loss shows it: said so
    assert "became NaN/Inf by step" in str(err.value)


def test_refused_run_writes_no_config(tiny_sdxl_dir, dataset, tmp_path):
    out = tmp_path / "run"
    config = tiny_config(tmp_path / "no-such-model", dataset, out)
    with pytest.raises(NanoBananaError):
        train(config, progress=False)
    assert not (out / "train_config.toml").exists()


def test_second_run_reads_latents_and_text_from_the_cache(tiny_sdxl_dir, dataset, tmp_path):
    cache = tmp_path / "cache"
    first = train(
        tiny_config(tiny_sdxl_dir, dataset, tmp_path / "one", max_steps=1, cache_dir=str(cache)),
        progress=False,
    )
    second = train(
        tiny_config(tiny_sdxl_dir, dataset, tmp_path / "two", max_steps=1, cache_dir=str(cache)),
        progress=False,
    )
    assert first.cache == {"latent_hits": 0, "latent_misses": 4, "text_hits": 0, "text_misses": 1}
    assert second.cache == {"latent_hits": 4, "latent_misses": 0, "text_hits": 1, "text_misses": 0}
    # a setting that changes the latents (here the crop, via flips) misses the cache
    third = train(
        tiny_config(
            tiny_sdxl_dir, dataset, tmp_path / "three", max_steps=1, cache_dir=str(cache), flip=True
        ),
        progress=False,
    )
    assert third.cache["latent_hits"] == 4 and third.cache["latent_misses"] == 4


def test_text_encoder_lora_with_checkpointing_and_shuffled_captions(
    tiny_sdxl_dir, dataset, tmp_path
):
    config = tiny_config(
        tiny_sdxl_dir,
        dataset,
        tmp_path / "te",
        max_steps=3,
        train_text_encoder=True,
        text_encoder_lr=5e-4,
        grad_checkpointing=True,
        shuffle_captions=True,
        targets="attn-ff-conv",
    )
    result = train(config, progress=False)
    assert result.cache["text_misses"] == 0  # captions vary per step: encoded live, not cached
    keys = adapter_tensors(result.lora_path).keys()
    assert any(k.startswith("text_encoder.") for k in keys)
    assert any(k.startswith("text_encoder_2.") for k in keys)
    assert any("conv1" in k for k in keys) and any("ff.net.2" in k for k in keys)
    pipe = load_pipe(tiny_sdxl_dir)
    pipe.load_lora_weights(str(result.lora_path), adapter_name="nano_banana")
    # every trained module is found again (diffusers' key conversion once dropped the attention
    # layers of an attn+ff+conv file silently; we save PEFT keys, which load whole)
    for prefix, model in (
        ("unet.", pipe.unet),
        ("text_encoder.", pipe.text_encoder),
        ("text_encoder_2.", pipe.text_encoder_2),
    ):
        saved = sum(1 for k in keys if k.startswith(prefix) and "lora_A" in k)
        loaded = sum(1 for m in model.modules() if "nano_banana" in getattr(m, "lora_A", {}))
        assert saved == loaded > 0, prefix


def test_bad_dataset_is_refused_before_any_model_work(dataset, tmp_path):
    data = make_dataset(tmp_path / "data", n=2)
    (data / "item00.txt").unlink()
    config = TrainConfig.from_dict(
        {
            "data": str(data),
            "out": str(tmp_path / "out"),
            "base": str(tmp_path / "no-such-model"),
            "resolution": 64,
        }
    )
    with pytest.raises(DatasetError, match=r"(?s)--skip-bad.*missing caption: 1.*item00\.png"):
        train(config, progress=False)


def test_skip_bad_trains_without_the_bad_items_and_lists_them(tiny_sdxl_dir, tmp_path):
    data = make_dataset(tmp_path / "data", n=3)
    (data / "item01.txt").write_text("   ")
    (data / "broken.png").write_bytes(b"not an image at all")
    (data / "broken.txt").write_text("x")
    config = tiny_config(tiny_sdxl_dir, data, tmp_path / "out", max_steps=2, skip_bad=True)
    result = train(config, progress=False)
    assert sorted(p.kind for p in result.skipped) == ["empty caption", "undecodable"]
    assert sorted(p.path for p in result.skipped) == [
        str(data / "broken.png"),
        str(data / "item01.png"),
    ]
    with safe_open(str(result.lora_path), "pt") as f:
        summary = json.loads(f.metadata()["nano_banana.dataset"])
    assert summary["images"] == 2 and summary["skipped"] == 2


# --- pure pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("constant", 0, 1 / 11),
        ("constant", 9, 10 / 11),
        ("constant", 10, 1.0),
        ("constant", 99, 1.0),
        ("cosine", 10, 1.0),
        ("cosine", 55, 0.5),
        ("linear", 55, 0.5),
        ("linear", 100, 0.0),
    ],
)
def test_lr_schedule(schedule, step, expected):
    factor = lr_factor(step, warmup=10, total=100, decay=Schedule(schedule))
    assert factor == pytest.approx(expected)


def test_min_snr_weights():
    snr = torch.tensor([0.5, 5.0, 50.0])
    assert torch.allclose(min_snr_weights(snr, 5.0, "epsilon"), torch.tensor([1.0, 1.0, 0.1]))
    assert torch.allclose(
        min_snr_weights(snr, 5.0, "v_prediction"), torch.tensor([0.5 / 1.5, 5 / 6, 5 / 51])
    )
