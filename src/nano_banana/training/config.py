"""The one typed training configuration: sections of settings with reasons, validation, files.

A ``TrainConfig`` is the run's ``seed`` plus eight small sections, one per part of
the run that reads them: ``model``, ``dataset``, ``adapter``, ``optim``, ``loss``,
``samples``, ``output`` and ``validation``. Every setting keeps one flat name, unique across the
sections: the CLI flag is derived from it (``--rank``, help text included), and a
file may give it flat (``rank = 8``, as older files do) or in its section's table
(``[adapter]`` then ``rank = 8``). The config is filled from a file (``--config
run.toml``) and then from flags, and validated before any model is loaded. Every
output folder gets a copy (``train_config.toml``) that loads back into the same config.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import InvalidSettingError
from ..options import reject_unknown
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


# --- the sections -------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Base model: which SDXL to adapt and how to run it."""

    base: str = _opt(
        "stabilityai/stable-diffusion-xl-base-1.0",
        "Base model: a Hugging Face repo id, a diffusers folder or a single .safetensors file "
        "(safetensors weights only).",
    )
    # None: a single file loads with the SDXL configs shipped in the package, offline; a
    # fine-tune of another shape (or a machine without CLIP's vocabulary cached) names its own.
    base_config: str | None = _opt(
        None,
        "For a single-file --base: a diffusers SDXL folder (or repo id) whose configs and "
        "tokenizers to use. Default: the built-in SDXL configs.",
    )
    vae: str | None = _opt(
        None, "Optional VAE folder/repo (e.g. madebyollin/sdxl-vae-fp16-fix). The VAE runs in fp32."
    )
    precision: Precision = _opt(Precision.AUTO, "Mixed precision: auto, no, fp16 or bf16.")
    grad_checkpointing: bool = _opt(
        False, "Recompute activations in backward: much less memory, ~30% slower."
    )

    def validated(self) -> ModelConfig:
        """This section with its precision parsed (its paths are checked when loading)."""
        return _coerced(self)


@dataclass(frozen=True)
class DatasetConfig:
    """Dataset: the images, their captions and how they become training samples."""

    data: str = _opt("", "Folder of images with same-name .txt captions, or a metadata.jsonl/.csv.")
    trigger: str = _opt(DEFAULT_TRIGGER, "Trigger words put in front of every caption.")
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

    def validated(self) -> DatasetConfig:
        """This section checked (data given; resolution, caption extension, fractions), a copy."""
        cfg = _coerced(self)
        if not cfg.data:
            raise InvalidSettingError("no training data given: pass --data FOLDER")
        check_int_range("resolution", cfg.resolution, BUCKET_STEP, 4096)
        if cfg.resolution % BUCKET_STEP:
            raise InvalidSettingError(
                f"resolution {cfg.resolution} is not a multiple of {BUCKET_STEP}"
            )
        check_float_range("caption_dropout", cfg.caption_dropout, 0.0, 1.0)
        if not cfg.caption_ext.startswith(".") or len(cfg.caption_ext) < 2:
            raise InvalidSettingError(f"caption_ext must look like '.txt', got {cfg.caption_ext!r}")
        check_float_range("min_size_fraction", cfg.min_size_fraction, 0.0, 1.0)
        return cfg


