"""The engine's fast path (speed.py) on a tiny SDXL: same image as the reference path, per-job state.

Tolerances (max absolute pixel difference on 0-255, and PSNR) are the ones
benchmarks/RESULTS.md states for the fast path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from image_metrics import pixels, psnr
from nano_banana.errors import InvalidSettingError
from nano_banana.generate.engine import Engine
from nano_banana.generate.speed import SpeedConfig, cpu_has_native_bf16
from nano_banana.lora.fuse import LoraFuser
from nano_banana.settings import GenerationRequest, LoraWeight

SMALL = dict(prompt="a watch", seed=5, width=64, height=64, steps=8, preset="none")
FUSED_FP32 = SpeedConfig(half_precision="off")  # fused LoRA + prompt cache + inference mode
FUSED_MAX_ABS = 2  # fp32 fused vs unfused: rounding of W0 + BA only
HALF_PSNR_DB = 35.0  # bf16 UNet vs fp32 reference: 46-52 dB on tiny models, 35.1 on the demo


def request(**changes) -> GenerationRequest:
    return GenerationRequest(**{**SMALL, **changes})


def tempered(src, out, factor: float):
    """The test LoRA with its up matrices scaled: conftest's is made 20x strong on purpose,
    which drives the tiny model's attention into saturation, where any rounding flips it."""
    tensors = {
        k: (v * factor if "lora_B" in k or "lora_up" in k else v) for k, v in load_file(src).items()
    }
    save_file(tensors, out)
    return out


@pytest.fixture(scope="module")
def loras(tiny_lora, tiny_lora_b, tmp_path_factory):
    folder = tmp_path_factory.mktemp("speed_loras")
    return (
        tempered(tiny_lora, folder / "structure.safetensors", 1 / 20),
        tempered(tiny_lora_b, folder / "other.safetensors", 1 / 20),
    )


def engine_with(base, loras, speed: SpeedConfig) -> Engine:
    engine = Engine.load(str(base), device="cpu", speed=speed)
    engine.add_lora(loras[0], name="structure")
    engine.add_lora(loras[1], name="other", weight=0.5)
    return engine


@pytest.fixture(scope="module")
def reference(tiny_sdxl_dir, loras) -> Engine:
    return engine_with(tiny_sdxl_dir, loras, SpeedConfig.reference())


@pytest.fixture(scope="module")
def fast(tiny_sdxl_dir, loras) -> Engine:
    return engine_with(tiny_sdxl_dir, loras, FUSED_FP32)


@pytest.mark.parametrize(
    "changes",
    [
        dict(lora_scale=0.8),
        dict(lora_scale=1.0),
        dict(lora_scale=0.0),
        dict(loras=(LoraWeight("other", 1.0),)),
        dict(loras=(LoraWeight("structure", 0.7), LoraWeight("other", 0.4))),
        dict(cfg=1.0),
    ],
)
def test_fused_image_matches_the_reference_path(reference, fast, changes):
    want = pixels(reference.generate(request(**changes)))
    got = pixels(fast.generate(request(**changes)))
    assert np.abs(got - want).max() <= FUSED_MAX_ABS


def test_lora_off_is_the_base_model_exactly(fast, tiny_sdxl_dir):
    plain = Engine.load(str(tiny_sdxl_dir), device="cpu", speed=SpeedConfig.reference())
    fast.generate(request(lora_scale=1.0))  # fold something in first
    off = pixels(fast.generate(request(lora_scale=0.0)))
    assert np.array_equal(off, pixels(plain.generate(request())))


def test_refolding_does_not_depend_on_history(fast):
    first = pixels(fast.generate(request(lora_scale=0.8)))
    for scale in (1.0, 0.3, 0.0):
        fast.generate(request(lora_scale=scale))
    fast.generate(request(loras=(LoraWeight("other", 1.0),)))
    assert np.array_equal(first, pixels(fast.generate(request(lora_scale=0.8))))


def test_adding_and_removing_a_lora_restores_the_pristine_model(tiny_sdxl_dir, loras):
    engine = Engine.load(str(tiny_sdxl_dir), device="cpu", speed=FUSED_FP32)
    engine.add_lora(loras[0], name="structure")
    before = pixels(engine.generate(request(lora_scale=0.8)))
    engine.add_lora(loras[1], name="other", weight=0.0)  # attached while 'structure' was folded in
    assert np.array_equal(before, pixels(engine.generate(request(lora_scale=0.8))))
    engine.remove_lora("structure")
    engine.remove_lora("other")
    plain = Engine.load(str(tiny_sdxl_dir), device="cpu", speed=SpeedConfig.reference())
    assert np.array_equal(pixels(engine.generate(request())), pixels(plain.generate(request())))


def test_fused_layers_leave_the_module_tree_and_come_back(fast):
    fast.generate(request(lora_scale=0.8))
    fuser: LoraFuser = fast.speed.fuser
    layers = fuser._layers
    assert layers, "the LoRA's layers were found"
    unet_modules = list(fast.pipe.unet.modules())
    assert not any(layer.wrapper in unet_modules for layer in layers)  # no PEFT cost per step
    changed = [not torch.equal(lay.base.weight, lay.pristine) for lay in layers]
    assert any(changed)
    with fast._lock:
        fast.speed.before_lora_change()
    unet_modules = list(fast.pipe.unet.modules())
    assert all(layer.wrapper in unet_modules for layer in layers)
    assert all(torch.equal(lay.base.weight, lay.pristine) for lay in layers)


