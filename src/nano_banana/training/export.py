"""The trainer's products: the LoRA file, its metadata, the model card, exports, sample grids.

The LoRA is written with diffusers' own ``save_lora_weights`` (PEFT keys, the
adapter's LoraConfig as ``lora_adapter_metadata`` so alpha != rank reloads at the
right strength), then our metadata (trigger words, base model, resolution, steps,
dataset summary, training config) is added and the file is renamed into place.
A file with NaN/Inf weights is never written.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import safe_open

from ..atomic import TEMP_PREFIX, TEMP_SUFFIX, atomic_path, write_text
from ..errors import NanoBananaError
from ..lora.keys import text_model_spelling
from .config import ExportFormat, TrainConfig

RECOMMENDED_SCALE_KEY = "nano_banana.recommended_scale"
ARCHITECTURE = "stable-diffusion-xl-v1-base/lora"  # ModelSpec's name for an SDXL LoRA


class OutputError(NanoBananaError):
    """The trained adapter cannot be written (NaN weights, an unwritable folder)."""


@dataclass(frozen=True)
class Adapters:
    """The models that carry trainable adapters (unwrapped), with their LoRA settings."""

    unet: torch.nn.Module
    text_encoders: tuple[torch.nn.Module, ...]  # empty unless the text encoders train
    rank: int
    alpha: float
    unet_targets: tuple[str, ...]
    text_targets: tuple[str, ...]


def adapter_config_dict(rank: int, alpha: float, targets: tuple[str, ...]) -> dict[str, Any]:
    """The LoraConfig fields diffusers rebuilds the adapter from when loading (``LoraConfig(**d)``)."""
    return {"r": rank, "lora_alpha": alpha, "target_modules": sorted(targets)}


def lora_layers(adapters: Adapters) -> dict[str, Any]:
    """Keyword arguments of ``save_lora_weights``: diffusers-format state dicts plus their configs."""
    from peft.utils import get_peft_model_state_dict

    def layers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        sd = get_peft_model_state_dict(model)
        return {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}

    kwargs: dict[str, Any] = {
        "unet_lora_layers": layers(adapters.unet),
        "unet_lora_adapter_metadata": adapter_config_dict(
            adapters.rank, adapters.alpha, adapters.unet_targets
        ),
    }
    for suffix, encoder in zip(("", "_2"), adapters.text_encoders, strict=False):
        # diffusers' spelling, text_encoder.text_model.encoder...: PEFT's state dict of a
        # flattened CLIPTextModel (transformers >= 5.6) lacks the level (lora.keys)
        kwargs[f"text_encoder{suffix}_lora_layers"] = text_model_spelling(layers(encoder), True)
        kwargs[f"text_encoder{suffix}_lora_adapter_metadata"] = adapter_config_dict(
            adapters.rank, adapters.alpha, adapters.text_targets
        )
    return kwargs


def check_finite(layers: dict[str, Any]) -> None:
    """Refuse to write an adapter with NaN/Inf weights (it would silently ruin every image)."""
    for group, sd in layers.items():
        if not group.endswith("_layers"):
            continue
        for key, tensor in sd.items():
            if not torch.isfinite(tensor).all():
                raise OutputError(
                    f"adapter weight '{key}' holds NaN/Inf values; no LoRA was written"
                )


def lora_metadata(
    config: TrainConfig, steps: int, dataset_summary: dict[str, Any], final_loss: float | None
) -> dict[str, str]:
    """Our descriptive metadata: what the studio, A1111 and people read from the file."""
    from ..lora.load import trigger_words_metadata  # the key our loader reads trigger words from

    trigger = [w.strip() for w in config.dataset.trigger.split(",") if w.strip()]
    meta = {
        **trigger_words_metadata(trigger),
        "nano_banana.trigger": config.dataset.trigger,
        "nano_banana.base_model": config.model.base,
        "nano_banana.resolution": str(config.dataset.resolution),
        "nano_banana.steps": str(steps),
        "nano_banana.rank": str(config.adapter.rank),
        "nano_banana.alpha": str(config.adapter.alpha),
        RECOMMENDED_SCALE_KEY: str(config.output.recommended_scale),
        "nano_banana.dataset": json.dumps(dataset_summary, sort_keys=True),
        # Flat names, as this key has always held them: readers outside this project
        # index it by setting name (TrainConfig.from_dict reads flat and sectioned alike).
        "nano_banana.train_config": json.dumps(
            config.flat_dict(), sort_keys=True, ensure_ascii=False
        ),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": ARCHITECTURE,
        "modelspec.implementation": "diffusers",
        "modelspec.title": config.output.lora_name,
        "modelspec.trigger_phrase": config.dataset.trigger,
        "modelspec.resolution": f"{config.dataset.resolution}x{config.dataset.resolution}",
    }
    if final_loss is not None:
        meta["nano_banana.final_loss"] = f"{final_loss:.6g}"
    return meta


def save_lora(adapters: Adapters, path: Path, metadata: dict[str, str]) -> Path:
    """Write the adapters as ``path`` (diffusers/PEFT format) with ``metadata`` added, atomically."""
    from diffusers import StableDiffusionXLPipeline

    from ..lora.load import write_safetensors_atomic

    layers = lora_layers(adapters)
    check_finite(layers)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # diffusers writes a folder: ours is named like atomic's temp files, so that a crash's
    # leftover is recognisable (``atomic.is_temp_name``).
    with tempfile.TemporaryDirectory(
        dir=path.parent, prefix=f"{TEMP_PREFIX}lora-", suffix=TEMP_SUFFIX
    ) as tmp:
        StableDiffusionXLPipeline.save_lora_weights(tmp, weight_name="lora.safetensors", **layers)
        tensors, file_meta = _read_back(Path(tmp) / "lora.safetensors")
    return write_safetensors_atomic(tensors, path, {**file_meta, **metadata})


def _read_back(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118 (safe_open, not a dict)


def export(
    config: TrainConfig, lora_path: Path, steps: int, unet_config: Any = None
) -> dict[str, Path]:
    """Write the extra formats ``config.output.export`` asks for; returns {format: path}.

    ``unet_config`` is the trained base's ``unet.config``: kohya's SGM block numbers
    follow from it (None: SDXL 1.0's).
    """
    out: dict[str, Path] = {}
    for fmt in config.output.export:
        if fmt == ExportFormat.KOHYA:
            from ..lora.load import export_kohya

            target = lora_path.with_name(f"{lora_path.stem}.kohya.safetensors")
            extra = {
                "ss_output_name": config.output.lora_name,
                "ss_resolution": f"({config.dataset.resolution}, {config.dataset.resolution})",
                "ss_steps": str(steps),
                "ss_learning_rate": str(config.optim.lr),
                "ss_trigger_words": config.dataset.trigger,
            }
            out[fmt.value] = export_kohya(lora_path, target, metadata=extra, unet=unet_config)
    return out


def save_grid(images: list[Image.Image], path: Path, columns: int | None = None) -> Path:
    """Tile images (all the same size) into one PNG, row by row."""
    if not images:
        raise ValueError("no images to tile")
    columns = columns or min(len(images), 4)
    rows = -(-len(images) // columns)
    w, h = images[0].size
    grid = Image.new("RGB", (columns * w, rows * h), "white")
    for i, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((i % columns) * w, (i // columns) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    return path


def write_model_card(
    config: TrainConfig,
    lora_path: Path,
    steps: int,
    dataset_summary: dict[str, Any],
    grid: Path | None,
    final_loss: float | None,
    exported: dict[str, Path],
    validation: list[str] | None = None,
) -> Path:
    """A short README.md beside the LoRA: trigger words, recommended scale, usage, sample grid
    (and the validation section's ``validation`` lines, when the run measured any)."""
    out = lora_path.parent
    lines = [
        f"# {config.output.lora_name}",
        "",
        "A structure LoRA for SDXL that lays objects out as exploded views / knolling flat-lays, "
        "trained with Nano-Banana Studio.",
        "",
        f"- **Trigger words:** `{config.dataset.trigger}`",
        f"- **Recommended scale:** {config.output.recommended_scale} (0.6 looser, 1.0 strict layout)",
        f"- **Base model:** `{config.model.base}`",
        f"- **Rank / alpha:** {config.adapter.rank} / {config.adapter.alpha:g} ({config.adapter.targets.value} layers)",
        f"- **Training:** {steps} steps at {config.dataset.resolution}px, lr {config.optim.lr:g}, "
        f"batch {config.optim.batch_size} x {config.optim.grad_accum}"
        + (f", final loss {final_loss:.4f}" if final_loss is not None else ""),
        f"- **Dataset:** {dataset_summary.get('images', '?')} images, buckets {dataset_summary.get('buckets', {})}",
        "",
        "## Use",
        "",
        "```python",
        "pipe.load_lora_weights(" + repr(lora_path.name) + ', adapter_name="nano_banana")',
        f'image = pipe("{config.dataset.trigger}, a complex mechanical watch",',
        f'             cross_attention_kwargs={{"scale": {config.output.recommended_scale}}}).images[0]',
        "```",
        "",
        f'Studio / CLI: `nano-banana generate "a mechanical watch" --lora {lora_path.name}`',
    ]
    for fmt, path in exported.items():
        lines.append(f"\nAUTOMATIC1111 / ComfyUI ({fmt} format): `{path.name}`")
    if validation:
        lines += ["", "## Validation", "", *validation]
    if grid is not None:
        rel = grid.relative_to(out) if grid.is_relative_to(out) else grid
        lines += ["", "## Samples", "", f"![samples]({rel.as_posix()})"]
    lines += ["", "Training config: `train_config.toml`; loss curve: `loss.png` / `loss.csv`."]
    return write_text(out / "README.md", "\n".join(lines) + "\n")
