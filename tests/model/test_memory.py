"""Small GPUs: --offload and --vae-tiling, their auto choice, and out-of-memory errors.

There is no GPU here. Model offload runs for real on the CPU (diffusers' hooks
accept the CPU as their "accelerator"), so its engine paths are checked image for
image; sequential offload cannot run on a CPU at all, so its choice is checked,
and out-of-memory errors are faked from inside the pipeline. VAE tiling runs for
real on the tiny model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from image_metrics import pixels, psnr
from nano_banana.errors import GenerationError, InvalidSettingError, ModelLoadError
from nano_banana.generate import engine as engine_module
from nano_banana.generate.engine import Engine
from nano_banana.generate.spec import EngineSpec
from nano_banana.generate.speed import SpeedConfig
from nano_banana.model.load import BaseSpec, load_base
from nano_banana.model.memory import (
    GIB,
    MemoryPlan,
    WeightSizes,
    oom_advice,
    place_pipeline,
    plan_memory,
)
from nano_banana.settings import GenerationRequest

SMALL = dict(prompt="a watch", seed=3, steps=2, preset="none")
# SDXL base in fp16: 3,468,837,867 parameters, 2,567,463,684 of them the UNet's
SDXL_FP16 = WeightSizes(total=2 * 3_468_837_867, largest=2 * 2_567_463_684)
CUDA = torch.device("cuda")  # only named: plan_memory is told the free memory
# Tiles are decoded apart (each with its own GroupNorm statistics) and blended where they
# overlap, so a tiled image differs a little everywhere and most at the seams. Measured on
# the tiny model at 128 px: PSNR 41 dB, mean difference 1.5 of 255.
TILED_PSNR_DB = 35.0


def request(**changes) -> GenerationRequest:
    return GenerationRequest(**{**SMALL, **changes})


# --- choosing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("free_gib", "offload", "tiling", "want"),
    [
        (40, "auto", "auto", ("none", False)),  # a big GPU runs as before
        (12, "auto", "auto", ("none", False)),  # SDXL fp16 fits whole from ~11.5 GiB free
        (11, "auto", "auto", ("model", True)),
        (6.5, "auto", "auto", ("model", True)),  # the UNet alone fits from ~5.8 GiB
        (5.5, "auto", "auto", ("sequential", True)),
        (40, "model", "auto", ("model", False)),  # an explicit choice stands
        (5.5, "none", "off", ("none", False)),
        (40, "auto", "on", ("none", True)),
    ],
)
def test_auto_follows_the_gpus_free_memory(free_gib, offload, tiling, want):
    plan = plan_memory(CUDA, offload, tiling, SDXL_FP16, free_bytes=int(free_gib * GIB))
    assert (plan.offload, plan.vae_tiling) == want
    asked = "auto" in (offload, tiling)  # the GPU is asked only when something is auto
    assert plan.free_gib == (pytest.approx(free_gib, abs=0.05) if asked else None)


def test_the_lines_scale_with_the_models_size():
    """A model a tenth of SDXL's size needs no offload on a small GPU."""
    small = WeightSizes(total=SDXL_FP16.total // 10, largest=SDXL_FP16.largest // 10)
    plan = plan_memory(CUDA, "auto", "auto", small, free_bytes=6 * GIB)
    assert (plan.offload, plan.vae_tiling) == ("none", False)


def test_on_the_cpu_auto_is_nothing_and_offload_is_refused():
    cpu = torch.device("cpu")
    assert plan_memory(cpu, "auto", "auto", SDXL_FP16) == MemoryPlan("none", False, None)
    assert plan_memory(cpu, "none", "on", SDXL_FP16).vae_tiling  # tiling saves RAM too
    with pytest.raises(ModelLoadError, match="on the CPU there is nothing to offload"):
        plan_memory(cpu, "sequential", "auto", SDXL_FP16)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(offload="gpu"), "--offload must be one of auto, none, model, sequential"),
        (dict(vae_tiling="yes"), "--vae-tiling must be one of auto, on, off"),
    ],
)
def test_bad_values_are_refused_before_loading(fields, message):
    with pytest.raises(InvalidSettingError, match=message):
        EngineSpec(base="b", **fields)


