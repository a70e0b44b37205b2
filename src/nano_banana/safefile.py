"""Decide from a file's bytes whether it is a safetensors file we may read.

Model and LoRA files arrive with any name. A ``.safetensors`` name may hide a
pickle (which can run code when loaded), an HTML error page, a Git LFS pointer
or a truncated download. We read the 8-byte header length and the JSON header
and check that the data they describe is all there, before any library sees it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from .errors import UnsafeFileError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


def sniff_kind(head: bytes) -> str:
    """Name what a file looks like from its first bytes, for error messages."""
    stripped = head.lstrip()
    if head[:2] == b"PK":
        return "a zip archive (PyTorch .ckpt/.pt/.bin pickle format)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (.ckpt/.pt/.bin)"
    if stripped[:15].lower().startswith((b"<!doctype", b"<html", b"<?xml")):
        return "an HTML/XML page (probably a failed download or a login page)"
    if stripped.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (the real file was never downloaded; run 'git lfs pull')"
    if not head:
        return "an empty file"
    return "not a safetensors file"


def check_safetensors(path: str | Path, what: str = "file") -> dict:
    """Validate the safetensors framing of ``path`` and return its JSON header.

    Raises ``UnsafeFileError`` naming the file and what it really is.
    """
    path = Path(path)
    if not path.is_file():
        raise UnsafeFileError(f"{what} '{path}' does not exist or is not a file")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UnsafeFileError(f"{what} '{path}' is {sniff_kind(head)}; expected safetensors")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            head += f.read(64)
            kind = sniff_kind(head)
            if kind == "not a safetensors file" and header_len <= MAX_HEADER_BYTES:
                kind = "a truncated safetensors file (download it again)"
            raise UnsafeFileError(f"{what} '{path}' is {kind}; only .safetensors files are loaded")
        raw = f.read(header_len)
    header = _parse_header(raw, path, what, head)
    _check_data_extent(header, size - 8 - header_len, path, what)
    return header


def _parse_header(raw: bytes, path: Path, what: str, head: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnsafeFileError(
            f"{what} '{path}' is {sniff_kind(head + raw[:64])}; only .safetensors files are loaded"
        ) from None
    if not isinstance(header, dict):
        raise UnsafeFileError(f"{what} '{path}' has a malformed safetensors header")
    return header


def _check_data_extent(header: dict, data_size: int, path: Path, what: str) -> None:
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise UnsafeFileError(f"{what} '{path}' has a malformed entry '{name}'") from None
    if end > data_size:
        raise UnsafeFileError(
            f"{what} '{path}' is truncated: its header promises {end} bytes of tensors, "
            f"the file holds {data_size}; download it again"
        )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a whole file, read in 1 MiB blocks (model files are gigabytes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header_metadata(header: dict) -> dict[str, str]:
    """The ``__metadata__`` strings of a header that ``check_safetensors`` returned."""
    return {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
