"""The one typed training configuration: defaults with reasons, validation, TOML/YAML files.

A ``TrainConfig`` is filled from a file (``--config run.toml``) and then from
CLI flags (each flag is derived from a field here, help text included), and
validated before any model is loaded. Every output folder gets a copy
(``train_config.toml``) that loads back into the same config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import InvalidSettingError
from ..settings import check_float_range, check_int_range

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

BUCKET_STEP = (
    64  # SDXL latents are /8 and its UNet halves them twice more; 64 keeps every level whole
)
DEFAULT_TRIGGER = "disassemble, knolling, flat lay, white background"
DEFAULT_SAMPLE_PROMPTS = (
    "a complex mechanical watch",
    "a pair of sneakers",
    "a professional camera",
    "a wireless bluetooth speaker",
)


class Targets(str, Enum):
    """Which UNet layers get adapters."""

    ATTN = "attn"  # q/k/v/out of every attention: the public trainers' default, smallest file
    ATTN_FF = "attn-ff"  # + transformer feed-forward and proj_in/out: more capacity for layout
    ATTN_FF_CONV = "attn-ff-conv"  # + ResNet convolutions (LoCon-style): strongest, largest


class Precision(str, Enum):
    AUTO = "auto"  # bf16 on GPUs that have it, else fp16 on GPU, fp32 on CPU
    NO = "no"  # fp32 everywhere
    FP16 = "fp16"
    BF16 = "bf16"


class Optimizer(str, Enum):
    AUTO = "auto"  # 8-bit AdamW when bitsandbytes and CUDA are present, else AdamW
    ADAMW = "adamw"
    ADAMW_8BIT = "adamw8bit"


class Schedule(str, Enum):
    CONSTANT = "constant"  # after warm-up; what most LoRA recipes use
    COSINE = "cosine"
    LINEAR = "linear"


class ExportFormat(str, Enum):
    KOHYA = "kohya"  # the key format AUTOMATIC1111 and ComfyUI load


def _opt(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field whose help text the CLI shows."""
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Fill it, call ``validated()``, pass it to ``train``."""

    # --- what to train on and where it goes
    data: str = _opt("", "Folder of images with same-name .txt captions, or a metadata.jsonl/.csv.")
    out: str = _opt("", "Output folder; the LoRA is written as OUT/NAME.safetensors.")
    name: str | None = _opt(
        None, "File name of the LoRA (without .safetensors). Default: OUT's name."
    )
    base: str = _opt(
        "stabilityai/stable-diffusion-xl-base-1.0",
        "Base model: a diffusers folder or a Hugging Face repo id (safetensors weights only).",
    )
    vae: str | None = _opt(
        None, "Optional VAE folder/repo (e.g. madebyollin/sdxl-vae-fp16-fix). The VAE runs in fp32."
    )
    trigger: str = _opt(DEFAULT_TRIGGER, "Trigger words put in front of every caption.")
    # --- adapter
    rank: int = _opt(16, "LoRA rank: 16 is the common default for style/layout LoRAs.")
    alpha: float = _opt(16.0, "LoRA alpha; the update is scaled by alpha/rank. Saved in the file.")
    targets: Targets = _opt(Targets.ATTN, "Adapted layers: attn, attn-ff or attn-ff-conv.")
    lora_dropout: float = _opt(0.0, "Dropout on the adapter input; 0 for small datasets is fine.")
    train_text_encoder: bool = _opt(
        False, "Also put adapters on both text encoders (no text cache)."
    )
    text_encoder_lr: float | None = _opt(
        None, "Learning rate of the text-encoder adapters (default: lr/2)."
    )
    # --- optimisation
    lr: float = _opt(1e-4, "Peak learning rate of the UNet adapters (AdamW).")
    warmup_steps: int = _opt(100, "Linear warm-up steps from 0 to lr; avoids early blow-ups.")
    schedule: Schedule = _opt(
        Schedule.CONSTANT, "LR after warm-up: constant, cosine or linear decay."
    )
    max_steps: int = _opt(1500, "Optimizer steps (a style LoRA: 1000-3000 on tens of images).")
    batch_size: int = _opt(1, "Images per step per process (all from one aspect bucket).")
    grad_accum: int = _opt(1, "Micro-batches accumulated per optimizer step.")
    optimizer: Optimizer = _opt(Optimizer.AUTO, "auto, adamw or adamw8bit.")
    weight_decay: float = _opt(1e-2, "AdamW weight decay on the adapters.")
    max_grad_norm: float = _opt(1.0, "Clip the gradient norm to this (0 = no clipping).")
    precision: Precision = _opt(Precision.AUTO, "Mixed precision: auto, no, fp16 or bf16.")
    grad_checkpointing: bool = _opt(
        False, "Recompute activations in backward: much less memory, ~30% slower."
    )
    min_snr_gamma: float = _opt(
        5.0, "Min-SNR-gamma loss weighting (Hang et al. 2023); 0 turns it off."
    )
    noise_offset: float = _opt(
        0.0, "Noise offset (e.g. 0.0357) lets the model learn very bright/dark images."
    )
    ema_decay: float | None = _opt(
        None, "Keep an EMA of the adapter weights with this decay (e.g. 0.999)."
    )
    seed: int = _opt(0, "Seed of everything random: adapter init, batch order, noise, timesteps.")
    # --- data
    resolution: int = _opt(
        1024, "Training area is resolution² (SDXL: 1024). Buckets keep aspect ratios."
    )
    upscale: bool = _opt(False, "Upscale small images to the full area (default: keep their size).")
    flip: bool = _opt(
        False, "Random horizontal flips (off: knolling layouts and text are not symmetric)."
    )
    shuffle_captions: bool = _opt(
        False, "Shuffle comma-separated tags after the trigger words each time."
    )
    caption_dropout: float = _opt(0.0, "Probability of training an image with an empty caption.")
    caption_ext: str = _opt(".txt", "Extension of the caption files next to the images.")
    min_size_fraction: float = _opt(
        0.5, "Images whose area is below (fraction*resolution)² are reported as too small."
    )
    skip_bad: bool = _opt(
        False, "Skip bad images/captions (and list them) instead of refusing to train."
    )
    cache_dir: str | None = _opt(None, "Latent/text-embedding cache. Default: OUT/cache.")
    # --- checkpoints, samples, output
    checkpoint_every: int = _opt(
        250, "Save a resumable checkpoint every N steps (0 = only at the end/Ctrl-C)."
    )
    keep_checkpoints: int = _opt(
        2, "Complete checkpoints to keep; older ones go after a new one is complete."
    )
    resume: str | None = _opt(None, "'latest' or a checkpoint folder to continue from.")
    sample_every: int | None = _opt(
        None, "Render sample images every N steps (default: at each checkpoint; 0 = never)."
    )
    sample_prompts: tuple[str, ...] = _opt(
        DEFAULT_SAMPLE_PROMPTS, "Prompts of the sample grid (trigger added)."
    )
    sample_seed: int = _opt(
        1234, "Seed of the sample images; fixed so grids are comparable over time."
    )
    sample_steps: int = _opt(20, "Denoising steps of the sample images.")
    sample_size: int | None = _opt(None, "Side of the sample images (default: resolution).")
    recommended_scale: float = _opt(
        0.8, "LoRA scale written into the file and model card (the design's 0.8)."
    )
    export: tuple[ExportFormat, ...] = _opt(
        (), "Extra formats to write: kohya (AUTOMATIC1111/ComfyUI)."
    )
    log_every: int = _opt(1, "Write a loss-curve row every N steps.")

    # ------------------------------------------------------------------
    def validated(self) -> TrainConfig:
        """Check every field; return a copy with enums parsed and defaults resolved."""
        cfg = _coerce_enums(self)
        if not cfg.data:
            raise InvalidSettingError("no training data given: pass --data FOLDER")
        if not cfg.out:
            raise InvalidSettingError("no output folder given: pass --out FOLDER")
        if cfg.name is not None:
            _check_name(cfg.name)
        check_int_range("rank", cfg.rank, 1, 1024)
        check_float_range("alpha", cfg.alpha, 1e-6, 1e6)
        check_float_range("lora_dropout", cfg.lora_dropout, 0.0, 0.9)
        check_float_range("lr", cfg.lr, 1e-8, 1.0)
        if cfg.text_encoder_lr is not None:
            check_float_range("text_encoder_lr", cfg.text_encoder_lr, 0.0, 1.0)
        check_int_range("warmup_steps", cfg.warmup_steps, 0, 10**7)
        check_int_range("max_steps", cfg.max_steps, 1, 10**7)
        check_int_range("batch_size", cfg.batch_size, 1, 4096)
        check_int_range("grad_accum", cfg.grad_accum, 1, 4096)
        check_float_range("weight_decay", cfg.weight_decay, 0.0, 10.0)
        check_float_range("max_grad_norm", cfg.max_grad_norm, 0.0, 1e6)
        check_float_range("min_snr_gamma", cfg.min_snr_gamma, 0.0, 1e3)
        check_float_range("noise_offset", cfg.noise_offset, 0.0, 1.0)
        if cfg.ema_decay is not None:
            check_float_range("ema_decay", cfg.ema_decay, 0.0, 0.999999)
        check_int_range("seed", cfg.seed, 0, 2**32 - 1)
        check_int_range("resolution", cfg.resolution, BUCKET_STEP, 4096)
        if cfg.resolution % BUCKET_STEP:
            raise InvalidSettingError(
                f"resolution {cfg.resolution} is not a multiple of {BUCKET_STEP}"
            )
        check_float_range("caption_dropout", cfg.caption_dropout, 0.0, 1.0)
        if not cfg.caption_ext.startswith(".") or len(cfg.caption_ext) < 2:
            raise InvalidSettingError(f"caption_ext must look like '.txt', got {cfg.caption_ext!r}")
        check_float_range("min_size_fraction", cfg.min_size_fraction, 0.0, 1.0)
        check_int_range("checkpoint_every", cfg.checkpoint_every, 0, 10**7)
        check_int_range("keep_checkpoints", cfg.keep_checkpoints, 1, 1000)
        check_int_range("sample_seed", cfg.sample_seed, 0, 2**32 - 1)
        check_int_range("sample_steps", cfg.sample_steps, 1, 150)
        if cfg.sample_every is not None:
            check_int_range("sample_every", cfg.sample_every, 0, 10**7)
        if cfg.sample_size is not None:
            check_int_range("sample_size", cfg.sample_size, BUCKET_STEP, 4096)
            if cfg.sample_size % 8:
                raise InvalidSettingError(f"sample_size {cfg.sample_size} is not a multiple of 8")
        check_float_range("recommended_scale", cfg.recommended_scale, -1.0, 2.0)
        check_int_range("log_every", cfg.log_every, 1, 10**7)
        for prompt in cfg.sample_prompts:
            if not isinstance(prompt, str) or "\x00" in prompt:
                raise InvalidSettingError(
                    f"sample prompt {prompt!r} must be text without NUL characters"
                )
        return cfg

    # ------------------------------------------------------------------
    @property
    def lora_name(self) -> str:
        return self.name or Path(self.out).resolve().name or "lora"

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def lora_path(self) -> Path:
        return self.out_dir / f"{self.lora_name}.safetensors"

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else self.out_dir / "cache"

    @property
    def effective_sample_every(self) -> int:
        return self.checkpoint_every if self.sample_every is None else self.sample_every

    @property
    def effective_text_encoder_lr(self) -> float:
        return self.lr / 2 if self.text_encoder_lr is None else self.text_encoder_lr

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (enums as their values); ``from_dict`` reverses it."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Enum):
                data[key] = value.value
            elif isinstance(value, tuple):
                data[key] = [v.value if isinstance(v, Enum) else v for v in value]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build a config from plain data. Unknown keys are an error, never ignored."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            hint = _close_names(unknown[0], known)
            raise InvalidSettingError(
                f"{source}: unknown setting(s) {', '.join(unknown)}{hint}; see 'nano-banana train --help'"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return _coerce_enums(cls(**values))

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with the given fields replaced (CLI flags over file values)."""
        merged = {**self.to_dict(), **{k: v for k, v in overrides.items()}}
        return TrainConfig.from_dict(merged, source="flags")


