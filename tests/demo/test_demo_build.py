"""`nano-banana demo build`: the whole recipe runs end to end (with --quick's few steps)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nano_banana.demo.assets import recorded_timings
from nano_banana.demo.build import BASE_DIR_NAME, BuildConfig, DemoSettings, build_demo


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = build_demo(out, BuildConfig().quick(), work_dir=out / "work", log=lambda _: None)
    return out, result


@pytest.mark.slow  # builds the whole recipe at tiny size
def test_quick_build_writes_a_loadable_base_lora_and_settings(quick_build):
    from nano_banana.demo.assets import recommended_request
    from nano_banana.generate.engine import Engine

    out, result = quick_build
    assert result.base_dir == out / BASE_DIR_NAME and result.lora_path.is_file()
    assert {"train vae", "train base unet", "train lora"} <= set(result.timings)
    engine = Engine.load(str(result.base_dir), loras=[str(result.lora_path)], device="cpu")
    request = recommended_request(result.base_dir)  # the demo.toml written beside it
    assert (request.steps, request.width) == (DemoSettings().steps, DemoSettings().width)
    image = engine.generate(replace(request, prompt="a sneaker", steps=2)).image
    assert image.size == (128, 128)


@pytest.mark.slow
def test_lora_only_rebuild_keeps_the_base_and_its_recorded_times(quick_build):
    out, first = quick_build
    base_weights = sorted((out / BASE_DIR_NAME).rglob("*.safetensors"))
    before = {p: p.read_bytes() for p in base_weights}
    again = build_demo(out, BuildConfig().quick(), work_dir=out / "work", log=lambda _: None,
                       lora_only=True)  # fmt: skip
    assert {p: p.read_bytes() for p in base_weights} == before
    recorded = recorded_timings(again.settings_path)
    assert recorded["train base unet"] == pytest.approx(first.timings["train base unet"], abs=0.1)
    assert "train lora" in recorded


def test_lora_only_needs_a_base(tmp_path):
    from nano_banana.errors import InvalidSettingError

    with pytest.raises(InvalidSettingError, match="no base model"):
        build_demo(tmp_path, BuildConfig().quick(), log=lambda _: None, lora_only=True)


def test_decoder_tuning_changes_the_decoder_and_leaves_the_encoder_alone():
    import torch

    from nano_banana.demo.build import render_images, train_vae, tune_vae_decoder

    config = replace(BuildConfig().quick(), vae_steps=2, vae_decoder_steps=2, vae_batch=2)
    images, _ = render_images(2, 3, ("exploded",), 64)
    vae = train_vae(images, config, log=lambda _: None)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    tune_vae_decoder(vae, images, config, log=lambda _: None)
    after = vae.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"decoder", "post_quant_conv"}  # the encoder and quant_conv kept
    assert not any(p.requires_grad for p in vae.parameters())  # frozen again for the UNet's turn
