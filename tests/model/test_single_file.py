"""Single-file checkpoints offline: the shipped SDXL configs, --base-config, and CLIP's vocabulary.

The tiny model is written as an original-layout (SGM/LDM) single file, the layout
A1111 and ComfyUI checkpoints have, by ``single_file_helpers.save_original_layout``
(conftest's ``tiny_sdxl_file``). Every test runs with HF_HUB_OFFLINE=1 (conftest).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nano_banana.errors import ModelLoadError
from nano_banana.generate.engine import Engine
from nano_banana.model import load as load_module
from nano_banana.model.load import SDXL_CONFIG_DIR, BaseSpec, load_base
from nano_banana.model.tiny import TinySDXLConfig, write_tokenizer_files
from nano_banana.settings import GenerationRequest
from single_file_helpers import stand_in_shipped_configs

REQUEST = GenerationRequest(prompt="a watch", preset="none", steps=2, seed=4)
# Parameter counts of SDXL 1.0 base's components (its published model card sizes)
SDXL_PARAMETERS = {
    "unet": 2_567_463_684,
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "text_encoder_2": 694_659_840,
}


@pytest.fixture
def checkpoint(tiny_sdxl_file) -> Path:
    """The tiny model as one original-layout .safetensors file."""
    return tiny_sdxl_file


@pytest.fixture(scope="module")
def folder_image(tiny_sdxl_dir) -> np.ndarray:
    return np.asarray(Engine.load(str(tiny_sdxl_dir), device="cpu").generate(REQUEST).image)


def test_offline_here():
    assert os.environ["HF_HUB_OFFLINE"] == "1"


# --- the shipped configs ---------------------------------------------------------------


def test_the_shipped_configs_build_sdxl():
    """Built without weights (meta tensors), each component has SDXL's exact size."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = str(SDXL_CONFIG_DIR)
    with init_empty_weights():
        models = {
            "unet": UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(folder, subfolder="unet")
            ),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae")),
            "text_encoder": CLIPTextModel(
                CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder")
            ),
            "text_encoder_2": CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2")
            ),
        }
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert sizes == SDXL_PARAMETERS
    assert models["unet"].config.addition_embed_type == "text_time"
    assert models["vae"].config.scaling_factor == 0.13025
    assert (
        StableDiffusionXLPipeline.load_config(folder)["_class_name"] == "StableDiffusionXLPipeline"
    )


def test_the_shipped_tokenizer_settings_are_sdxls(tmp_path):
    """With a CLIP vocabulary beside them (the tiny one here), both tokenizers load; the second
    pads with "!", as SDXL's does."""
    from transformers import CLIPTokenizer

    pads = {}
    for name in ("tokenizer", "tokenizer_2"):
        shutil.copytree(SDXL_CONFIG_DIR / name, tmp_path / name)
        write_tokenizer_files(TinySDXLConfig().words, tmp_path / name)
        tokenizer = CLIPTokenizer.from_pretrained(tmp_path, subfolder=name)
        assert tokenizer.model_max_length == 77
        pads[name] = tokenizer.pad_token
    assert pads == {"tokenizer": "<|endoftext|>", "tokenizer_2": "!"}


# --- loading a single file ----------------------------------------------------------------


def test_base_config_loads_a_single_file_offline(checkpoint, tiny_sdxl_dir, folder_image):
    engine = Engine.load(str(checkpoint), device="cpu", base_config=str(tiny_sdxl_dir))
    result = engine.generate(REQUEST)
    assert np.array_equal(np.asarray(result.image), folder_image)  # the same weights, converted
    assert result.record.base_model == "tiny" and len(result.record.base_model_hash) == 10


def test_without_base_config_the_shipped_configs_are_completed_with_clips_vocabulary(
    checkpoint, tiny_sdxl_dir, folder_image, tmp_path, monkeypatch
):
    """The default path, with the tiny model's configs standing in for the shipped SDXL ones
    and a folder standing in for the Hugging Face cache."""
    stand_in_shipped_configs(tiny_sdxl_dir, tmp_path, monkeypatch)
    engine = Engine.load(str(checkpoint), device="cpu")
    assert np.array_equal(np.asarray(engine.generate(REQUEST).image), folder_image)


def test_without_the_vocabulary_offline_the_error_says_to_pass_base_config(checkpoint, monkeypatch):
    monkeypatch.setattr(load_module, "CLIP_VOCAB_SOURCES", (("nano-banana-tests/absent", ""),))
    with pytest.raises(ModelLoadError) as info:
        load_base(BaseSpec(str(checkpoint), device="cpu"))
    message = str(info.value)
    assert "CLIP tokenizer files" in message and "--base-config" in message
    assert "\n" not in message


@pytest.mark.parametrize("where", ["folder base", "config folder"])
def test_base_config_is_checked(where, checkpoint, tiny_sdxl_dir, tmp_path):
    if where == "folder base":
        spec, message = BaseSpec(str(tiny_sdxl_dir), config=str(tiny_sdxl_dir)), "not a file"
    else:
        spec, message = BaseSpec(str(checkpoint), config=str(tmp_path)), "no model_index.json"
    with pytest.raises(ModelLoadError, match=message):
        load_base(spec)


def test_the_trainers_dtypes_from_a_single_file(checkpoint, tiny_sdxl_dir):
    """UNet and text encoders in the training dtype, the VAE in fp32, from one file."""
    spec = BaseSpec(
        str(checkpoint),
        device="cpu",
        dtype="bfloat16",
        vae_dtype="float32",
        config=str(tiny_sdxl_dir),
    )
    pipe = load_base(spec).pipe
    encoders = (pipe.text_encoder, pipe.text_encoder_2)
    assert {pipe.unet.dtype, *(e.dtype for e in encoders)} == {torch.bfloat16}
    assert pipe.vae.dtype == torch.float32


def test_a_checkpoint_of_another_family_is_named_before_loading(tmp_path):
    from safetensors.torch import save_file

    sd15 = tmp_path / "sd15.safetensors"
    save_file(
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.ones(2)}, sd15
    )
    with pytest.raises(ModelLoadError, match="is not an SDXL base model"):
        load_base(BaseSpec(str(sd15), device="cpu"))
