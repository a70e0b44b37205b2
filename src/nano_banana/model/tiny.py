"""Build small SDXL-architecture pipelines from configs, with no downloads.

Same classes and wiring as SDXL base (two CLIP text encoders whose hidden sizes
add up to the UNet's cross-attention width, SDXL's text-time conditioning, a KL
VAE, Euler Ancestral), only narrower and shallower. Tests build one with random
weights in a second; the demo model is one of these, trained.

The tokenizer is a real CLIP BPE tokenizer made here: the 256 byte symbols
(alone and word-final) plus merges that spell out a given word list, so those
words are single tokens and any other text still tokenizes byte by byte.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..atomic import write_text

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
DEFAULT_WORDS = [
    "a",
    "an",
    "the",
    "and",
    "with",
    "of",
    "on",
    "in",
    "white",
    "background",
    "knolling",
    "flat",
    "lay",
    "disassemble",
    "disassembled",
    "exploded",
    "view",
    "component",
    "breakdown",
    "parts",
    "laid",
    "out",
    "neatly",
    "top",
    "down",
    "product",
    "photo",
    "watch",
    "camera",
    "speaker",
    "controller",
    "jacket",
    "sneaker",
]


@dataclass(frozen=True)
class TinySDXLConfig:
    """Sizes of a small SDXL-style pipeline. Defaults: the smallest that still exercises every part."""

    text_width_1: int = 32  # CLIP ViT-L in SDXL: 768
    text_width_2: int = 64  # OpenCLIP bigG in SDXL: 1280 (projection too)
    text_layers: int = 2
    text_heads: int = 4
    unet_channels: tuple[int, ...] = (32, 64)
    unet_layers_per_block: int = 1
    unet_head_dim: tuple[int, ...] = (2, 4)
    unet_transformer_layers: tuple[int, ...] = (1, 1)
    time_embed_dim: int = 8  # SDXL: 256 per each of the 6 size/crop numbers
    norm_groups: int = 16
    vae_channels: tuple[int, ...] = (16, 32)  # len n -> image/latent scale 2**(n-1)
    vae_layers_per_block: int = 1
    sample_size: int = 64  # default image side in pixels
    words: tuple[str, ...] = field(default=tuple(DEFAULT_WORDS))

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae_channels) - 1)


# --- tokenizer ------------------------------------------------------------


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table, in byte order."""
    printable = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    symbols, shift = [], 0
    for b in range(256):
        if b in printable:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + shift))
            shift += 1
    return symbols


def write_tokenizer_files(words: tuple[str, ...] | list[str], out_dir: Path) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` whose merges build each word in ``words``."""
    symbols = byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    for word in sorted({w.lower() for w in words if w.isascii() and w.isalpha()}):
        pieces = list(word)
        pieces[-1] += "</w>"
        # Merge left to right; a left-to-right chain is a valid BPE derivation.
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            vocab.append(pieces[0] + pieces[1])
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
    vocab = list(dict.fromkeys(vocab)) + [BOS, EOS]
    merges = list(dict.fromkeys(merges))
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = out_dir / "vocab.json", out_dir / "merges.txt"
    write_text(vocab_path, json.dumps({tok: i for i, tok in enumerate(vocab)}))
    write_text(merges_path, "".join(f"{m}\n" for m in ["#version: 0.2", *merges]))
    return vocab_path, merges_path


def build_tokenizer(words: tuple[str, ...] | list[str], work_dir: Path):
    from transformers import CLIPTokenizer

    vocab, merges = write_tokenizer_files(words, work_dir)
    return CLIPTokenizer(str(vocab), str(merges), model_max_length=77, pad_token=EOS)


# --- components -----------------------------------------------------------


def build_pipeline(config: TinySDXLConfig, work_dir: Path, seed: int = 0):
    """A ``StableDiffusionXLPipeline`` with random weights (fixed by ``seed``)."""
    from diffusers import StableDiffusionXLPipeline

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(config.words, work_dir / "_tokenizer_src")
    te1, te2 = build_text_encoders(config, len(tokenizer), tokenizer)
    return StableDiffusionXLPipeline(
        vae=build_vae(config),
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=build_unet(config),
        scheduler=build_scheduler(),
    )


def build_text_encoders(config: TinySDXLConfig, vocab_size: int, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def text_config(width: int) -> CLIPTextConfig:
        return CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=width,
            intermediate_size=width * 2,
            num_hidden_layers=config.text_layers,
            num_attention_heads=config.text_heads,
            max_position_embeddings=77,
            projection_dim=width,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )

    return (
        CLIPTextModel(text_config(config.text_width_1)),
        CLIPTextModelWithProjection(text_config(config.text_width_2)),
    )


def build_unet(config: TinySDXLConfig):
    from diffusers import UNet2DConditionModel

    n = len(config.unet_channels)
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1)
    up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=config.sample_size // config.vae_scale,
        in_channels=4,
        out_channels=4,
        block_out_channels=config.unet_channels,
        layers_per_block=config.unet_layers_per_block,
        down_block_types=down,
        up_block_types=up,
        attention_head_dim=config.unet_head_dim,
        transformer_layers_per_block=config.unet_transformer_layers,
        cross_attention_dim=config.text_width_1 + config.text_width_2,
        addition_embed_type="text_time",
        addition_time_embed_dim=config.time_embed_dim,
        # pooled text (encoder 2's projection) + 6 size/crop numbers, as in SDXL
        projection_class_embeddings_input_dim=config.text_width_2 + 6 * config.time_embed_dim,
        use_linear_projection=True,
        norm_num_groups=config.norm_groups,
    )


def build_vae(config: TinySDXLConfig):
    from diffusers import AutoencoderKL

    n = len(config.vae_channels)
    return AutoencoderKL(
        block_out_channels=config.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=config.vae_layers_per_block,
        latent_channels=4,
        norm_num_groups=config.norm_groups,
        sample_size=config.sample_size,
        scaling_factor=0.13025,  # SDXL's; keeps latents at unit variance scale
    )


def build_scheduler():
    from diffusers import EulerAncestralDiscreteScheduler

    # SDXL base's scheduler settings (sdxl-architecture.json)
    return EulerAncestralDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )


def save_tiny_pipeline(config: TinySDXLConfig, out_dir: Path, seed: int = 0) -> Path:
    """Build a random tiny pipeline and save it as a diffusers folder (safetensors only)."""
    out_dir = Path(out_dir)
    pipe = build_pipeline(config, out_dir.parent / f".{out_dir.name}-work", seed=seed)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    write_text(out_dir / "nano_banana_tiny.json", json.dumps(asdict(config), indent=1))
    return out_dir
