"""Single-file checkpoints offline: the shipped SDXL configs, --base-config, and CLIP's vocabulary.

The tiny model is written as an original-layout (SGM/LDM) single file, the layout
A1111 and ComfyUI checkpoints have, by ``save_original_layout`` below; diffusers
ships only the other direction. Every test runs with HF_HUB_OFFLINE=1 (conftest).
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
from nano_banana.lora.sgm import UNetBlocks, sgm_blocks, sgm_module_name
from nano_banana.model import load as load_module
from nano_banana.model.load import SDXL_CONFIG_DIR, BaseSpec, load_base
from nano_banana.model.tiny import TinySDXLConfig, write_tokenizer_files
from nano_banana.settings import GenerationRequest

REQUEST = GenerationRequest(prompt="a watch", preset="none", steps=2, seed=4)
# Parameter counts of SDXL 1.0 base's components (its published model card sizes)
SDXL_PARAMETERS = {
    "unet": 2_567_463_684,
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "text_encoder_2": 694_659_840,
}


# --- an original-layout single file of the tiny model ----------------------------------

VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
OPEN_CLIP = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def unet_tensors(unet) -> dict[str, torch.Tensor]:
    table = sgm_blocks(UNetBlocks.from_config(unet.config))
    out = {}
    for key, t in unet.state_dict().items():
        module, _, param = key.rpartition(".")
        out[f"model.diffusion_model.{sgm_module_name(module, table)}.{param}"] = t
    return out


def vae_name(key: str, levels: int) -> str:
    """An LDM VAE key: ``down.{i}.block.{j}``, ``mid.block_1``, ``mid.attn_1.q``, ``up``
    numbered from the bottom (diffusers numbers its up blocks from the top)."""
    part, _, rest = key.partition(".")
    if part not in ("encoder", "decoder"):
        return key
    rest = rest.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    bits = rest.split(".")
    if bits[0] in ("down_blocks", "up_blocks"):
        group = bits[0].removesuffix("_blocks")
        level = int(bits[1]) if group == "down" else levels - 1 - int(bits[1])
        inner = ".".join(bits[4:])
        if bits[2] == "resnets":
            rest = f"{group}.{level}.block.{bits[3]}.{inner}"
        else:  # downsamplers.0.conv / upsamplers.0.conv
            rest = f"{group}.{level}.{group}sample.{inner}"
    elif bits[0] == "mid_block" and bits[1] == "resnets":
        rest = f"mid.block_{int(bits[2]) + 1}." + ".".join(bits[3:])
    elif bits[0] == "mid_block":
        rest = f"mid.attn_1.{VAE_ATTENTION['.'.join(bits[3:-1])]}.{bits[-1]}"
    return f"{part}.{rest}"


def vae_tensors(vae) -> dict[str, torch.Tensor]:
    levels, out = len(vae.config.block_out_channels), {}
    for key, t in vae.state_dict().items():
        name = vae_name(key, levels)
        if ".attn_1." in name and t.ndim == 2:
            t = t[:, :, None, None]  # LDM's attention projections are 1x1 convolutions
        out[f"first_stage_model.{name}"] = t
    return out


def clip_l_tensors(encoder) -> dict[str, torch.Tensor]:
    prefix = "conditioner.embedders.0.transformer.text_model."
    return {prefix + k.removeprefix("text_model."): t for k, t in encoder.state_dict().items()}


def open_clip_tensors(encoder) -> dict[str, torch.Tensor]:
    """OpenCLIP's layout: fused q/k/v projections, a transposed text projection."""
    prefix = "conditioner.embedders.1.model."
    sd = {k.removeprefix("text_model."): t for k, t in encoder.state_dict().items()}
    out = {
        prefix + "token_embedding.weight": sd.pop("embeddings.token_embedding.weight"),
        prefix + "positional_embedding": sd.pop("embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": sd.pop("final_layer_norm.weight"),
        prefix + "ln_final.bias": sd.pop("final_layer_norm.bias"),
        prefix + "text_projection": sd.pop("text_projection.weight").T.contiguous(),
    }
    for i in range(encoder.config.num_hidden_layers):
        layer, block = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            parts = [sd.pop(f"{layer}self_attn.{x}_proj.{kind}") for x in "qkv"]
            out[f"{block}attn.in_proj_{kind}"] = torch.cat(parts)
        for key in [k for k in sd if k.startswith(layer)]:
            inner = key.removeprefix(layer)
            for ours, theirs in OPEN_CLIP.items():
                inner = inner.replace(ours, theirs)
            out[block + inner] = sd.pop(key)
    return out


def save_original_layout(folder: Path, out: Path) -> Path:
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import save_file

    pipe = StableDiffusionXLPipeline.from_pretrained(folder, use_safetensors=True)
    tensors = {
        **unet_tensors(pipe.unet),
        **vae_tensors(pipe.vae),
        **clip_l_tensors(pipe.text_encoder),
        **open_clip_tensors(pipe.text_encoder_2),
    }
    save_file({k: t.contiguous() for k, t in tensors.items()}, str(out))
    return out


@pytest.fixture(scope="module")
def checkpoint(tiny_sdxl_dir, tmp_path_factory) -> Path:
    return save_original_layout(tiny_sdxl_dir, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


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
    configs = tmp_path / "configs"
    shutil.copytree(tiny_sdxl_dir, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    for name in ("tokenizer", "tokenizer_2"):
        (configs / name / "tokenizer.json").unlink()  # shipped: settings only, no vocabulary
    cache = tmp_path / "cache"
    write_tokenizer_files(TinySDXLConfig().words, cache / "tokenizer")
    monkeypatch.setattr(load_module, "SDXL_CONFIG_DIR", configs)
    monkeypatch.setattr(load_module, "CLIP_VOCAB_SOURCES", ((str(cache), "tokenizer"),))
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
