"""The one latent convention: how a VAE's raw latents become what the UNet sees, and back.

A VAE's config says how its posterior latents are normalised for the UNet, in
one of three styles (all read here and nowhere else):

* SD / SDXL: ``z * scaling_factor``;
* per-channel (SDXL-style ``latents_mean`` / ``latents_std``, e.g. Playground v2.5):
  ``(z - mean) * scaling_factor / std``, as diffusers' SDXL img2img pipeline encodes
  and its ``__call__`` decodes;
* shifted (SD3 / Flux ``shift_factor``): ``(z - shift) * scaling_factor``.

Training caches ``scale_latents`` of the VAE's output and the engine decodes
``unscale_latents`` of the UNet's, so both always work in the same latent space.
The arithmetic follows diffusers' own order, so results are bit-identical to it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ModelLoadError

# Names the arithmetic below; stored latents (the trainer's cache) are keyed by it, so a
# change here must give a new tag. v1 subtracted shift_factor only and ignored
# latents_mean/std; v2 reads all three styles.
LATENT_CONVENTION = "latents-v2"


def scale_latents(raw: torch.Tensor, vae_config: Any) -> torch.Tensor:
    """The VAE's posterior latents (``..., C, H, W``) in the space the UNet is trained on."""
    offset, std = _offset_and_std(vae_config, raw)
    latents = raw if offset is None else raw - offset
    latents = latents * vae_config.scaling_factor
    return latents if std is None else latents / std


def unscale_latents(latents: torch.Tensor, vae_config: Any) -> torch.Tensor:
    """The inverse of ``scale_latents``: the UNet's latents as the VAE's decoder takes them."""
    offset, std = _offset_and_std(vae_config, latents)
    raw = latents if std is None else latents * std
    raw = raw / vae_config.scaling_factor
    return raw if offset is None else raw + offset


def _offset_and_std(
    vae_config: Any, like: torch.Tensor
) -> tuple[torch.Tensor | float | None, torch.Tensor | None]:
    """What is subtracted before scaling (per-channel mean or a scalar shift) and divided after."""
    mean = getattr(vae_config, "latents_mean", None)
    std = getattr(vae_config, "latents_std", None)
    shift = getattr(vae_config, "shift_factor", None)
    if (mean is None) != (std is None):
        raise ModelLoadError("the VAE config sets only one of latents_mean and latents_std")
    if mean is not None and shift is not None:
        raise ModelLoadError("the VAE config sets both latents_mean/std and shift_factor")
    if mean is not None:
        return _per_channel(mean, like), _per_channel(std, like)
    return shift, None


def _per_channel(values: Any, like: torch.Tensor) -> torch.Tensor:
    # (C, 1, 1) broadcasts over a (C, H, W) latent and a (B, C, H, W) batch alike.
    return torch.tensor(values).view(-1, 1, 1).to(like)