def test_the_options_reach_the_engine(monkeypatch):
    seen = {}
    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, base, **kw: seen.update(kw)))
    EngineSpec(base="b", offload="model", vae_tiling="on", base_config="cfg").load()
    assert (seen["offload"], seen["vae_tiling"], seen["base_config"]) == ("model", "on", "cfg")
    assert EngineSpec().offload == EngineSpec().vae_tiling == "auto"


@pytest.mark.parametrize(
    ("plan", "vae", "advice"),
    [
        (MemoryPlan("none", False), False, "--offload model, then --offload sequential, then "),
        (MemoryPlan("none", False), True, "try --vae-tiling on, then --offload model, then "),
        (MemoryPlan("model", True), False, "try --offload sequential, then a smaller"),
        (MemoryPlan("sequential", True), True, "try a smaller --width/--height"),
    ],
)
def test_advice_names_the_savers_not_yet_on_in_order(plan, vae, advice):
    assert advice in oom_advice(plan, vae)


def test_sequential_offload_keeps_weights_where_diffusers_streams_them():
    speed = SpeedConfig().respecting_offload("sequential")
    assert (speed.fuse_lora, speed.half_precision, speed.channels_last) == (False, "off", "off")
    assert SpeedConfig().respecting_offload("model") == SpeedConfig()


def test_placing_calls_diffusers_own_savers(tiny_sdxl_dir, monkeypatch):
    from diffusers import StableDiffusionXLPipeline

    calls = []
    monkeypatch.setattr(
        StableDiffusionXLPipeline,
        "enable_sequential_cpu_offload",
        lambda self, device=None: calls.append(("sequential", device)),
    )
    pipe = load_base(BaseSpec(str(tiny_sdxl_dir), device="cpu")).pipe
    place_pipeline(pipe, MemoryPlan("sequential", True), CUDA)
    assert calls == [("sequential", CUDA)] and pipe.vae.use_tiling


# --- running ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(tiny_sdxl_dir) -> Engine:
    return Engine.load(str(tiny_sdxl_dir), device="cpu", speed=SpeedConfig(half_precision="off"))


def offloaded_engine(base, lora, monkeypatch) -> Engine:
    """The engine as Engine.load builds it for ``--offload model``, with the CPU standing in
    for the GPU (load_base refuses that pairing; diffusers' hooks accept it). diffusers
    re-applies the hooks after loading a LoRA on its default accelerator: here the CPU."""
    from diffusers import DiffusionPipeline

    real = DiffusionPipeline.enable_model_cpu_offload
    monkeypatch.setattr(
        DiffusionPipeline,
        "enable_model_cpu_offload",
        lambda self, gpu_id=None, device=None: real(self, gpu_id, device or "cpu"),
    )
    loaded = load_base(BaseSpec(str(base), device="cpu"))
    memory = MemoryPlan("model", False)
    place_pipeline(loaded.pipe, memory, torch.device("cpu"))
    engine = Engine(
        loaded.pipe, loaded.name, speed=SpeedConfig(half_precision="off"), memory=memory
    )
    engine.add_lora(lora, name="structure")  # diffusers lifts and restores the hooks
    return engine


def test_model_offload_gives_the_same_images(tiny_sdxl_dir, tiny_lora, monkeypatch):
    engine = offloaded_engine(tiny_sdxl_dir, tiny_lora, monkeypatch)
    assert hasattr(engine.pipe.unet, "_hf_hook")  # diffusers' offload hooks are in place
    plain = Engine.load(str(tiny_sdxl_dir), device="cpu", loras=[str(tiny_lora)])
    for changes in (dict(lora_scale=0.0), dict(lora_scale=0.8)):  # base, then LoRA fused
        want = pixels(plain.generate(request(**changes)))
        result = engine.generate(request(**changes))
        assert np.array_equal(pixels(result), want)
    assert (result.record.offload, result.record.vae_tiling) == ("model", False)  # as applied
    photo = Image.new("RGB", (64, 64), (200, 120, 40))
    img2img = request(strength=0.5, steps=4)
    want = pixels(plain.generate(img2img, init_image=photo))
    assert np.array_equal(pixels(engine.generate(img2img, init_image=photo)), want)
    assert engine._img2img._all_hooks  # its own hooks: models go back to host memory after


