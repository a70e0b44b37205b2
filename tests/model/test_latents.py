"""The one latent convention: scale/unscale invert each other in every VAE style, and every
encoder (trainer cache, demo build, preview fit) writes the space the engine decodes from."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nano_banana.errors import ModelLoadError
from nano_banana.model.latents import scale_latents, unscale_latents

MEAN = [0.4, -0.6, 0.25, -0.1]
STD = [2.5, 0.5, 1.5, 0.8]
M, S = torch.tensor(MEAN).view(1, 4, 1, 1), torch.tensor(STD).view(1, 4, 1, 1)
DEMO_SCALE = 1.6586023569107056  # the shipped demo VAE's scaling_factor

# style -> (VAE config, the scaled latents by diffusers' own formula, its inverse)
STYLES = {
    "sdxl": (
        SimpleNamespace(scaling_factor=0.13025),
        lambda z: z * 0.13025,
        lambda x: x / 0.13025,
    ),
    "per-channel mean/std": (
        SimpleNamespace(scaling_factor=0.5, latents_mean=MEAN, latents_std=STD),
        lambda z: (z - M) * 0.5 / S,
        lambda x: x * S / 0.5 + M,
    ),
    "shift (SD3/Flux)": (
        SimpleNamespace(scaling_factor=1.5305, shift_factor=0.0609),
        lambda z: (z - 0.0609) * 1.5305,
        lambda x: x / 1.5305 + 0.0609,
    ),
    "the demo VAE (shift None, mean None)": (
        SimpleNamespace(
            scaling_factor=DEMO_SCALE, shift_factor=None, latents_mean=None, latents_std=None
        ),
        lambda z: z * DEMO_SCALE,
        lambda x: x / DEMO_SCALE,
    ),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_scale_is_diffusers_formula_bit_for_bit_and_unscale_inverts_it(style):
    config, scaled, unscaled = STYLES[style]
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.equal(scale_latents(z, config), scaled(z))
    assert torch.equal(unscale_latents(z, config), unscaled(z))
    assert torch.allclose(unscale_latents(scale_latents(z, config), config), z, atol=1e-5)
    # one latent (C, H, W), as the trainer's cache holds them, takes the same path
    assert torch.equal(scale_latents(z[0], config), scaled(z)[0])


def test_the_old_cache_arithmetic_gives_the_same_bits_when_there_is_no_shift():
    """The trainer subtracted ``shift or 0.0`` before scaling: ``z - 0.0`` is exactly ``z``."""
    config = STYLES["the demo VAE (shift None, mean None)"][0]
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    z[0, 0, 0, :2] = torch.tensor([-0.0, 0.0])
    assert torch.equal(scale_latents(z, config), (z - 0.0) * config.scaling_factor)


@pytest.mark.parametrize(
    "config",
    [
        SimpleNamespace(scaling_factor=1.0, latents_mean=MEAN),
        SimpleNamespace(scaling_factor=1.0, latents_std=STD),
        SimpleNamespace(scaling_factor=1.0, latents_mean=MEAN, latents_std=STD, shift_factor=0.1),
    ],
    ids=["mean without std", "std without mean", "mean/std and shift"],
)
def test_a_half_or_doubly_normalised_config_is_refused(config):
    with pytest.raises(ModelLoadError, match="VAE config sets"):
        scale_latents(torch.zeros(1, 4, 2, 2), config)


# --- training and the engine share one latent space ----------------------------------------


def _training_cache(vae, images: np.ndarray) -> torch.Tensor:
    from nano_banana.demo.build import to_tensor
    from nano_banana.training.cache import encode_latents

    return encode_latents(to_tensor(images), vae)


def _demo_build(vae, images: np.ndarray) -> torch.Tensor:
    from nano_banana.demo.build import encode_latents

    return encode_latents(vae, images)


def _preview_fit(vae, images: np.ndarray) -> torch.Tensor:
    from nano_banana.generate.preview import _encode

    return _encode(vae, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)


ENCODERS = [_training_cache, _demo_build, _preview_fit]


@pytest.fixture(scope="module")
def normalised_engine(tiny_sdxl_dir):
    """An engine whose VAE normalises latents per channel (SDXL-style latents_mean/std)."""
    from nano_banana.generate.engine import Engine

    engine = Engine.load(str(tiny_sdxl_dir), device="cpu")
    engine.pipe.vae.register_to_config(latents_mean=MEAN, latents_std=STD)
    return engine


def _images() -> np.ndarray:
    ramp = np.linspace(0, 255, 64, dtype=np.float32)
    rgb = np.stack([ramp[None, :].repeat(64, 0), ramp[:, None].repeat(64, 1), 255 - ramp[None, :].repeat(64, 0)], -1)  # fmt: skip
    return rgb.round().astype(np.uint8)[None]


@pytest.mark.parametrize("encode", ENCODERS, ids=[e.__name__.strip("_") for e in ENCODERS])
def test_encoded_latents_decode_through_the_engine_to_the_vae_reconstruction(
    normalised_engine, encode
):
    """A VAE with latents_mean must not train in one latent space and decode in another."""
    from nano_banana.demo.build import encode_means, to_tensor

    vae = normalised_engine.pipe.vae
    images = _images()
    with torch.no_grad():
        raw = encode_means(vae, to_tensor(images))
        direct = vae.decode(raw).sample
    expected = normalised_engine.pipe.image_processor.postprocess(direct, output_type="pil")[0]
    expected = np.asarray(expected, dtype=np.int16)

    got = np.asarray(normalised_engine.decode(encode(vae, images)), dtype=np.int16)
    assert np.abs(got - expected).max() <= 1

    # the test can see the bug: latents scaled as if there were no mean/std decode elsewhere
    wrong = normalised_engine.decode(raw * vae.config.scaling_factor)
    assert np.abs(np.asarray(wrong, dtype=np.int16) - expected).mean() > 2
