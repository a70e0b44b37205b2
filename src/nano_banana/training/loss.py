"""The denoising loss: the random source of a micro-batch, min-SNR weights, the loss itself.

Pure functions with explicit arguments, shared by the LoRA trainer and the demo
build's from-scratch UNet training; where the two differ (the demo's SNR
arithmetic), the difference is an argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

# (latents, prompt embeddings, pooled embeddings, time ids) of one batch
LossInputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def step_generator(
    seed: int, step: int, micro: int, process: int, device: torch.device
) -> torch.Generator:
    """The random source of one micro-batch: noise, timesteps, noise offset (and LoRA dropout).

    A pure function of (seed, step, micro-batch, process), so a resumed run draws exactly
    what an uninterrupted one would have drawn.
    """
    digest = hashlib.sha256(f"{seed}/{step}/{micro}/{process}".encode()).digest()
    value = int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
    torch.manual_seed(value)  # LoRA dropout draws from the global generator
    return torch.Generator(device=device).manual_seed(value)


def min_snr_weights(snr: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
    Weighting Strategy", eq. 9): min(SNR, γ)/SNR for ε-prediction, min(SNR, γ)/(SNR+1) for v."""
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr


def diffusion_loss(
    unet: torch.nn.Module,
    latents: torch.Tensor,
    embeds: torch.Tensor,
    pooled: torch.Tensor,
    time_ids: torch.Tensor,
    noise_scheduler: Any,
    generator: torch.Generator,
    *,
    min_snr_gamma: float,
    noise_offset: float = 0.0,
    snr_table: torch.Tensor | None = None,
) -> torch.Tensor:
    """The denoising loss of one batch: noise the latents at random timesteps, predict, compare.

    DDPM's simple loss (Ho et al. 2020, eq. 14), ||ε − ε_θ(x_t, t)||², or its v-prediction
    form (Salimans & Ho 2022, v = α_t ε − σ_t x_0), per sample weighted by ``min_snr_weights``
    when ``min_snr_gamma`` > 0. ``noise_offset`` adds a per-channel constant to the noise
    (Guttenberg 2023, "Diffusion with Offset Noise"). The generator draws the noise, then
    the timesteps. SNR(t) = ᾱ_t/(1−ᾱ_t) comes from diffusers' ``compute_snr``, or from
    ``snr_table[t]`` when given (the demo base was built with ᾱ/(1−ᾱ) computed directly,
    which differs from ``compute_snr``'s squared ratio of square roots in the last bits).
    """
    from diffusers.training_utils import compute_snr

    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator, device=latents.device)
    if noise_offset:  # shifts each channel's mean: learns brightness the zero-mean noise hides
        noise = noise + noise_offset * torch.randn(
            (b, latents.shape[1], 1, 1), generator=generator, device=latents.device
        )
    steps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (b,), generator=generator, device=latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    # the frozen base's dtype (the latents' own when the whole UNet trains)
    dtype = next((p.dtype for p in unet.parameters() if not p.requires_grad), latents.dtype)
    pred = unet(
        noisy.to(dtype),
        timesteps,
        encoder_hidden_states=embeds.to(dtype),
        added_cond_kwargs={"text_embeds": pooled.to(dtype), "time_ids": time_ids.to(dtype)},
    ).sample
    prediction_type = noise_scheduler.config.prediction_type
    target = (
        noise
        if prediction_type == "epsilon"
        else noise_scheduler.get_velocity(latents, noise, timesteps)
    )
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if min_snr_gamma > 0:
        snr = compute_snr(noise_scheduler, timesteps) if snr_table is None else snr_table[timesteps]
        per_sample = per_sample * min_snr_weights(snr, min_snr_gamma, prediction_type)
    return per_sample.mean()


@torch.no_grad()
def fixed_noise_loss(
    unet: torch.nn.Module,
    inputs: Iterable[LossInputs],
    noise_scheduler: Any,
    device: torch.device,
    *,
    min_snr_gamma: float,
    noise_offset: float = 0.0,
) -> float:
    """Mean loss over ``inputs`` at fixed noise and timesteps (batch i draws from seed 10000+i):
    the same measurement before and after training, unlike the noisy running loss."""
    losses = []
    for index, (latents, embeds, pooled, time_ids) in enumerate(inputs):
        generator = torch.Generator(device=device).manual_seed(10_000 + index)
        loss = diffusion_loss(
            unet,
            latents.to(device),
            embeds.to(device),
            pooled.to(device),
            time_ids.to(device),
            noise_scheduler,
            generator,
            min_snr_gamma=min_snr_gamma,
            noise_offset=noise_offset,
        )
        losses.append(loss.item())
    return sum(losses) / len(losses)
