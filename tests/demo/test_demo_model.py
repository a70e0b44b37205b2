"""The shipped demo model: it loads offline, generates at its defaults, and is the CLI's default."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nano_banana.cli import main
from nano_banana.demo.assets import demo_base_dir, demo_lora_path, demo_settings
from nano_banana.demo.build import BASE_DIR_NAME, DEMO_MODEL, DemoSettings

pytestmark = pytest.mark.skipif(demo_base_dir() is None, reason="demo assets not built")


@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_assets_fit_the_size_budget():
    files = [p for p in demo_base_dir().parent.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    assert demo_lora_path().is_file()


def test_shipped_assets_were_built_with_the_build_defaults():
    """`nano-banana demo build` with no options reproduces what ships: demo.toml records the
    build settings the assets came from, and they must be today's defaults."""
    import json
    from dataclasses import asdict

    from nano_banana.demo.assets import demo_dir, demo_toml_table
    from nano_banana.demo.build import BuildConfig

    defaults = json.loads(json.dumps(asdict(BuildConfig())))  # TOML has lists, not tuples
    assert demo_toml_table(demo_dir() / "demo.toml", "build") == defaults


@pytest.mark.parametrize("view", ["exploded", "knolling"])
def test_the_shipped_autoencoder_keeps_white_backdrops_white(view):
    """Round-tripped through the VAE, a world render's backdrop comes back as it went in.

    A VAE trained only on crops once turned the backdrop grey away from the parts, leaving
    a white halo round them that the analyser read as one big part; about half of each
    exploded view's backdrop came back more than 20 levels off. The whole-image decoder
    pass (``tune_vae_decoder``) brings that under 1%.
    """
    import numpy as np
    import torch
    from diffusers import AutoencoderKL

    from nano_banana.demo.build import reconstruct, render_images

    vae = AutoencoderKL.from_pretrained(demo_base_dir(), subfolder="vae", torch_dtype=torch.float32)
    images, _ = render_images(6, 5, (view,), DEMO_MODEL.sample_size)
    pixels = reconstruct(vae, images).astype(np.int16)
    backdrop = (images == images[:, :1, :1]).all(-1)  # the renders' backdrops are flat
    off = np.abs(pixels - images).max(-1) > 20
    assert [float(off[i][backdrop[i]].mean()) < 0.05 for i in range(len(images))] == [True] * 6


def test_demo_settings_are_the_native_size():
    settings = demo_settings()
    assert isinstance(settings, DemoSettings)
    assert (settings.width, settings.height) == (DEMO_MODEL.sample_size,) * 2 == (128, 128)


def test_demo_model_loads_offline_in_fp32_and_generates(offline, demo_engine):
    import torch

    from nano_banana.model.load import BaseSpec, load_base
    from nano_banana.settings import GenerationRequest

    # fp16 files on disk, fp32 when loaded on the CPU (the engine may then choose its own speed dtype)
    loaded = load_base(BaseSpec(source=str(demo_base_dir()), device="cpu"))
    assert loaded.pipe.unet.dtype == loaded.pipe.vae.dtype == torch.float32
    assert demo_engine.native_size == (128, 128)
    settings = demo_settings()
    request = GenerationRequest(prompt="a mechanical watch", seed=3, steps=4, cfg=settings.cfg)
    first = demo_engine.generate(request)
    again = demo_engine.generate(request)
    assert first.image.size == (128, 128)
    assert list(first.image.getdata()) == list(again.image.getdata())  # seeded: reproducible
    off = demo_engine.generate(
        GenerationRequest(
            prompt="a mechanical watch", seed=3, steps=4, cfg=settings.cfg, lora_scale=0.0
        )
    )
    assert list(off.image.getdata()) != list(first.image.getdata())  # the LoRA changes the image


def test_every_preset_prompt_fits_the_demo_tokenizer(demo_engine):
    """The tokenizer covers the presets' words: no prompt spills past CLIP's 75 tokens."""
    from nano_banana.settings import GenerationRequest

    for preset in demo_engine.presets:
        plan = demo_engine.plan(GenerationRequest(prompt="a professional camera", preset=preset))
        assert plan.warning() is None, (preset, plan.warning())


def test_generate_without_base_uses_the_demo_offline(offline, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "nano-banana",
            "generate",
            "a mechanical watch",
            "--steps",
            "3",
            "--seed",
            "1",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    out, _ = capsys.readouterr()
    result = json.loads(out)["images"][0]
    assert result["record"]["base_model"] == BASE_DIR_NAME  # the demo folder's display name
    assert Path(result["path"]).is_file() and Path(result["path"]).parent == tmp_path


def test_generate_without_base_starts_from_the_demos_own_settings(
    offline, tmp_path, capsys, monkeypatch
):
    """No --base: the demo's recommended settings (demo.toml), not SDXL's; given options still win."""
    from nano_banana.demo.assets import demo_settings

    monkeypatch.setattr(
        sys,
        "argv",
        ["nano-banana", "generate", "a camera", "--cfg", "6.5", "--out", str(tmp_path), "--json"],
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    request = json.loads(capsys.readouterr()[0])["images"][0]["record"]["request"]
    settings = demo_settings()
    assert request["steps"] == settings.steps and request["lora_scale"] == settings.lora_scale
    assert (request["width"], request["height"]) == (settings.width, settings.height)
    assert request["cfg"] == 6.5


def test_a_rebuilt_demo_elsewhere_uses_the_settings_beside_it(tmp_path):
    """`demo build --out DIR` writes DIR/demo.toml beside DIR/<model>: --base DIR/<model> uses it."""
    from nano_banana.demo.assets import recommended_request
    from nano_banana.settings import GenerationRequest

    model = tmp_path / BASE_DIR_NAME
    model.mkdir()
    (tmp_path / "demo.toml").write_text("[settings]\nsteps = 7\ncfg = 3.5\nwidth = 96\n")
    request = recommended_request(model)
    assert (request.steps, request.cfg, request.width) == (7, 3.5, 96)
    (tmp_path / "demo.toml").unlink()
    assert recommended_request(model) == GenerationRequest()  # any other model: SDXL's defaults