def test_vae_tiling_runs_and_stays_close(plain, tiny_sdxl_dir, monkeypatch):
    tiled = Engine.load(str(tiny_sdxl_dir), device="cpu", vae_tiling="on")
    calls = []
    for name in ("tiled_decode", "_tiled_encode"):
        count_calls(monkeypatch, tiled.pipe.vae, name, calls)
    big = request(width=128, height=128)  # above the tiny VAE's 64 px tile: 3x3 tiles
    tiled_result, plain_result = tiled.generate(big), plain.generate(big)
    got, want = pixels(tiled_result), pixels(plain_result)
    assert calls == ["tiled_decode"]
    # each image's record says how it was made: auto resolved to nothing on the CPU
    assert (tiled_result.record.offload, tiled_result.record.vae_tiling) == ("none", True)
    assert (plain_result.record.offload, plain_result.record.vae_tiling) == ("none", False)
    assert np.abs(got - want).max() > 0 and psnr(got, want) >= TILED_PSNR_DB
    photo = Image.new("RGB", (128, 128), (30, 160, 90))  # image to image shares the VAE
    img2img = request(width=128, height=128, strength=0.5, steps=4)
    got = pixels(tiled.generate(img2img, init_image=photo))
    want = pixels(plain.generate(img2img, init_image=photo))
    assert calls[1:] == ["_tiled_encode", "tiled_decode"] and psnr(got, want) >= TILED_PSNR_DB
    small = request()  # one tile's size or less: decoded whole, exactly as without tiling
    assert np.array_equal(pixels(tiled.generate(small)), pixels(plain.generate(small)))


def count_calls(monkeypatch, obj, name: str, calls: list[str]) -> None:
    real = getattr(obj, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)


# --- running out --------------------------------------------------------------------


def fake_oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture
def released(monkeypatch) -> list[int]:
    calls = []
    monkeypatch.setattr(engine_module, "release_device_memory", lambda: calls.append(1))
    return calls


def test_out_of_memory_while_denoising_names_the_next_saver(plain, monkeypatch, released):
    from diffusers import StableDiffusionXLPipeline

    monkeypatch.setattr(StableDiffusionXLPipeline, "__call__", fake_oom)
    with pytest.raises(GenerationError) as info:
        plain.generate(request(width=96, height=64))
    message = str(info.value)
    assert message.startswith("out of memory on cpu while denoising at 96x64; try --offload model")
    assert "\n" not in message and released == [1]
    monkeypatch.undo()
    plain.generate(request())  # the engine's lock was let go: the next job runs


def test_out_of_memory_while_decoding_suggests_tiling_first(plain, monkeypatch, released):
    monkeypatch.setattr(plain.pipe.vae, "decode", fake_oom)
    with pytest.raises(GenerationError, match="while decoding at 64x64; try --vae-tiling on"):
        plain.generate(request())
    assert released == [1]


def test_the_studio_queue_reports_it_as_the_jobs_error_and_keeps_serving(
    plain, monkeypatch, tmp_path
):
    from nano_banana.gallery.store import Gallery
    from nano_banana.generate.jobs import JobKind, JobQueue, JobStatus

    queue = JobQueue(plain, Gallery.open(tmp_path / "gallery"))
    try:
        monkeypatch.setattr(plain.pipe.vae, "decode", fake_oom)
        failed = queue.submit(JobKind.GENERATE, request())
        assert failed.wait(60) and failed.status is JobStatus.FAILED
        assert "try --vae-tiling on, then --offload model" in failed.error
        monkeypatch.undo()
        done = queue.submit(JobKind.GENERATE, request())
        assert done.wait(60) and done.status is JobStatus.DONE, done.error
    finally:
        queue.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "a watch", "--offload", "gpu"], "--offload must be one of"),
        (["studio", "--vae-tiling", "yes"], "--vae-tiling must be one of"),
        (["generate", "a watch", "--offload", "model"], "on the CPU there is nothing to offload"),
    ],
)
def test_the_shells_say_it_in_one_line(cli, tiny_sdxl_dir, args, message):
    from cli_helpers import assert_user_error

    assert_user_error(cli(*args, "--base", str(tiny_sdxl_dir), "--device", "cpu"), message)
