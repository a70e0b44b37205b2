"""Base model loading: device/dtype choice, VAE override, refusals before any weights are read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nano_banana.errors import ModelLoadError, UnsafeFileError
from nano_banana.generate.engine import Engine
from nano_banana.model.load import BaseSpec, load_base, pick_device, pick_dtype
from nano_banana.settings import GenerationRequest


def test_cpu_is_fp32_and_gpus_default_to_half():
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("mps")) == torch.float16
    assert pick_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown dtype 'fp8'"):
        pick_dtype(torch.device("cpu"), "fp8")


def test_device_auto_and_unknown():
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert pick_device("auto").type == expected
    with pytest.raises(ModelLoadError, match="unknown device 'gpu0'"):
        pick_device("gpu0")


def test_vae_override_is_loaded_and_recorded(tiny_sdxl_dir):
    engine = Engine.load(str(tiny_sdxl_dir), vae=str(tiny_sdxl_dir), device="cpu")
    result = engine.generate(GenerationRequest(prompt="a watch", preset="none", steps=2, seed=1))
    assert result.record.vae == str(tiny_sdxl_dir)
    plain = Engine.load(str(tiny_sdxl_dir), device="cpu").generate(
        GenerationRequest(prompt="a watch", preset="none", steps=2, seed=1)
    )
    assert np.array_equal(np.asarray(result.image), np.asarray(plain.image))  # same VAE weights


def test_sd15_folder_is_named_as_such(tmp_path):
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline"})
    )
    with pytest.raises(
        ModelLoadError, match="holds a StableDiffusionPipeline model; .* needs an SDXL"
    ):
        load_base(BaseSpec(str(tmp_path), device="cpu"))


def test_pickled_weights_inside_a_folder_are_refused(tiny_sdxl_dir, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_sdxl_dir, copy)
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save({"x": torch.zeros(1)}, weights)  # a pickle under a safetensors name
    with pytest.raises(UnsafeFileError, match="pickle"):
        load_base(BaseSpec(str(copy), device="cpu"))


def test_offline_hub_id_fails_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_base(BaseSpec("someone/not-a-cached-model", device="cpu"))
    assert "Hugging Face Hub" in str(info.value) and "\n" not in str(info.value)
