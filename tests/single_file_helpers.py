"""The tiny model as an original-layout (SGM/LDM) single-file checkpoint, the layout A1111 and
ComfyUI checkpoints have; diffusers ships only the other direction. Shared by the loader's
and the trainer's single-file tests through conftest's ``tiny_sdxl_file``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from nano_banana.lora.sgm import UNetBlocks, sgm_blocks, sgm_module_name
from nano_banana.model import load as load_module
from nano_banana.model.tiny import TinySDXLConfig, write_tokenizer_files

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


def stand_in_shipped_configs(tiny_sdxl_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Make the loader's default single-file path fit the tiny model: its configs stand in for
    the shipped SDXL ones (settings only, no vocabulary, as shipped) and a folder for the
    Hugging Face cache that completes them with CLIP's vocabulary."""
    configs = tmp_path / "configs"
    shutil.copytree(tiny_sdxl_dir, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    for name in ("tokenizer", "tokenizer_2"):
        (configs / name / "tokenizer.json").unlink()
    cache = tmp_path / "cache"
    write_tokenizer_files(TinySDXLConfig().words, cache / "tokenizer")
    monkeypatch.setattr(load_module, "SDXL_CONFIG_DIR", configs)
    monkeypatch.setattr(load_module, "CLIP_VOCAB_SOURCES", ((str(cache), "tokenizer"),))
