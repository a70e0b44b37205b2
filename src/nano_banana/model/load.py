"""Load the base SDXL pipeline (and an optional VAE) safely, on the right device.

``--base`` may be a Hugging Face repo id, a local diffusers folder or a single
``.safetensors`` checkpoint. Weights are only ever read from safetensors:
``use_safetensors=True`` for folders and repos, and a byte check of single
files before diffusers opens them.

A single file holds weights only. Its configs come from ``--base-config`` (a
diffusers folder or repo id) or else from the SDXL configs shipped in
``assets/sdxl_configs``, completed with CLIP's vocabulary from the Hugging Face
cache, so that a cached machine loads one offline.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ModelLoadError
from ..safefile import check_safetensors, file_sha256
from .memory import MemoryPlan, WeightSizes, place_pipeline, plan_memory

SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"  # the real default for users with internet
# SDXL base's diffusers configs (model_index.json, unet/, vae/, text encoders, tokenizer
# settings), so a single-file checkpoint needs nothing from the Hub but CLIP's vocabulary.
SDXL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "assets" / "sdxl_configs"
# Where CLIP's BPE vocabulary (vocab.json, merges.txt; the same for both SDXL tokenizers) is
# looked for: (repo id or folder, subfolder), from the Hugging Face cache, or the Hub online.
CLIP_VOCAB_SOURCES = ((SDXL_REPO, "tokenizer"), ("openai/clip-vit-large-patch14", ""))
CLIP_VOCAB_FILES = ("vocab.json", "merges.txt")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class BaseSpec:
    """Where the base model comes from and how to place it."""

    source: str  # repo id, diffusers folder or .safetensors file
    vae: str | None = None  # VAE override (e.g. madebyollin/sdxl-vae-fp16-fix)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    # The VAE's own dtype; None: ``dtype``. The trainer keeps it in float32, as SDXL's VAE
    # overflows to NaN in fp16, while the rest loads in the training dtype.
    vae_dtype: str | None = None
    config: str | None = None  # configs and tokenizers for a single file (folder or repo id)
    offload: str = "none"  # none | model | sequential | auto (model/memory.py)
    vae_tiling: str = "off"  # off | on | auto


@dataclass
class LoadedBase:
    pipe: object  # StableDiffusionXLPipeline
    name: str  # what to record as the model
    file_hash: str | None  # A1111-style short hash for single-file checkpoints
    device: torch.device
    dtype: torch.dtype
    memory: MemoryPlan = field(default_factory=MemoryPlan)


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU; an explicit request must exist."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ModelLoadError(f"unknown device '{requested}'; use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{requested}' asked for, but no CUDA GPU is available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device '{requested}' asked for, but Apple MPS is not available here")
    return device


def pick_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """Half precision on GPUs (speed, memory), fp32 on CPU (half is slow and lossy there)."""
    if requested == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if requested not in _DTYPES:
        raise ModelLoadError(f"unknown dtype '{requested}'; use auto, {', '.join(_DTYPES)}")
    return _DTYPES[requested]


def load_base(spec: BaseSpec):
    """Load the SDXL pipeline described by ``spec`` and place it on its device (offloaded or
    with a tiled VAE when ``spec`` says so, or ``auto`` finds the GPU too small)."""
    device = pick_device(spec.device)
    dtype = pick_dtype(device, spec.dtype)
    vae_dtype = dtype if spec.vae_dtype is None else pick_dtype(device, spec.vae_dtype)
    dtypes = Dtypes(dtype, vae_dtype)
    pipe, file_hash = _load_pipeline(spec.source, dtypes, spec.config)
    if spec.vae:
        pipe.vae = load_vae(spec.vae, vae_dtype)
    # loaded into host memory first: the plan weighs the model against the GPU's free memory
    memory = plan_memory(device, spec.offload, spec.vae_tiling, WeightSizes.of(pipe))
    place_pipeline(pipe, memory, device)
    pipe.set_progress_bar_config(disable=True)  # callers show their own progress
    return LoadedBase(pipe, _display_name(spec.source), file_hash, device, dtype, memory)


@dataclass(frozen=True)
class Dtypes:
    """The pipeline's dtype and its VAE's (the same unless the VAE is kept in float32)."""

    model: torch.dtype
    vae: torch.dtype

    def for_pretrained(self) -> torch.dtype | dict[str, torch.dtype]:
        """diffusers' ``torch_dtype``: one dtype, or one per component (diffusers >= 0.33)."""
        if self.vae == self.model:
            return self.model
        return {"default": self.model, "vae": self.vae}


