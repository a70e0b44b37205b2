"""The latent cache: a second run reads what the first wrote, unless what made it changed."""

from __future__ import annotations

import pytest
from diffusers import AutoencoderKL

from nano_banana.training import cache
from nano_banana.training.check import check_dataset
from train_fixtures import make_dataset


@pytest.fixture(scope="module")
def vae(tiny_sdxl_dir):
    return AutoencoderKL.from_pretrained(tiny_sdxl_dir / "vae")


def test_latents_cached_under_another_convention_are_not_reused(tmp_path, vae, monkeypatch):
    items = check_dataset(make_dataset(tmp_path / "data", n=2), resolution=64).usable_items(False)
    folder = tmp_path / "cache"
    first, stats = cache.cache_latents(items, vae, folder)
    assert (stats.hits, stats.misses) == (0, 2)
    again, stats = cache.cache_latents(items, vae, folder)
    assert (stats.hits, stats.misses) == (2, 0)
    assert all((again[k] == first[k]).all() for k in first)
    monkeypatch.setattr(cache, "LATENT_CONVENTION", "latents-v3")  # scale_latents changed
    _, stats = cache.cache_latents(items, vae, folder)
    assert (stats.hits, stats.misses) == (0, 2)
