"""Disk caches of VAE latents and text embeddings, so the second run starts fast.

The frozen VAE and text encoders give the same output for the same input every
time, so we compute them once. A latent is keyed by the image file's bytes, its
bucket/crop/flip, the VAE's weights and config, and the latent convention
(``model.latents.LATENT_CONVENTION``); a text embedding by the caption and the
text encoders' weights. Change any of them and the key changes: a stale entry
is never used. Entries are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from ..model.latents import LATENT_CONVENTION, scale_latents
from .data import TrainItem, load_pixels


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


def fingerprint_module(module: torch.nn.Module) -> str:
    """A cheap content fingerprint: config, parameter names/shapes, and a few values of each."""
    digest = hashlib.sha256()
    config = getattr(module, "config", None)
    if config is not None:
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        digest.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, param in module.state_dict().items():
        flat = param.detach().reshape(-1)
        sample = torch.cat([flat[:8], flat[-8:]]).float().cpu()
        digest.update(f"{name}{tuple(param.shape)}".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def _write_atomic(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


def _read(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError):  # a damaged entry is recomputed, not trusted
        return None


# --- latents ----------------------------------------------------------------


@torch.no_grad()
def encode_latents(pixels: torch.Tensor, vae: torch.nn.Module) -> torch.Tensor:
    """Scaled latents of a (B, 3, H, W) batch in [-1, 1]; the VAE runs in its own dtype (fp32)."""
    pixels = pixels.to(device=vae.device, dtype=vae.dtype)
    dist = vae.encode(pixels).latent_dist
    latents = dist.mean  # the mean, not a sample: cached latents stay deterministic
    return scale_latents(latents, vae.config)  # the space the engine decodes from


def cache_latents(
    items: Sequence[TrainItem],
    vae: torch.nn.Module,
    cache_dir: Path,
    flips: Sequence[bool] = (False,),
) -> tuple[dict[tuple[int, bool], torch.Tensor], CacheStats]:
    """Latents of every item (and flip variant), from the cache or computed and stored."""
    vae_id = fingerprint_module(vae)
    out: dict[tuple[int, bool], torch.Tensor] = {}
    stats = CacheStats()
    for index, item in enumerate(items):
        for flipped in flips:
            p = item.placement
            key = _key(
                "latent",
                item.sha256,
                p.resized,
                p.crop_left,
                p.crop_top,
                p.bucket,
                flipped,
                vae_id,
                LATENT_CONVENTION,  # latents cached under another convention are not reused
            )
            path = cache_dir / "latents" / f"{key}.safetensors"
            cached = _read(path)
            if cached is None:
                stats.misses += 1
                pixels = load_pixels(item.path, item.placement, flipped)[None]
                latent = encode_latents(pixels, vae)[0].float().cpu()
                if not torch.isfinite(latent).all():
                    raise FloatingPointError(f"the VAE gave NaN/Inf latents for {item.path}")
                _write_atomic({"latent": latent}, path)
            else:
                stats.hits += 1
                latent = cached["latent"]
            out[(index, flipped)] = latent
    return out, stats


# --- text -------------------------------------------------------------------


def encode_captions(
    captions: Sequence[str],
    tokenizers: Sequence,
    text_encoders: Sequence[torch.nn.Module],
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's text conditioning: both encoders' penultimate hidden states side by side,
    and the second encoder's pooled projection. Gradients flow if the encoders train."""
    hidden, pooled = [], None
    for tokenizer, encoder in zip(tokenizers, text_encoders, strict=True):
        ids = tokenizer(
            list(captions),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(encoder.device)
        output = encoder(ids, output_hidden_states=True)
        hidden.append(output.hidden_states[-2])
        pooled = output[0]  # the last encoder's projected pooled output
    return torch.cat(hidden, dim=-1), pooled


def cache_text(
    captions: Sequence[str],
    encode: Callable[[Sequence[str]], tuple[torch.Tensor, torch.Tensor]],
    cache_dir: Path,
    encoder_id: str,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], CacheStats]:
    """Text embeddings of each distinct caption, from the cache or computed and stored."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    stats = CacheStats()
    for caption in dict.fromkeys(captions):
        path = cache_dir / "text" / f"{_key('text', caption, encoder_id)}.safetensors"
        cached = _read(path)
        if cached is None:
            stats.misses += 1
            with torch.no_grad():
                embeds, pooled = encode([caption])
            embeds, pooled = embeds[0].float().cpu(), pooled[0].float().cpu()
            _write_atomic({"embeds": embeds, "pooled": pooled}, path)
        else:
            stats.hits += 1
            embeds, pooled = cached["embeds"], cached["pooled"]
        out[caption] = (embeds, pooled)
    return out, stats
