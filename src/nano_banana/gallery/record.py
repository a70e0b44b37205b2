"""What we know about a finished image: the request plus everything resolved while making it.

A ``GenerationRecord`` is what the PNG metadata, the gallery and ``--from``
share. It is plain data (JSON round-trip via ``to_dict``/``from_dict``).
"""

from __future__ import annotations

import math
import platform
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from typing import Any

from ..errors import InvalidSettingError
from ..options import reject_unknown
from ..settings import LORA_SCALE_RANGE, GenerationRequest, check_float_range

RECORD_FORMAT = 1  # bump when a field changes meaning
# ``MemoryPlan.offload``'s values once "auto" is resolved (model/memory.py's choices less
# "auto"), spelled here so that reading a record needs no torch.
RECORDED_OFFLOADS = ("none", "model", "sequential")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LoraUse:
    """One LoRA as it was applied to an image."""

    name: str  # adapter name inside the engine
    file: str  # file name (not a full path: images travel to other machines)
    sha256: str  # whole-file hash; its first 10 hex digits are Civitai's AutoV2
    weight: float  # the LoRA's own weight in the request
    scale: float  # effective strength applied = weight * request.lora_scale
    # sha256 of the tensor bytes after the safetensors header: its first 12 hex digits are
    # A1111's "Lora hashes" entry and Civitai's AutoV3 (lora.hashes); "" in older records
    data_sha256: str = ""


@dataclass(frozen=True)
class InitImage:
    """The photo an image to image started from, as the engine got it (oriented RGB)."""

    # sha256 of its RGB pixels, row by row: the same picture gives the same digest whatever
    # file it came in (``generate.photo.load_photo`` reads a file to exactly these pixels)
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class GenerationRecord:
    request: GenerationRequest  # validated: the seed is the one actually used
    prompt_used: (
        str  # final positive prompt given to the text encoders (preset + truncation applied)
    )
    negative_used: str  # final negative prompt
    prompt_tokens: int  # CLIP tokens of the untruncated final prompt (without BOS/EOS)
    prompt_truncated: bool  # True when the final prompt was cut at CLIP's 77-token window
    base_model: str  # what the user passed as --base (repo id, folder or file), or the demo's name
    base_model_hash: str | None = None  # short sha256 when the base is a single file
    vae: str | None = None  # VAE override, if any
    loras: tuple[LoraUse, ...] = ()
    device: str = "cpu"
    dtype: str = "float32"
    # The memory savers the engine applied (``auto`` resolved), so a slow or tiled image can be
    # explained; None in records made before they were kept. Like ``device`` they describe
    # the machine, not the image: --from never applies them (model/memory.py picks afresh).
    offload: str | None = None  # none | model | sequential
    vae_tiling: bool | None = None
    duration_s: float = 0.0
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    versions: dict[str, str] = field(default_factory=lambda: software_versions())
    format: int = RECORD_FORMAT
    # A parts-first board's plan, its check against the image and every attempt (None otherwise)
    board: dict[str, Any] | None = None
    # Image to image: the photo the image was redrawn from (at request.strength); None when
    # it was drawn from noise
    init_image: InitImage | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["request"] = self.request.to_dict()
        data["loras"] = [asdict(lu) for lu in self.loras]
        data["init_image"] = None if self.init_image is None else asdict(self.init_image)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRecord:
        """Rebuild a record from ``to_dict`` output; unknown keys are an error, not ignored."""
        reject_unknown(data, cls, where="record", what="field")
        data = dict(data)
        data["request"] = GenerationRequest.from_dict(data["request"])
        data["loras"] = tuple(_lora_use(lu) for lu in data.get("loras", ()))
        if data.get("init_image") is not None:
            data["init_image"] = _init_image(data["init_image"])
        return cls(**data)


def checked_record(record: GenerationRecord) -> GenerationRecord:
    """``record`` as a finished image's must be: its request passes the checks of a new one
    (``GenerationRequest.validated``) with a seed and size recorded, and the other fields
    have their types. A record from someone else's file may be anything; an
    ``InvalidSettingError`` names the first problem."""
    request = record.request
    if request.seed is None or request.width is None or request.height is None:
        raise InvalidSettingError("the record has no seed or size; it is not a finished image's")
    request = request.validated()
    for name in ("prompt_used", "negative_used", "base_model", "created", "device", "dtype"):
        _check_type(name, getattr(record, name), str)
    for name in ("base_model_hash", "vae"):
        _check_type(name, getattr(record, name), (str, type(None)))
    _check_type("prompt_tokens", record.prompt_tokens, int)
    _check_type("prompt_truncated", record.prompt_truncated, bool)
    _check_memory(record)
    _check_type("board", record.board, (dict, type(None)))
    _check_init_image(record.init_image)
    _check_type("versions", record.versions, dict)
    check_float_range("duration_s", record.duration_s, 0.0, math.inf)
    for use in record.loras:
        for name in ("name", "file", "sha256", "data_sha256"):
            _check_type(f"LoRA {name}", getattr(use, name), str)
        check_float_range(f"weight of LoRA '{use.name}'", use.weight, *LORA_SCALE_RANGE)
        check_float_range(f"scale of LoRA '{use.name}'", use.scale, -math.inf, math.inf)
    return replace(record, request=request)


def _check_memory(record: GenerationRecord) -> None:
    if record.offload is not None and record.offload not in RECORDED_OFFLOADS:
        raise InvalidSettingError(
            f"the record's offload must be one of {', '.join(RECORDED_OFFLOADS)}; "
            f"got {record.offload!r:.60}"
        )
    _check_type("vae_tiling", record.vae_tiling, (bool, type(None)))


def _check_init_image(photo: InitImage | None) -> None:
    if photo is None:
        return
    _check_type("init_image", photo, InitImage)
    _check_type("init_image sha256", photo.sha256, str)
    if not _SHA256.fullmatch(photo.sha256):
        raise InvalidSettingError(
            f"the record's init_image sha256 is not one: {photo.sha256!r:.80}"
        )
    for name in ("width", "height"):
        _check_type(f"init_image {name}", getattr(photo, name), int)
        if getattr(photo, name) < 1:
            raise InvalidSettingError(f"the record's init_image {name} must be at least 1")


def _check_type(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidSettingError(f"the record's {name} has the wrong type: {value!r:.60}")


def _init_image(data: Any) -> InitImage:
    if not isinstance(data, dict):
        raise InvalidSettingError(f"the record's init_image is not an object: {data!r:.60}")
    reject_unknown(data, InitImage, where="record's init_image", what="field")
    return InitImage(**data)


def _lora_use(data: dict[str, Any]) -> LoraUse:
    reject_unknown(data, LoraUse, where="record's LoRA", what="field")
    return LoraUse(**data)


def software_versions() -> dict[str, str]:
    """Versions that can change an image, recorded with it."""
    out = {"python": platform.python_version()}
    for dist in ("nano-banana-studio", "torch", "diffusers", "transformers", "peft"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out
