"""Writing the trained LoRA: whole or absent, its working folder named like every temp file."""

from __future__ import annotations

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