def test_prompt_embeddings_are_encoded_once_per_prompt(fast, monkeypatch):
    calls = []
    original = fast.pipe.encode_prompt

    def counting(*args, **kwargs):
        if kwargs.get("prompt") is not None:  # the pipeline's own call passes the embeddings
            calls.append(kwargs["prompt"])
        return original(*args, **kwargs)

    monkeypatch.setattr(fast.pipe, "encode_prompt", counting)
    fast.speed.prompts.clear()
    a = pixels(fast.generate(request(prompt="a camera")))
    b = pixels(fast.generate(request(prompt="a camera")))
    fast.generate(request(prompt="a camera", seed=9))
    assert calls == ["a camera"]  # the pipeline got the cached embeddings, not the prompt
    assert np.array_equal(a, b)
    fast.generate(request(prompt="a speaker"))
    assert calls == ["a camera", "a speaker"]


def test_cpu_default_stays_fp32(tiny_sdxl_dir, loras):
    """The device policy says fp32 on the CPU; the fast path does not quietly change that."""
    fast = engine_with(tiny_sdxl_dir, loras, SpeedConfig())
    assert fast.dtype == torch.float32
    assert fast.generate(request(seed=1)).record.dtype == "float32"


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16")
def test_opt_in_bf16_is_close_to_the_fp32_reference(reference, tiny_sdxl_dir, loras):
    fast = engine_with(tiny_sdxl_dir, loras, SpeedConfig(half_precision="bfloat16"))
    assert fast.dtype == torch.bfloat16  # the record says what ran
    for seed in (1, 2):
        want = pixels(reference.generate(request(seed=seed)))
        result = fast.generate(request(seed=seed))
        assert psnr(pixels(result), want) >= HALF_PSNR_DB
        assert result.record.dtype == "bfloat16"


def test_explicit_dtype_wins_over_auto_half_precision(tiny_sdxl_dir):
    engine = Engine.load(str(tiny_sdxl_dir), device="cpu", dtype="float32")
    assert engine.dtype == torch.float32


def test_a_pipeline_from_outside_is_left_untouched(tiny_sdxl_dir):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_dir, use_safetensors=True)
    engine = Engine.from_pipeline(pipe)
    assert engine.speed.config == SpeedConfig.reference()
    assert pipe.unet.dtype == torch.float32


@pytest.mark.parametrize(
    "bad",
    [
        dict(half_precision="fp8"),
        dict(compile="yes"),
        dict(channels_last=True),
        dict(prompt_cache=-1),
        dict(compile_mode="fast"),
        dict(vae_decode_dtype="float16"),
    ],
)
def test_bad_speed_settings_are_refused(bad):
    with pytest.raises(InvalidSettingError, match="speed setting|prompt_cache"):
        SpeedConfig(**bad)


def test_small_models_run_on_one_cpu_thread_and_big_ones_keep_torchs_choice(tiny_sdxl_dir):
    from nano_banana.generate.speed import resolve_cpu_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        engine = Engine.load(str(tiny_sdxl_dir), device="cpu")
        assert torch.get_num_threads() == 1  # tiny UNet: auto picks one thread
        big = torch.nn.Linear(12_000, 10_000)  # 120 M parameters, above the small-model line
        assert resolve_cpu_threads(SpeedConfig(), big) == 0
        assert resolve_cpu_threads(SpeedConfig(cpu_threads=3), engine.pipe.unet) == 3
        assert resolve_cpu_threads(SpeedConfig.reference(), engine.pipe.unet) == 0
    finally:
        torch.set_num_threads(before)


def test_pristine_copies_stay_beside_cpu_weights(fast):
    """On the CPU nothing moves: each pristine weight is its own copy, in the same memory."""
    fast.generate(request(lora_scale=0.8))
    for layer in fast.speed.fuser._layers:
        assert layer.pristine.device == layer.base.weight.device
        assert layer.pristine.data_ptr() != layer.base.weight.data_ptr()


@pytest.mark.gpu
def test_on_a_gpu_pristine_copies_wait_in_host_memory_and_unfusing_is_exact(tiny_sdxl_dir, loras):
    def load(speed: SpeedConfig) -> Engine:
        return Engine.load(
            str(tiny_sdxl_dir), device="cuda", dtype="float32", speed=speed, offload="none"
        )

    engine = load(FUSED_FP32)
    engine.add_lora(loras[0], name="structure")
    engine.generate(request(lora_scale=0.8))
    layers = engine.speed.fuser._layers
    assert layers and all(layer.pristine.device.type == "cpu" for layer in layers)
    assert all(layer.base.weight.is_cuda for layer in layers)
    off = pixels(engine.generate(request(lora_scale=0.0)))
    assert np.array_equal(off, pixels(load(SpeedConfig.reference()).generate(request())))