@dataclass(frozen=True)
class AdapterConfig:
    """Adapter: the LoRA put on the UNet (and optionally the text encoders)."""

    rank: int = _opt(16, "LoRA rank: 16 is the common default for style/layout LoRAs.")
    alpha: float = _opt(16.0, "LoRA alpha; the update is scaled by alpha/rank. Saved in the file.")
    targets: Targets = _opt(Targets.ATTN, "Adapted layers: attn, attn-ff or attn-ff-conv.")
    lora_dropout: float = _opt(0.0, "Dropout on the adapter input; 0 for small datasets is fine.")
    train_text_encoder: bool = _opt(
        False, "Also put adapters on both text encoders (no text cache)."
    )

    def validated(self) -> AdapterConfig:
        """This section checked (rank, alpha, dropout in range), targets parsed, a copy."""
        cfg = _coerced(self)
        check_int_range("rank", cfg.rank, 1, 1024)
        check_float_range("alpha", cfg.alpha, 1e-6, 1e6)
        check_float_range("lora_dropout", cfg.lora_dropout, 0.0, 0.9)
        return cfg


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation: AdamW, the learning-rate schedule, batches, clipping and the EMA."""

    optimizer: Optimizer = _opt(Optimizer.AUTO, "auto, adamw or adamw8bit.")
    lr: float = _opt(1e-4, "Peak learning rate of the UNet adapters (AdamW).")
    text_encoder_lr: float | None = _opt(
        None, "Learning rate of the text-encoder adapters (default: lr/2)."
    )
    weight_decay: float = _opt(1e-2, "AdamW weight decay on the adapters.")
    warmup_steps: int = _opt(100, "Linear warm-up steps from 0 to lr; avoids early blow-ups.")
    schedule: Schedule = _opt(
        Schedule.CONSTANT, "LR after warm-up: constant, cosine or linear decay."
    )
    max_steps: int = _opt(1500, "Optimizer steps (a style LoRA: 1000-3000 on tens of images).")
    batch_size: int = _opt(1, "Images per step per process (all from one aspect bucket).")
    grad_accum: int = _opt(1, "Micro-batches accumulated per optimizer step.")
    max_grad_norm: float = _opt(1.0, "Clip the gradient norm to this (0 = no clipping).")
    ema_decay: float | None = _opt(
        None, "Keep an EMA of the adapter weights with this decay (e.g. 0.999)."
    )

    def validated(self) -> OptimConfig:
        """This section checked (rates, steps, batch, clipping, EMA in range), a copy."""
        cfg = _coerced(self)
        check_float_range("lr", cfg.lr, 1e-8, 1.0)
        if cfg.text_encoder_lr is not None:
            check_float_range("text_encoder_lr", cfg.text_encoder_lr, 0.0, 1.0)
        check_float_range("weight_decay", cfg.weight_decay, 0.0, 10.0)
        check_int_range("warmup_steps", cfg.warmup_steps, 0, 10**7)
        check_int_range("max_steps", cfg.max_steps, 1, 10**7)
        check_int_range("batch_size", cfg.batch_size, 1, 4096)
        check_int_range("grad_accum", cfg.grad_accum, 1, 4096)
        check_float_range("max_grad_norm", cfg.max_grad_norm, 0.0, 1e6)
        if cfg.ema_decay is not None:
            check_float_range("ema_decay", cfg.ema_decay, 0.0, 0.999999)
        return cfg

    @property
    def effective_text_encoder_lr(self) -> float:
        return self.lr / 2 if self.text_encoder_lr is None else self.text_encoder_lr


@dataclass(frozen=True)
class LossConfig:
    """Loss: how the denoising error of each sample is weighted and noised."""

    min_snr_gamma: float = _opt(
        5.0, "Min-SNR-gamma loss weighting (Hang et al. 2023); 0 turns it off."
    )
    noise_offset: float = _opt(
        0.0, "Noise offset (e.g. 0.0357) lets the model learn very bright/dark images."
    )

    def validated(self) -> LossConfig:
        """This section checked (min-SNR gamma, noise offset in range), a copy."""
        cfg = _coerced(self)
        check_float_range("min_snr_gamma", cfg.min_snr_gamma, 0.0, 1e3)
        check_float_range("noise_offset", cfg.noise_offset, 0.0, 1.0)
        return cfg


@dataclass(frozen=True)
class SampleConfig:
    """Samples: the image grid rendered as training goes, to watch the adapter learn."""

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
    sample_cfg: float | None = _opt(
        None, "Guidance scale of the sample images (default: the request default, SDXL's 7.5)."
    )

    def validated(self) -> SampleConfig:
        """This section checked (seed, steps, sizes in range), a copy."""
        cfg = _coerced(self)
        check_int_range("sample_seed", cfg.sample_seed, 0, 2**32 - 1)
        check_int_range("sample_steps", cfg.sample_steps, 1, 150)
        if cfg.sample_cfg is not None:
            check_float_range("sample_cfg", cfg.sample_cfg, 0.0, 30.0)
        if cfg.sample_every is not None:
            check_int_range("sample_every", cfg.sample_every, 0, 10**7)
        if cfg.sample_size is not None:
            check_int_range("sample_size", cfg.sample_size, BUCKET_STEP, 4096)
            if cfg.sample_size % 8:
                raise InvalidSettingError(f"sample_size {cfg.sample_size} is not a multiple of 8")
        for prompt in cfg.sample_prompts:
            if not isinstance(prompt, str) or "\x00" in prompt:
                raise InvalidSettingError(
                    f"sample prompt {prompt!r} must be text without NUL characters"
                )
        return cfg


@dataclass(frozen=True)
class OutputConfig:
    """Output: where the LoRA goes, checkpoints and resuming, exports and the loss log."""

    out: str = _opt("", "Output folder; the LoRA is written as OUT/NAME.safetensors.")
    name: str | None = _opt(
        None, "File name of the LoRA (without .safetensors). Default: OUT's name."
    )
    checkpoint_every: int = _opt(
        250, "Save a resumable checkpoint every N steps (0 = only at the end/Ctrl-C)."
    )
    keep_checkpoints: int = _opt(
        2, "Complete checkpoints to keep; older ones go after a new one is complete."
    )
    resume: str | None = _opt(None, "'latest' or a checkpoint folder to continue from.")
    recommended_scale: float = _opt(
        0.8, "LoRA scale written into the file and model card (the design's 0.8)."
    )
    export: tuple[ExportFormat, ...] = _opt(
        (), "Extra formats to write: kohya (AUTOMATIC1111/ComfyUI)."
    )
    log_every: int = _opt(1, "Write a loss-curve row every N steps.")

    def validated(self) -> OutputConfig:
        """This section checked (out given, a plain LoRA name, counts in range), a copy."""
        cfg = _coerced(self)
        if not cfg.out:
            raise InvalidSettingError("no output folder given: pass --out FOLDER")
        if cfg.name is not None:
            _check_name(cfg.name)
        check_int_range("checkpoint_every", cfg.checkpoint_every, 0, 10**7)
        check_int_range("keep_checkpoints", cfg.keep_checkpoints, 1, 1000)
        check_float_range("recommended_scale", cfg.recommended_scale, -1.0, 2.0)
        check_int_range("log_every", cfg.log_every, 1, 10**7)
        return cfg

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
    def best_lora_path(self) -> Path:
        """Where ``keep_best`` writes the adapter of the best evaluation, beside the final one."""
        return self.out_dir / f"{self.lora_name}-best.safetensors"


@dataclass(frozen=True)
class ValidationConfig:
    """Validation: held-out items, their loss, a layout-score eval, the best step, early stopping."""

    val_split: float = _opt(
        0.0,
        "Share of the dataset held out of training to measure a validation loss on "
        "(chosen by the seed; at least one item when above 0).",
    )
    val_every: int = _opt(
        100,
        "Measure the validation loss every N steps (0 = only before and after training); "
        "one forward pass per held-out item, so cheap.",
    )
    layout_eval_every: int = _opt(
        0,
        "Every N steps (and before and after training), generate images from the held-out "
        "captions (the sample prompts when none are held out) and score the share the layout "
        "analyser judges a disassembled layout (0 = off; costs images).",
    )
    layout_eval_images: int = _opt(
        4, "Images per layout eval (fixed seeds); 4 keeps an eval to seconds on a GPU."
    )
    keep_best: bool = _opt(
        False,
        "Also write NAME-best.safetensors at the best evaluation (layout score if on, "
        "else lowest validation loss).",
    )
    early_stop_patience: int = _opt(
        0, "Stop when this many evaluations in a row did not beat the best (0 = never)."
    )
    early_stop_min_delta: float = _opt(
        0.0,
        "Smallest gain over the best that counts as better (in loss units, or as a share "
        "of layouts); 0: any gain.",
    )

    def validated(self) -> ValidationConfig:
        """This section checked (a split that leaves training data, counts in range), a copy."""
        cfg = _coerced(self)
        check_float_range("val_split", cfg.val_split, 0.0, 1.0)
        if cfg.val_split >= 1.0:
            raise InvalidSettingError(
                f"val_split {cfg.val_split:g} would hold out every item and leave nothing to "
                "train on: use a share below 1 (e.g. 0.1)"
            )
        check_int_range("val_every", cfg.val_every, 0, 10**7)
        check_int_range("layout_eval_every", cfg.layout_eval_every, 0, 10**7)
        check_int_range("layout_eval_images", cfg.layout_eval_images, 1, 256)
        check_int_range("early_stop_patience", cfg.early_stop_patience, 0, 10**6)
        check_float_range("early_stop_min_delta", cfg.early_stop_min_delta, 0.0, 1e6)
        if (cfg.keep_best or cfg.early_stop_patience) and cfg.judged_by is None:
            wanted = "keep_best" if cfg.keep_best else "early_stop_patience"
            raise InvalidSettingError(
                f"{wanted} needs something to judge the steps by: hold out items with "
                "--val-split (e.g. 0.1) or turn on --layout-eval-every"
            )
        return cfg

    @property
    def judged_by(self) -> str | None:
        """The measure that picks the best step and decides early stopping, if any."""
        if self.layout_eval_every:
            return "layout_score"  # what the LoRA is for; the loss only says it fits the data
        return "val_loss" if self.val_split > 0 else None


# --- the whole config -----------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Fill it, call ``validated()``, pass it to ``train``.

    Build one from sections (``TrainConfig(adapter=AdapterConfig(rank=8))``) or from plain
    data with flat or sectioned keys (``TrainConfig.from_dict({"rank": 8})``).
    """

    seed: int = _opt(0, "Seed of everything random: adapter init, batch order, noise, timesteps.")
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    samples: SampleConfig = field(default_factory=SampleConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def validated(self) -> TrainConfig:
        """Check every setting; return a copy with enums parsed (data and out are checked first)."""
        cfg = replace(
            self,
            dataset=self.dataset.validated(),
            output=self.output.validated(),
            model=self.model.validated(),
            adapter=self.adapter.validated(),
            optim=self.optim.validated(),
            loss=self.loss.validated(),
            samples=self.samples.validated(),
            validation=self.validation.validated(),
        )
        check_int_range("seed", cfg.seed, 0, 2**32 - 1)
        return cfg

    # ------------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        return (
            Path(self.dataset.cache_dir)
            if self.dataset.cache_dir
            else self.output.out_dir / "cache"
        )

    @property
    def effective_sample_every(self) -> int:
        every = self.samples.sample_every
        return self.output.checkpoint_every if every is None else every

    def value(self, name: str) -> Any:
        """A setting by its flat name (``config.value("rank")``), wherever its section is."""
        section = SETTINGS[name].section
        return getattr(getattr(self, section) if section else self, name)

    def flat_dict(self) -> dict[str, Any]:
        """Every setting by its flat name, as plain JSON-able data (enums as their values)."""
        return {name: _plain(self.value(name)) for name in SETTINGS}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data in sections (``{"seed": 0, "adapter": {"rank": 16, ...}}``)."""
        data: dict[str, Any] = {}
        for name, value in self.flat_dict().items():
            section = SETTINGS[name].section
            (data.setdefault(section, {}) if section else data)[name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build a config from plain data: settings in their section's table, flat (as older
        files and LoRA metadata hold them), or both. Unknown keys are an error, never ignored."""
        top, tables = _sort_settings(data, source)
        sections = {name: SECTIONS[name](**values) for name, values in tables.items()}
        return _coerced_config(cls(**top, **sections))

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with the given settings (by flat name) replaced: CLI flags over file values."""
        return TrainConfig.from_dict({**self.flat_dict(), **overrides}, source="flags")


# section name -> its dataclass, in declaration order
SECTIONS: dict[str, type] = {
    name: hint
    for name, hint in typing.get_type_hints(TrainConfig).items()
    if dataclasses.is_dataclass(hint)
}


@dataclass(frozen=True)
class Setting:
    """One setting: its flat name (the CLI flag and a flat file key), where it lives, its help."""

    name: str
    section: str | None  # None: a field of TrainConfig itself
    hint: Any  # its type, Optional removed
    default: Any
    help: str


def _settings() -> dict[str, Setting]:
    found: dict[str, Setting] = {}
    owners: list[tuple[str | None, type]] = [(None, TrainConfig), *SECTIONS.items()]
    for section, owner in owners:
        hints = typing.get_type_hints(owner)
        for f in fields(owner):
            if section is None and f.name in SECTIONS:
                continue
            if f.name in found or f.name in SECTIONS:  # a flat name must say which setting it is
                raise TypeError(f"setting name {f.name!r} is not unique")
            found[f.name] = Setting(
                f.name, section, strip_optional(hints[f.name]), f.default, f.metadata["help"]
            )
    return found


def strip_optional(hint: Any) -> Any:
    """``X`` for ``X | None`` (the type a setting takes when it is given)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return args[0] if optional and len(args) == 1 else hint


