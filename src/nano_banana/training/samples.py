"""Sample grids while training: the fixed prompts at fixed seeds, through the generation engine.

The sample pipeline shares the training modules (no copies), so a grid shows the
adapter exactly as it is at that step (the EMA weights, when kept).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import torch

from .config import SampleConfig
from .data import build_caption
from .export import Adapters, save_grid
from .models import Models
from .optim import AdapterEMA


def build_sample_pipeline(models: Models, adapters: Adapters):
    """A pipeline that shares the training modules (no copies), for sample images."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(
        vae=models.vae,
        text_encoder=models.text_encoders[0],
        text_encoder_2=models.text_encoders[1],
        tokenizer=models.tokenizers[0],
        tokenizer_2=models.tokenizers[1],
        unet=adapters.unet,
        scheduler=EulerAncestralDiscreteScheduler.from_config(models.sample_scheduler_config),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_requests(samples: SampleConfig, trigger: str, size: int) -> list:
    """One generation request per sample prompt, each at its own fixed seed."""
    return [
        generation_request(
            prompt,
            trigger,
            steps=samples.sample_steps,
            size=size,
            seed=seed,
            cfg=samples.sample_cfg,
        )  # fmt: skip
        for seed, prompt in enumerate(samples.sample_prompts, start=samples.sample_seed)
    ]


def generation_request(prompt: str, trigger: str, *, steps: int, size: int, seed: int,
                       cfg: float | None = None):  # fmt: skip
    """The request of one image the trainer renders: the prompt as a training caption (trigger
    words first), the adapter at full strength, a fixed seed (and ``cfg``, else the default)."""
    from ..settings import GenerationRequest

    request = GenerationRequest(
        prompt=build_caption(prompt, trigger),
        preset="none",  # the caption already carries the trigger words, as in training
        lora_scale=1.0,  # the adapter at the strength it is trained at
        steps=steps,
        width=size,
        height=size,
        seed=seed,
    )
    return request if cfg is None else replace(request, cfg=cfg)


def render_samples(pipe, requests: list, base_name: str, device: torch.device) -> list:
    """The requests, with the adapter as it is now, through the engine."""
    from ..generate.engine import Engine

    engine = Engine.from_pipeline(pipe, base_name=base_name)
    for name in _adapter_names(pipe):
        engine.adopt_adapter(name)
    images = []
    for request in requests:
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            images.append(engine.generate(request).image)
    return images


def _adapter_names(pipe) -> list[str]:
    """Adapters inside the pipeline's UNet (the one being trained, under PEFT's name for it)."""
    config = getattr(pipe.unet, "peft_config", None) or {}
    return list(config)


def render_adapter(
    pipe,
    requests: list,
    *,
    base_name: str,
    device: torch.device,
    ema: AdapterEMA | None,
    params: dict[str, torch.nn.Parameter],
) -> list:
    """The requests rendered with the adapter as it is now (the EMA weights when kept), in eval
    mode (no LoRA dropout); the UNet goes back to the mode it was in."""
    context = ema.swapped_in(params) if ema is not None else contextlib.nullcontext()
    was_training = pipe.unet.training
    pipe.unet.eval()
    try:
        with context:
            return render_samples(pipe, requests, base_name, device)
    finally:
        pipe.unet.train(was_training)


def sample_grid(
    pipe,
    requests: list,
    path: Path,
    *,
    base_name: str,
    device: torch.device,
    ema: AdapterEMA | None,
    params: dict[str, torch.nn.Parameter],
) -> Path:
    """Render the sample requests (with the EMA weights when kept) into one grid at ``path``."""
    images = render_adapter(
        pipe, requests, base_name=base_name, device=device, ema=ema, params=params
    )
    return save_grid(images, path)