def _load_pipeline(source: str, dtypes: Dtypes, config: str | None = None):
    path = Path(source).expanduser()
    if config is not None and not path.is_file():
        raise ModelLoadError(
            f"--base-config is for a single .safetensors checkpoint; '{source}' is not a file"
        )
    if path.is_dir():
        return _from_folder(path, dtypes), None
    if path.is_file():
        return _from_single_file(path, dtypes, config), short_file_hash(path)
    if _is_repo_id(source):
        return _from_hub(source, dtypes), None
    raise ModelLoadError(
        f"base model '{source}' not found: give a diffusers folder, a .safetensors file "
        f"or a Hugging Face repo id such as {SDXL_REPO}"
    )


def _from_folder(path: Path, dtypes: Dtypes):
    from diffusers import StableDiffusionXLPipeline

    index = path / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(
            f"folder '{path}' is not a diffusers model folder (no model_index.json)"
        )
    try:
        class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"'{index}' is unreadable: {exc}") from None
    if "XL" not in class_name:
        raise ModelLoadError(
            f"'{path}' holds a {class_name or 'non-SDXL'} model; Nano-Banana needs an SDXL base"
        )
    for weights in path.glob("*/*.safetensors"):
        check_safetensors(weights, what="model weights")
    return _guarded_load(
        lambda: StableDiffusionXLPipeline.from_pretrained(
            path, torch_dtype=dtypes.for_pretrained(), use_safetensors=True, local_files_only=True
        ),
        f"folder '{path}'",
    )


def _from_single_file(path: Path, dtypes: Dtypes, config: str | None):
    """A single checkpoint with ``config``'s configs and tokenizers, or else the shipped SDXL
    configs completed with CLIP's vocabulary (``sdxl_config_folder``)."""
    header = check_safetensors(path, what="base model checkpoint")
    if config is not None:
        source = _config_source(config)
        return _single_file_with(
            path, dtypes, source, f"checkpoint '{path}' with --base-config '{config}'"
        )
    _check_sdxl_base_keys(header, path)  # the shipped configs are SDXL base's
    with tempfile.TemporaryDirectory(prefix="nano-banana-sdxl-config-") as tmp:
        folder = sdxl_config_folder(Path(tmp) / "sdxl")
        return _single_file_with(path, dtypes, str(folder), f"checkpoint '{path}'")


def _config_source(config: str) -> str:
    """``--base-config`` as diffusers takes it (a diffusers folder or a repo id), or a one-line
    error naming it before diffusers reports something vaguer."""
    local = Path(config).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise ModelLoadError(
                f"--base-config '{config}' is not a diffusers model folder (no model_index.json)"
            )
        return str(local)
    if not _is_repo_id(config):
        raise ModelLoadError(
            f"--base-config '{config}' not found: give a diffusers SDXL folder or a "
            f"Hugging Face repo id such as {SDXL_REPO}"
        )
    return config


def _is_repo_id(source: str) -> bool:
    """``owner/name`` that is not a relative or home path (``./a/b`` is a missing folder)."""
    return bool(_REPO_ID.match(source)) and not source.startswith((".", "/", "~"))


def _single_file_with(path: Path, dtypes: Dtypes, config: str, what: str):
    """``from_single_file`` with its configs from ``config``; a float32 VAE of its own when the
    VAE's dtype differs (diffusers' single-file loader takes one dtype for all)."""
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline

    extra = {}
    if dtypes.vae != dtypes.model:
        extra["vae"] = _guarded_load(
            lambda: AutoencoderKL.from_single_file(
                str(path), config=config, subfolder="vae", torch_dtype=dtypes.vae
            ),
            what,
        )
    return _guarded_load(
        lambda: StableDiffusionXLPipeline.from_single_file(
            str(path), config=config, torch_dtype=dtypes.model, **extra
        ),
        what,
    )


# SDXL base's second text encoder (OpenCLIP bigG) in the original layout; SD 1.x/2.x
# checkpoints and SDXL's refiner (whose only encoder is embedders.0) lack it.
SDXL_BASE_KEY = "conditioner.embedders.1.model."


