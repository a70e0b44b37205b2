"""Writing the trained LoRA: whole or absent, its working folder named like every temp file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
from peft import LoraConfig

from nano_banana.atomic import is_temp_name
from nano_banana.training.export import Adapters, save_lora

TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@pytest.fixture(scope="module")
def adapters(tiny_sdxl_dir) -> Adapters:
    unet = UNet2DConditionModel.from_pretrained(tiny_sdxl_dir / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4.0, target_modules=list(TARGETS)))
    return Adapters(unet, (), 4, 4.0, TARGETS, ())


def test_the_working_folder_is_a_recognisable_temp_and_is_removed(tmp_path, adapters, monkeypatch):
    real = StableDiffusionXLPipeline.save_lora_weights
    folders = []

    def spy(folder, **kwargs):
        folders.append(Path(folder))
        return real(folder, **kwargs)

    monkeypatch.setattr(StableDiffusionXLPipeline, "save_lora_weights", spy)
    path = save_lora(adapters, tmp_path / "mine.safetensors", {"nano_banana.trigger": "t"})
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["mine.safetensors"]
    (folder,) = folders
    assert folder.parent == tmp_path and is_temp_name(folder.name)  # a crash's leftover is known


def test_the_kohya_export_follows_the_trained_unet(tmp_path, adapters, tiny_sdxl_dir):
    """``train --export kohya``: SGM block names numbered by the trained UNet's own config,
    kohya's metadata with the run's name, trigger words counted per image, and the AutoV3 hash."""
    from safetensors import safe_open

    from nano_banana.lora.hashes import file_hashes
    from nano_banana.training.export import export, lora_metadata
    from train_fixtures import tiny_config

    config = tiny_config(tiny_sdxl_dir, tmp_path / "data", tmp_path / "out", export=("kohya",))
    config = config.validated()
    meta = lora_metadata(config, 8, {"images": 6}, 0.1)
    lora = save_lora(adapters, config.output.lora_path, meta)

    (path,) = export(config, lora, 8, adapters.unet.config).values()
    assert path.name == f"{config.output.lora_name}.kohya.safetensors"
    with safe_open(str(path), framework="pt") as f:
        names, file_meta = set(f.keys()), f.metadata()
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q.alpha" in names
    assert "lora_unet_middle_block_1_transformer_blocks_0_attn2_to_k.lora_down.weight" in names
    assert not any("down_blocks" in n or "up_blocks" in n or "mid_block" in n for n in names)
    assert file_meta["ss_output_name"] == config.output.lora_name
    assert file_meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert json.loads(file_meta["ss_tag_frequency"]) == {
        config.output.lora_name: {"knolling": 6, "flat lay": 6}
    }
    assert file_meta["sshs_model_hash"] == file_hashes(path).data_sha256


# --- text-encoder keys, spelled as diffusers spells them -----------------------------------


@pytest.fixture(scope="module")
def text_lora(tiny_sdxl_dir, tmp_path_factory) -> Path:
    """A LoRA on the UNet and both text encoders, written by save_lora."""
    import torch

    from nano_banana.training.models import TEXT_TARGETS, add_text_encoder_adapter

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_dir, use_safetensors=True)
    torch.manual_seed(3)
    config = dict(r=4, lora_alpha=4.0, init_lora_weights=False)  # non-zero B: a visible effect
    pipe.unet.add_adapter(LoraConfig(target_modules=list(TARGETS), **config))
    for encoder in (pipe.text_encoder, pipe.text_encoder_2):
        add_text_encoder_adapter(encoder, LoraConfig(target_modules=list(TEXT_TARGETS), **config))
    encoders = (pipe.text_encoder, pipe.text_encoder_2)
    adapters = Adapters(pipe.unet, encoders, 4, 4.0, TARGETS, TEXT_TARGETS)
    return save_lora(adapters, tmp_path_factory.mktemp("te") / "te.safetensors", {})


def respelled(src: Path, out: Path, component: str) -> Path:
    """The file with ``component``'s keys lacking ``text_model.`` (our older spelling)."""
    from safetensors.torch import load_file, save_file

    prefix = f"{component}.text_model."
    tensors = {
        (f"{component}.{k.removeprefix(prefix)}" if k.startswith(prefix) else k): t
        for k, t in load_file(src).items()
    }
    save_file(tensors, out)
    return out


def test_text_encoder_keys_are_written_as_diffusers_writes_them(text_lora):
    from safetensors import safe_open

    with safe_open(str(text_lora), framework="pt") as f:
        names = list(f.keys())
    for component in ("text_encoder", "text_encoder_2"):
        keys = [n for n in names if n.startswith(f"{component}.")]
        assert keys and all(k.startswith(f"{component}.text_model.encoder.layers.") for k in keys)


@pytest.mark.parametrize("older", ["text_encoder", "text_encoder_2"])
def test_both_spellings_read_and_act_alike(text_lora, tiny_sdxl_dir, tmp_path, older):
    """Our older files (first encoder without ``text_model.``) and files missing it for an encoder
    that has the level (the second, in transformers 5) load with the same effect."""
    import numpy as np

    from nano_banana.generate.engine import Engine
    from nano_banana.settings import GenerationRequest

    def image(path: Path, scale: float):
        engine = Engine.load(str(tiny_sdxl_dir), device="cpu", loras=[str(path)])
        request = GenerationRequest(
            prompt="a watch", preset="none", steps=2, seed=1, lora_scale=scale
        )
        encoders = (engine.pipe.text_encoder, engine.pipe.text_encoder_2)
        assert all("te" in e.peft_config for e in encoders)  # both encoders took the LoRA
        return np.asarray(engine.generate(request).image, dtype=np.int16)

    other = respelled(text_lora, tmp_path / "te.safetensors", older)
    assert not np.array_equal(image(text_lora, 1.0), image(text_lora, 0.0))
    assert np.array_equal(image(other, 1.0), image(text_lora, 1.0))
