"""Latent previews: the least-squares map recovers colours from a VAE's latents, a step's noise
is averaged away, and on the demo model the last steps' previews look like the image."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from image_metrics import psnr
from nano_banana.generate.preview import (
    LatentPreview,
    average_noise,
    fit_preview,
    latent_noise,
    preview_for,
)
from nano_banana.generate.spec import EngineSpec
from nano_banana.model.latents import scale_latents

# A fixed colour mixing, as a trained VAE's latents roughly carry colour (plus a bias).
MIX = torch.tensor([[0.9, -0.3, 0.2], [0.1, 0.8, -0.4], [-0.5, 0.2, 0.9], [0.3, 0.3, 0.3]])


class MixingVAE(torch.nn.Module):
    """Stands in for an AutoencoderKL whose latents are a linear mix of pooled colours."""

    def __init__(self, latents_norm: bool = False):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        config = dict(scaling_factor=0.13025)
        if latents_norm:
            config |= dict(latents_mean=[0.1, -0.2, 0.0, 0.3], latents_std=[2.0, 1.5, 1.0, 0.5])
        self.config = SimpleNamespace(**config)

    def encode(self, x: torch.Tensor):
        pooled = torch.nn.functional.avg_pool2d(x, 8)
        z = torch.einsum("lc,nchw->nlhw", MIX, pooled) + 0.05
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=z))


def encoded(vae, rgb: tuple[float, float, float]) -> torch.Tensor:
    image = torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, 64, 64)
    return scale_latents(vae.encode(image * 2 - 1).latent_dist.mean, vae.config)


@pytest.mark.parametrize("latents_norm", [False, True])
def test_an_encoded_red_image_previews_red(latents_norm):
    vae = MixingVAE(latents_norm)
    preview = fit_preview(vae)
    for colour in [(0.85, 0.1, 0.1), (0.1, 0.7, 0.2), (0.2, 0.3, 0.9)]:
        got = preview.rgb(encoded(vae, colour)).reshape(-1, 3).mean(axis=0)
        assert np.allclose(got, np.array(colour) * 255, atol=3), (colour, got)
    red = preview.rgb(encoded(vae, (0.85, 0.1, 0.1)))
    assert red.dtype == np.uint8 and red.shape == (8, 8, 3)
    assert red[..., 0].min() > 200 and red[..., 1:].max() < 40


def test_preview_image_is_enlarged_and_accepts_batched_latents():
    preview = LatentPreview(weight=torch.zeros(3, 4), bias=torch.tensor([1.0, 0.5, 0.0]))
    image = preview.preview_image(torch.randn(1, 4, 16, 24))
    assert image.mode == "RGB" and image.size == (24 * 16, 16 * 16)
    assert image.getpixel((5, 5)) == (255, 128, 0)
    with pytest.raises(ValueError, match="4 channels"):
        preview.rgb(torch.zeros(1, 3, 8, 8))


def test_nan_latents_still_give_a_picture():
    preview = LatentPreview(weight=torch.eye(3, 4), bias=torch.zeros(3))
    latents = torch.full((1, 4, 8, 8), float("nan"))
    assert preview.rgb(latents).max() == 0


def test_fits_the_tiny_models_own_vae(tiny_sdxl_dir):
    """On a real (random-weight) AutoencoderKL the fit runs, restores nothing, and previews."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_sdxl_dir / "vae")
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    preview = fit_preview(vae)
    assert preview.weight.shape == (3, vae.config.latent_channels)
    assert torch.isfinite(preview.weight).all() and torch.isfinite(preview.bias).all()
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    latents = torch.randn(1, vae.config.latent_channels, 32, 32)
    assert preview.preview_image(latents).size == (256, 256)


def test_the_noise_of_a_step_is_measured_and_averaged_away():
    """A smooth picture under the sampler's noise previews as the picture, not as confetti."""
    vae = MixingVAE()
    vae.config.scaling_factor = 4.0  # latents of about unit spread, as a real model's are
    preview = fit_preview(vae)
    ramp = torch.linspace(0.1, 0.9, 256)
    picture = torch.stack([ramp.view(1, -1).expand(256, 256), ramp.view(-1, 1).expand(256, 256),
                           torch.full((256, 256), 0.4)])[None]  # fmt: skip
    clean = scale_latents(vae.encode(picture * 2 - 1).latent_dist.mean, vae.config)  # 32 x 32
    noisy = clean + 1.5 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    assert latent_noise(noisy[0]) == pytest.approx(1.5, rel=0.15)
    assert latent_noise(clean[0]) < 0.05  # a smooth picture has no fine diagonal detail
    assert torch.equal(average_noise(clean[0]), clean[0])  # a finished latent is left alone

    target = np.asarray(preview.preview_image(clean), dtype=np.float64)
    shown = np.asarray(preview.preview_image(noisy), dtype=np.float64)
    pixelwise = np.asarray(
        Image.fromarray(preview.rgb(noisy)).resize(shown.shape[1::-1], Image.BILINEAR),
        dtype=np.float64,
    )
    assert psnr(shown, target) > psnr(pixelwise, target) + 6


def previews_and_image(engine, preview, request) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The preview shown at every step (at the image's size) and the finished image."""
    latents: dict[int, torch.Tensor] = {}
    result = engine.generate(
        request, progress=lambda event: latents.__setitem__(event.step, event.latents.clone())
    )
    shown = {
        step: np.asarray(
            preview.preview_image(z).resize(result.image.size, Image.BILINEAR), dtype=np.float64
        )
        for step, z in latents.items()
    }
    return shown, np.asarray(result.image, dtype=np.float64)


def test_the_demo_models_preview_looks_like_its_image(demo_engine):
    """On the shipped demo model, the previews of the last quarter of the steps look like the
    finished image (the pixel-by-pixel projection scored 11 dB at mid-run: neon noise)."""
    preview = fit_preview(demo_engine.pipe.vae)
    defaults = EngineSpec().request_defaults()
    for seed, prompt in ((3, "a mechanical watch"), (4, "a professional camera")):
        request = replace(defaults, prompt=prompt, preset="knolling", seed=seed)
        shown, final = previews_and_image(demo_engine, preview, request)
        total = max(shown)
        late = [psnr(shown[step], final) for step in range(total * 3 // 4, total + 1)]
        assert min(late) > 18, (prompt, late)
        assert psnr(shown[total // 2], final) > 14, prompt
        colour_error = np.abs(shown[total].mean(axis=(0, 1)) - final.mean(axis=(0, 1)))
        assert colour_error.max() < 15, (prompt, colour_error)


def test_one_fit_per_vae():
    vae, other = MixingVAE(), MixingVAE()
    assert preview_for(vae) is preview_for(vae)
    assert preview_for(other) is not preview_for(vae)
