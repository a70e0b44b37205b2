"""A tiny SDXL pipeline loaded plainly with diffusers, and its latents at one fixed setting:
what LoRA tests compare with and without an adapter."""

from pathlib import Path

import torch


def load_pipe(base_dir: Path):
    """The plain diffusers pipeline of ``base_dir``, progress bars off."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(base_dir, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def latents(pipe) -> torch.Tensor:
    """Latents of one fixed prompt, seed and size, two steps."""
    return pipe(
        "knolling watch",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).images
