"""The engine on a tiny SDXL: reproducible seeds, per-request LoRA state, threads, progress, cancel, NaN-safe decode."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from nano_banana.errors import CancelledError, GenerationError, InvalidSettingError
from nano_banana.generate.engine import Engine
from nano_banana.generate.spec import parse_lora_arg
from nano_banana.settings import GenerationRequest, LoraWeight

SMALL = dict(prompt="a watch", seed=11, width=64, height=64, steps=3, preset="none")


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


@pytest.fixture(scope="module")
def engine(tiny_sdxl_dir, tiny_lora, tiny_lora_b) -> Engine:
    eng = Engine.load(str(tiny_sdxl_dir), device="cpu")
    eng.add_lora(tiny_lora, name="structure")
    eng.add_lora(tiny_lora_b, name="other", weight=0.5)
    return eng


def request(**changes) -> GenerationRequest:
    return GenerationRequest(**{**SMALL, **changes})


def test_same_seed_same_image_other_seed_other_image(engine):
    a, b = engine.generate(request()), engine.generate(request())
    c = engine.generate(request(seed=12))
    assert a.image.size == (64, 64)
    assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(a) - pixels(c)).mean() > 1.0


def test_lora_scale_zero_equals_lora_free_model(engine, tiny_sdxl_dir):
    plain = Engine.load(str(tiny_sdxl_dir), device="cpu")
    off = engine.generate(request(lora_scale=0.0))
    assert np.abs(pixels(off) - pixels(plain.generate(request()))).max() <= 1
    on = engine.generate(request(lora_scale=0.8))
    assert np.abs(pixels(on) - pixels(off)).mean() > 1.0


def test_scale_is_per_request_and_recorded(engine):
    strong = engine.generate(request(lora_scale=1.0))
    weak = engine.generate(request(lora_scale=0.4))
    assert np.abs(pixels(strong) - pixels(weak)).mean() > 0.5
    uses = {u.name: u for u in weak.record.loras}
    assert uses["structure"].scale == pytest.approx(0.4)
    assert uses["other"].weight == 0.5 and uses["other"].scale == pytest.approx(0.2)
    assert len(uses["structure"].sha256) == 64


def test_request_can_pick_loras_and_unknown_names_fail(engine):
    only = engine.generate(request(loras=(LoraWeight("structure", 1.0),)))
    assert [u.name for u in only.record.loras] == ["structure"]
    with pytest.raises(InvalidSettingError, match="request names LoRA 'nope'"):
        engine.generate(request(loras=(LoraWeight("nope", 1.0),)))


def test_threads_get_their_own_lora_state(engine):
    """Concurrent jobs with different LoRA settings each equal their single-threaded twin."""
    jobs = [request(lora_scale=s, seed=20 + i) for i, s in enumerate((0.0, 0.8, 1.0, 0.0, 0.6))]
    jobs.append(request(loras=(LoraWeight("other", 1.0),), seed=30))
    expected = [pixels(engine.generate(job)) for job in jobs]
    results: list = [None] * len(jobs)
    errors: list = []

    def work(i):
        try:
            results[i] = pixels(engine.generate(jobs[i]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, expected, strict=True):
        assert np.array_equal(got, want)


def test_progress_reports_every_step_with_eta(engine):
    events = []
    engine.generate(request(steps=4), progress=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert all(e.total == 4 for e in events) and events[-1].eta_s == 0
    assert events[0].latents is not None and events[0].latents.shape[1] == 4


def test_cancel_stops_the_job_and_the_engine_stays_usable(engine):
    cancel = threading.Event()

    def stop_after_two(event):
        if event.step == 2:
            cancel.set()

    seen = []
    with pytest.raises(CancelledError):
        engine.generate(
            request(steps=6),
            progress=lambda e: (seen.append(e.step), stop_after_two(e)),
            cancel=cancel,
        )
    assert seen == [1, 2]
    assert engine.generate(request()).image.size == (64, 64)


def test_truncated_prompt_is_the_recorded_prompt(engine):
    long = " ".join(["watch"] * 90)
    result = engine.generate(request(prompt=long))
    assert result.record.prompt_truncated and result.record.prompt_tokens == 90
    assert result.record.prompt_used == " ".join(["watch"] * 75)
    assert "90 tokens" in result.plan.warning()


def test_nan_latents_fail_clearly(engine):
    latents = torch.full((1, 4, 32, 32), float("nan"))
    with pytest.raises(GenerationError, match="NaN"):
        engine.decode(latents)


def test_a_lora_that_overflows_in_float32_is_named_not_the_precision(
    tiny_sdxl_dir, tiny_lora, tmp_path
):
    """Huge but finite LoRA weights overflow the UNet in float32 too: --dtype float32 is no
    advice then; the LoRA is what to change."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v * 1e30 if "lora_B" in k else v for k, v in load_file(tiny_lora).items()}
    path = tmp_path / "huge.safetensors"
    save_file(tensors, path)
    eng = Engine.load(str(tiny_sdxl_dir), loras=[path], device="cpu")
    assert eng.dtype == torch.float32
    with pytest.raises(GenerationError) as info:
        eng.generate(request())
    message = str(info.value)
    assert "float32 with LoRA 'huge' (huge.safetensors)" in message, message
    assert "--dtype float32" not in message


