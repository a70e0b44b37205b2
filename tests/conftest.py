"""Shared fixtures: tiny random-weight SDXL models and LoRAs built from configs, offline, in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tests never reach a model hub: everything is built locally from configs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


# One torch thread per test process: the models here are tiny, so a second thread only adds
# contention (measured on a busy 2-core machine: 17 us vs 7.7 ms for a 64x64 linear layer), and
# the subprocess tests (studio server, torchrun) then share the cores fairly.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need a CUDA device: on a machine without one they are skipped, saying why.

    ``slow`` (end-to-end: real browsers, subprocesses, demo builds) only labels; ``make test``
    runs them and ``make test-fast`` deselects them with ``-m "not slow"``.
    """
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(*args, stdin="")`` runs ``nano-banana ARGS`` in-process; returns (code, out, err)."""
    from cli_helpers import invoke

    def run(*args, stdin: str = ""):
        return invoke(monkeypatch, capsys, args, stdin=stdin)

    return run


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory) -> Path:
    """A tiny SDXL pipeline with random weights, saved as a diffusers folder (safetensors)."""
    from nano_banana.model.tiny import TinySDXLConfig, save_tiny_pipeline

    return save_tiny_pipeline(
        TinySDXLConfig(), tmp_path_factory.mktemp("models") / "tiny-sdxl", seed=0
    )


@pytest.fixture(scope="session")
def tiny_sdxl_file(tiny_sdxl_dir, tmp_path_factory) -> Path:
    """The tiny model as one original-layout .safetensors file, as A1111 checkpoints are."""
    from single_file_helpers import save_original_layout

    return save_original_layout(tiny_sdxl_dir, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="session")
def demo_engine():
    """The shipped demo model and its structure LoRA, on the CPU (loads in about 2 s)."""
    from nano_banana.demo.assets import demo_base_dir, demo_lora_path
    from nano_banana.generate.engine import Engine

    return Engine.load(str(demo_base_dir()), loras=[str(demo_lora_path())], device="cpu")


def make_peft_lora(
    base_dir: Path,
    out_path: Path,
    *,
    rank: int = 4,
    alpha: float = 4.0,
    seed: int = 1,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Add a random (non-zero) PEFT LoRA to the tiny UNet and save it as diffusers would."""
    import torch
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionXLPipeline.from_pretrained(base_dir, use_safetensors=True)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        init_lora_weights=False,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
    )
    pipe.unet.add_adapter(config)
    with torch.no_grad():  # make the LoRA strong enough to change a 2-step image clearly
        for name, param in pipe.unet.named_parameters():
            if "lora_B" in name:
                param.mul_(20.0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(
        out_path.parent,
        unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        weight_name=out_path.name,
        safe_serialization=True,
    )
    if metadata:
        from safetensors.torch import load_file, save_file

        tensors = load_file(out_path)
        save_file(tensors, out_path, metadata=metadata)
    return out_path


@pytest.fixture(scope="session")
def tiny_lora(tiny_sdxl_dir, tmp_path_factory) -> Path:
    """A diffusers-format LoRA for the tiny model, with trigger words in its metadata."""
    folder = tmp_path_factory.mktemp("loras")
    return make_peft_lora(
        tiny_sdxl_dir,
        folder / "structure.safetensors",
        metadata={"nano_banana.trigger_words": "knolling, flat lay"},
    )


@pytest.fixture(scope="session")
def tiny_lora_b(tiny_sdxl_dir, tmp_path_factory) -> Path:
    """A second, different LoRA for the tiny model."""
    folder = tmp_path_factory.mktemp("loras_b")
    return make_peft_lora(tiny_sdxl_dir, folder / "other.safetensors", seed=7)