SETTINGS: dict[str, Setting] = _settings()  # flat name -> setting, in declaration order


def field_help(name: str) -> str:
    """Help text of a setting, for the CLI."""
    return SETTINGS[name].help


# --- plain data <-> sections ----------------------------------------------------------


def _sort_settings(
    data: dict[str, Any], source: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(top-level values, {section: values}) of flat and sectioned keys; refuses unknown ones."""
    advice = "see 'nano-banana train --help'"
    reject_unknown(data, [*SETTINGS, *SECTIONS], where=source, advice=advice)
    top: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}

    def put(name: str, value: Any) -> None:
        section = SETTINGS[name].section
        target = tables.setdefault(section, {}) if section else top
        if name in target:
            raise InvalidSettingError(f"{source}: {name} is given twice (flat and in [{section}])")
        target[name] = tuple(value) if isinstance(value, list) else value

    for key, value in data.items():
        if key not in SECTIONS:
            put(key, value)
            continue
        if not isinstance(value, dict):
            raise InvalidSettingError(f"{source}: {key} must be a table of settings")
        for name in value:  # a real setting in the wrong table: say where it goes
            if name in SETTINGS and SETTINGS[name].section != key:
                where = f"[{SETTINGS[name].section}]" if SETTINGS[name].section else "the top"
                raise InvalidSettingError(f"{source}: {name} belongs in {where}, not in [{key}]")
        reject_unknown(value, SECTIONS[key], where=f"{source} [{key}]", advice=advice)
        for name, item in value.items():
            put(name, item)
    return top, tables


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _coerced(section: Any) -> Any:
    """A copy with enum settings parsed and tuple settings made tuples (a lone string is one item)."""
    changes = {}
    for f in fields(section):
        hint, value = SETTINGS[f.name].hint, getattr(section, f.name)
        if isinstance(hint, type) and issubclass(hint, Enum):
            changes[f.name] = _parse(hint, value, f.name)
        elif typing.get_origin(hint) is tuple:
            items = (value,) if isinstance(value, str) else tuple(value)
            kind = typing.get_args(hint)[0]
            if isinstance(kind, type) and issubclass(kind, Enum):
                items = tuple(dict.fromkeys(_parse(kind, v, f.name) for v in items))
            changes[f.name] = items
    return replace(section, **changes)


def _coerced_config(cfg: TrainConfig) -> TrainConfig:
    return replace(cfg, **{name: _coerced(getattr(cfg, name)) for name in SECTIONS})


def _parse(enum: type[Enum], value: Any, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise InvalidSettingError(f"{name} {value!r} is not one of: {choices}") from None


def flatten_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Plain config data (sectioned or flat) as {flat name: value}, unchecked: for comparing
    the config a checkpoint was saved with to the current one."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _check_name(name: str) -> None:
    bad = set('/\\:*?"<>|\x00')
    if not name or name in (".", "..") or any(c in bad for c in name) or name.startswith("."):
        raise InvalidSettingError(
            f"LoRA name {name!r} must be a plain file name (no slashes, not hidden)"
        )


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


CONFIG_FORMAT = 2  # 1: flat keys; 2: a table per section (format 1 files still load)


def config_toml(config: TrainConfig) -> str:
    """The config as TOML: the top-level settings, then one table per section."""
    lines = [f"format = {CONFIG_FORMAT}"]
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    # TOML has no null: an absent key means the default, which is None for those settings
    return "\n".join(lines) + "\n"


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the config as TOML that ``load_config`` reads back to an equal config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, config_toml(config))


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