# --- files ------------------------------------------------------------------


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML (or YAML, when PyYAML is installed) file into a config (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidSettingError(f"config file '{path}' does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidSettingError(f"config file '{path}' is not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        data = _load_yaml(text, path)
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidSettingError(f"config file '{path}' is not valid JSON: {exc}") from None
    else:
        raise InvalidSettingError(f"config file '{path}': use a .toml, .yaml or .json file")
    if not isinstance(data, dict):
        raise InvalidSettingError(f"config file '{path}' must hold a table of settings")
    data.pop("format", None)  # written by save_config for future migrations
    return TrainConfig.from_dict(data, source=f"config file '{path}'")


def _load_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ModuleNotFoundError:
        raise InvalidSettingError(
            f"config file '{path}' is YAML but PyYAML is not installed; use TOML or 'pip install pyyaml'"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidSettingError(f"config file '{path}' is not valid YAML: {exc}") from None


CONFIG_FORMAT = 1


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the config as TOML that ``load_config`` reads back to an equal config."""
    path = Path(path)
    lines = [f"format = {CONFIG_FORMAT}"]
    for key, value in config.to_dict().items():
        if value is None:
            continue  # TOML has no null: an absent key means the default, None for these fields
        lines.append(f"{key} = {_toml_value(value)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes (no surrogates with ensure_ascii=False)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


# --- checks -----------------------------------------------------------------


def _coerce_enums(cfg: TrainConfig) -> TrainConfig:
    def parse(enum: type[Enum], value: Any, name: str) -> Any:
        try:
            return enum(value)
        except ValueError:
            choices = ", ".join(e.value for e in enum)
            raise InvalidSettingError(f"{name} {value!r} is not one of: {choices}") from None

    export = cfg.export
    if isinstance(export, str):
        export = (export,)
    return replace(
        cfg,
        targets=parse(Targets, cfg.targets, "targets"),
        precision=parse(Precision, cfg.precision, "precision"),
        optimizer=parse(Optimizer, cfg.optimizer, "optimizer"),
        schedule=parse(Schedule, cfg.schedule, "schedule"),
        export=tuple(dict.fromkeys(parse(ExportFormat, e, "export") for e in export)),
        sample_prompts=tuple(cfg.sample_prompts),
    )


def _check_name(name: str) -> None:
    bad = set('/\\:*?"<>|\x00')
    if not name or name in (".", "..") or any(c in bad for c in name) or name.startswith("."):
        raise InvalidSettingError(
            f"LoRA name {name!r} must be a plain file name (no slashes, not hidden)"
        )


def _close_names(name: str, known: dict[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def field_help(name: str) -> str:
    """Help text of a config field, for the CLI."""
    for f in fields(TrainConfig):
        if f.name == name:
            return f.metadata["help"]
    raise KeyError(name)
