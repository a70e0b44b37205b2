"""Load the base SDXL pipeline (and an optional VAE) safely, on the right device.

``--base`` may be a Hugging Face repo id, a local diffusers folder or a single
``.safetensors`` checkpoint. Weights are only ever read from safetensors:
``use_safetensors=True`` for folders and repos, and a byte check of single
files before diffusers opens them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelLoadError
from ..safefile import check_safetensors, file_sha256

SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"  # the real default for users with internet
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class BaseSpec:
    """Where the base model comes from and how to place it."""

    source: str  # repo id, diffusers folder or .safetensors file
    vae: str | None = None  # VAE override (e.g. madebyollin/sdxl-vae-fp16-fix)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16


@dataclass
class LoadedBase:
    pipe: object  # StableDiffusionXLPipeline
    name: str  # what to record as the model
    file_hash: str | None  # A1111-style short hash for single-file checkpoints
    device: torch.device
    dtype: torch.dtype


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
    """Load the SDXL pipeline described by ``spec`` and move it to its device."""
    device = pick_device(spec.device)
    dtype = pick_dtype(device, spec.dtype)
    pipe, file_hash = _load_pipeline(spec.source, dtype)
    if spec.vae:
        pipe.vae = load_vae(spec.vae, dtype)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)  # callers show their own progress
    return LoadedBase(pipe, _display_name(spec.source), file_hash, device, dtype)


def _load_pipeline(source: str, dtype: torch.dtype):
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(path, dtype), None
    if path.is_file():
        return _from_single_file(path, dtype), short_file_hash(path)
    if _REPO_ID.match(source) and not source.startswith((".", "/", "~")):
        return _from_hub(source, dtype), None
    raise ModelLoadError(
        f"base model '{source}' not found: give a diffusers folder, a .safetensors file "
        f"or a Hugging Face repo id such as {SDXL_REPO}"
    )


def _from_folder(path: Path, dtype: torch.dtype):
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
            path, torch_dtype=dtype, use_safetensors=True, local_files_only=True
        ),
        f"folder '{path}'",
    )


def _from_single_file(path: Path, dtype: torch.dtype):
    from diffusers import StableDiffusionXLPipeline

    check_safetensors(path, what="base model checkpoint")
    return _guarded_load(
        lambda: StableDiffusionXLPipeline.from_single_file(path, torch_dtype=dtype),
        f"checkpoint '{path}' (single-file loading also needs the SDXL config from the Hub "
        f"or its cache)",
    )


def _from_hub(repo: str, dtype: torch.dtype):
    from diffusers import StableDiffusionXLPipeline

    variant = "fp16" if dtype == torch.float16 else None  # halves the download where offered

    def load():
        try:
            return StableDiffusionXLPipeline.from_pretrained(
                repo, torch_dtype=dtype, use_safetensors=True, variant=variant
            )
        except ValueError:
            if variant is None:
                raise
            return StableDiffusionXLPipeline.from_pretrained(
                repo, torch_dtype=dtype, use_safetensors=True
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
