"""The full-size SDXL base architecture with random weights: speed and memory at true size, offline.

Built from ``sdxl-architecture.json`` (copied here from the shared reference so it
travels with the repository): each model is constructed on the meta device (no
memory, no init cost), cast, materialized with ``to_empty`` on the target device
and filled with random normal values, never zeros (zeros run faster than real
data and hide bugs). The tokenizer is a CLIP BPE tokenizer made locally
(``nano_banana.model.tiny``) with its vocabulary padded to CLIP's 49,408 entries.

    python benchmarks/sdxl_random.py --check --device cpu --size 64

builds every component, checks the UNet's parameter count (2,567,463,684) and
runs the text encoders, one UNet step and a VAE decode at a tiny size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

ARCHITECTURE = benchlib.HERE / "sdxl-architecture.json"
UNET_PARAMS = 2_567_463_684
CLIP_VOCAB = 49408  # BOS = 49406, EOS = 49407, as in CLIP's own vocabulary


def architecture() -> dict:
    return json.loads(ARCHITECTURE.read_text(encoding="utf-8"))


def write_padded_tokenizer(out_dir: Path):
    """Our byte-level CLIP BPE tokenizer, padded to CLIP's vocabulary size and special ids."""
    from transformers import CLIPTokenizer

    from nano_banana.model.tiny import BOS, DEFAULT_WORDS, EOS, write_tokenizer_files

    vocab_path, merges_path = write_tokenizer_files(DEFAULT_WORDS, out_dir)
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in (BOS, EOS)]
    tokens += [f"<unused_{i}>" for i in range(CLIP_VOCAB - 2 - len(tokens))]
    tokens += [BOS, EOS]
    vocab_path.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    return CLIPTokenizer(str(vocab_path), str(merges_path), model_max_length=77, pad_token=EOS)


def random_init_(module, seed: int) -> None:
    """Normal values everywhere: weights N(0, 1/fan_in), scales N(1, 0.02), biases N(0, 0.02)."""
    import torch

    generator = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim >= 2:
                fan_in = param[0].numel()
                param.normal_(0.0, fan_in**-0.5, generator=generator)
            elif name.endswith("weight"):
                param.normal_(1.0, 0.02, generator=generator)
            else:
                param.normal_(0.0, 0.02, generator=generator)


def materialize(module, device: str, dtype, seed: int):
    """Meta-built ``module`` -> real, random, on ``device`` in ``dtype``."""
    import torch

    module = module.to(dtype).to_empty(device=device)
    random_init_(module, seed)
    for name, buffer in module.named_buffers():  # CLIP's position_ids: the only buffers
        if name.endswith("position_ids"):
            buffer.copy_(torch.arange(buffer.shape[-1], device=device).expand_as(buffer))
    return module.eval()


def build_components(device: str, dtype, work: Path, seed: int = 0) -> dict:
    """Every SDXL component, full size, random; nothing downloaded."""
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    arch = architecture()
    tokenizer = write_padded_tokenizer(work / "tokenizer-src")
    ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.device("meta"):
        unet = UNet2DConditionModel(**arch["unet_UNet2DConditionModel"])
        vae = AutoencoderKL(**arch["vae_AutoencoderKL"])
        te1 = CLIPTextModel(CLIPTextConfig(**arch["text_encoder_CLIPTextModel"], **ids))
        te2 = CLIPTextModelWithProjection(
            CLIPTextConfig(**arch["text_encoder_2_CLIPTextModelWithProjection"], **ids)
        )
    return {
        "unet": materialize(unet, device, dtype, seed),
        "vae": materialize(vae, device, dtype, seed + 1),
        "text_encoder": materialize(te1, device, dtype, seed + 2),
        "text_encoder_2": materialize(te2, device, dtype, seed + 3),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer,
        "scheduler": EulerAncestralDiscreteScheduler(
            **arch["scheduler_EulerAncestralDiscreteScheduler"]
        ),
    }


def ensure_sdxl_random(folder: Path, device: str) -> benchlib.Models:
    """Save the random SDXL (fp16 safetensors) and two rank-16 LoRAs once; reuse them after."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    lora_a, lora_b = (
        folder.parent / "sdxl_lora_a.safetensors",
        folder.parent / "sdxl_lora_b.safetensors",
    )
    if not (folder / "model_index.json").is_file() or not lora_b.is_file():
        started = time.perf_counter()
        parts = build_components(device, torch.float16, folder.parent)
        pipe = StableDiffusionXLPipeline(**parts)
        pipe.save_pretrained(folder, safe_serialization=True)
        for path, seed in ((lora_a, 1), (lora_b, 2)):
            benchlib.add_random_lora(pipe.unet, rank=16, seed=seed)
            benchlib.save_unet_lora(pipe.unet, path)
            pipe.unet.delete_adapters("default")
        del pipe, parts
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        print(
            f"built and saved the random SDXL in {time.perf_counter() - started:.1f} s", flush=True
        )
    return benchlib.Models(
        str(folder), str(lora_a), str(lora_b), "SDXL architecture, random weights"
    )


def check(device: str, size: int, work: Path) -> None:
    """Build everything at full size and run it once at a tiny ``size`` (not 1024 px)."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    dtype = torch.bfloat16 if device == "cpu" else torch.float16
    started = time.perf_counter()
    parts = build_components(device, dtype, work)
    counts = {
        k: sum(p.numel() for p in v.parameters())
        for k, v in parts.items()
        if hasattr(v, "parameters")
    }
    print(f"built in {time.perf_counter() - started:.1f} s; parameters: {counts}")
    assert counts["unet"] == UNET_PARAMS, (
        f"UNet has {counts['unet']:,} parameters, want {UNET_PARAMS:,}"
    )
    zero = [
        k
        for k, v in parts.items()
        if hasattr(v, "parameters") and any(bool((p == 0).all()) for p in v.parameters())
    ]
    assert not zero, f"all-zero tensors in {zero}"
    pipe = StableDiffusionXLPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    started = time.perf_counter()
    with torch.inference_mode():
        latents = pipe(
            "disassemble clothes, knolling, a watch",
            num_inference_steps=1,
            guidance_scale=7.5,
            height=size,
            width=size,
            output_type="latent",
            generator=torch.Generator("cpu").manual_seed(0),
        ).images
        pixels = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    print(
        f"1 step (CFG, batch 2) + decode at {size}px: {time.perf_counter() - started:.1f} s; "
        f"latents {tuple(latents.shape)} finite={bool(torch.isfinite(latents).all())}, "
        f"pixels {tuple(pixels.shape)} finite={bool(torch.isfinite(pixels).all())}, "
        f"latent std {latents.float().std():.3f}"
    )
    print(
        f"tokenizer vocabulary {len(pipe.tokenizer)}, BOS {pipe.tokenizer.bos_token_id}, "
        f"EOS {pipe.tokenizer.eos_token_id}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="build and run once at --size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--work", default=str(benchlib.DEFAULT_WORK))
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check:
        check(args.device, args.size, Path(args.work))
    else:
        print(ensure_sdxl_random(Path(args.work) / "sdxl-random", args.device))


if __name__ == "__main__":
    main()