def test_half_precision_overflow_in_vae_is_retried_in_fp32(tiny_sdxl_dir):
    """A VAE that overflows in fp16 (huge first conv) must decode via the fp32 retry, not give NaN."""
    eng = Engine.load(str(tiny_sdxl_dir), device="cpu")
    reference = eng.generate(request())
    with torch.no_grad():
        eng.pipe.vae.decoder.conv_in.weight.mul_(
            1e4
        )  # GroupNorm after it cancels the scale in fp32
        eng.pipe.vae.decoder.conv_in.bias.mul_(1e4)
    eng.pipe.vae.to(torch.float16)
    eng.pipe.vae.register_to_config(force_upcast=False)
    latents = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    half = eng.pipe.vae.decode(latents.half() / eng.pipe.vae.config.scaling_factor).sample
    assert not torch.isfinite(half).all()  # the fault is real in fp16
    image = eng.decode(latents)
    assert np.isfinite(np.asarray(image, dtype=np.float32)).all()
    assert eng.pipe.vae.dtype == torch.float16  # restored after the retry
    assert reference.image.size == image.size


def test_trigger_words_from_lora_metadata_are_offered(engine):
    assert "knolling" in " ".join(engine.trigger_words())


def test_lora_argument_with_weight():
    assert parse_lora_arg("x.safetensors:0.5") == (replace_path("x.safetensors"), 0.5)
    assert parse_lora_arg("x.safetensors") == (replace_path("x.safetensors"), 1.0)
    assert parse_lora_arg("x.safetensors:-1") == (replace_path("x.safetensors"), -1.0)


@pytest.mark.parametrize("weight", ["99", "-1.5", "nan", "inf"])
def test_lora_argument_weight_has_the_scale_bounds(weight):
    with pytest.raises(InvalidSettingError, match="weight of --lora x.safetensors:"):
        parse_lora_arg(f"x.safetensors:{weight}")


def replace_path(text):
    from pathlib import Path

    return Path(text)


def test_size_defaults_to_the_models_native_size(engine):
    assert engine.native_size == (64, 64)  # tiny model: latent 32 x VAE scale 2
    result = engine.generate(replace(request(), width=None, height=None))
    assert result.image.size == (64, 64) and result.record.request.width == 64


def test_seed_is_drawn_when_random(engine):
    result = engine.generate(replace(request(), seed=None))
    assert isinstance(result.record.request.seed, int)


@pytest.mark.gpu
def test_cuda_half_precision_image_matches_the_cpu_reference(tiny_sdxl_dir, tiny_lora):
    """On a CUDA device the engine's default (fp16, fused LoRA) gives the CPU fp32 image
    within a few grey levels: same starting noise (a CPU generator), same LoRA strength."""
    request = GenerationRequest(prompt="a watch", seed=3, steps=4, width=64, height=64)
    images = []
    for device in ("cpu", "cuda"):
        engine = Engine.load(str(tiny_sdxl_dir), loras=[tiny_lora], device=device)
        images.append(np.asarray(engine.generate(request).image, dtype=float))
    assert np.abs(images[0] - images[1]).mean() < 3.0