def _check_sdxl_base_keys(header: dict, path: Path) -> None:
    if not any(key.startswith(SDXL_BASE_KEY) for key in header):
        raise ModelLoadError(
            f"checkpoint '{path}' is not an SDXL base model (no '{SDXL_BASE_KEY}' weights); "
            "Nano-Banana needs an SDXL base, or pass its configs with --base-config"
        )


def sdxl_config_folder(out: Path) -> Path:
    """The shipped SDXL configs copied to ``out``, each tokenizer completed with CLIP's
    vocabulary from the Hugging Face cache (or the Hub when online)."""
    vocab = _clip_vocab_files()
    shutil.copytree(SDXL_CONFIG_DIR, out)
    for tokenizer in ("tokenizer", "tokenizer_2"):
        for file in vocab:
            shutil.copyfile(file, out / tokenizer / file.name)
    return out


def _clip_vocab_files() -> list[Path]:
    """CLIP's vocab.json and merges.txt from the first source that has them here."""
    for source, subfolder in CLIP_VOCAB_SOURCES:
        files = _vocab_files_from(source, subfolder)
        if files is not None:
            return files
    raise ModelLoadError(
        "a single-file checkpoint needs the CLIP tokenizer files, which are neither in the "
        "Hugging Face cache nor downloadable (offline?); pass --base-config with a local SDXL "
        "diffusers folder"
    )


def _vocab_files_from(source: str, subfolder: str) -> list[Path] | None:
    folder = Path(source).expanduser() / subfolder
    if folder.is_dir():
        files = [folder / name for name in CLIP_VOCAB_FILES]
        return files if all(f.is_file() for f in files) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return [
            Path(hf_hub_download(source, name, subfolder=subfolder or None))
            for name in CLIP_VOCAB_FILES
        ]
    except (OSError, ValueError, EntryNotFoundError):  # offline and not cached, no such repo
        return None


def _from_hub(repo: str, dtypes: Dtypes):
    from diffusers import StableDiffusionXLPipeline

    # halves the download where offered
    variant = "fp16" if dtypes.model == torch.float16 else None
    torch_dtype = dtypes.for_pretrained()

    def load():
        try:
            return StableDiffusionXLPipeline.from_pretrained(
                repo, torch_dtype=torch_dtype, use_safetensors=True, variant=variant
            )
        except ValueError:
            if variant is None:
                raise
            return StableDiffusionXLPipeline.from_pretrained(
                repo, torch_dtype=torch_dtype, use_safetensors=True
            )

    return _guarded_load(load, f"'{repo}' from the Hugging Face Hub (offline? pass a local folder)")


def _guarded_load(load, what: str):
    """Run a diffusers loader; turn its many failure types into one line naming ``what``."""
    try:
        return load()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"could not load {what}: {first[:300]}") from None


def load_vae(source: str, dtype: torch.dtype):
    """A VAE override from a folder (diffusers layout), a .safetensors file or a repo id."""
    from diffusers import AutoencoderKL

    path = Path(source).expanduser()
    if path.is_file():
        check_safetensors(path, what="VAE file")
        return _guarded_load(
            lambda: AutoencoderKL.from_single_file(path, torch_dtype=dtype), f"VAE '{path}'"
        )
    if path.is_dir():
        sub = "vae" if (path / "vae" / "config.json").is_file() else None
        return _guarded_load(
            lambda: AutoencoderKL.from_pretrained(
                path, subfolder=sub, torch_dtype=dtype, use_safetensors=True, local_files_only=True
            ),
            f"VAE folder '{path}'",
        )
    if _REPO_ID.match(source):
        return _guarded_load(
            lambda: AutoencoderKL.from_pretrained(source, torch_dtype=dtype, use_safetensors=True),
            f"VAE '{source}' from the Hugging Face Hub",
        )
    raise ModelLoadError(
        f"VAE '{source}' not found: give a folder, a .safetensors file or a repo id"
    )


def short_file_hash(path: Path) -> str:
    """A1111's model hash: the first 10 hex digits of the file's sha256."""
    return file_sha256(path)[:10]


def _display_name(source: str) -> str:
    path = Path(source)
    if path.exists():
        return path.stem if path.is_file() else path.name
    return source


def quiet_libraries() -> None:
    """Silence the libraries' own progress bars and advisory warnings in our shells.

    The CLI and the studio show their own progress; diffusers' "Loading pipeline
    components" bars and notes such as "No LoRA keys associated to CLIPTextModel"
    (normal for a UNet-only LoRA) would only bury our messages.
    """
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    for module in ("diffusers", "transformers", "peft", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
