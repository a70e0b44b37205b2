"""The hashes other tools name a LoRA file by: A1111's infotext, Civitai, kohya's metadata.

* **AutoV2** — the first 10 hex digits of the sha256 of the whole file.
* **AutoV3** — the first 12 hex digits of the sha256 of the tensor data only: the
  bytes after the 8-byte header length and the JSON header. Editing a file's
  metadata leaves it unchanged. A1111 writes it in ``Lora hashes`` and finds a
  pasted LoRA by it; kohya stores the full digest as ``sshs_model_hash``.
* **legacy** — the first 8 hex digits of the sha256 of the 64 KiB at offset 1 MiB,
  the hash A1111 and sd-webui-additional-networks used before these; kohya stores it
  as ``sshs_legacy_hash``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

AUTOV2_DIGITS = 10  # A1111's "Model hash" and Civitai's AutoV2
AUTOV3_DIGITS = 12  # A1111's LoRA "shorthash" and Civitai's AutoV3
LEGACY_OFFSET, LEGACY_LENGTH, LEGACY_DIGITS = 0x100000, 0x10000, 8
_BLOCK = 1 << 20  # read 1 MiB at a time: LoRA files reach hundreds of MB


@dataclass(frozen=True)
class FileHashes:
    """Both full digests of one safetensors file, hex."""

    sha256: str  # of the whole file
    data_sha256: str  # of the tensor data after the header (the full AutoV3 digest)

    @property
    def autov2(self) -> str:
        return autov2(self.sha256)

    @property
    def autov3(self) -> str:
        return autov3(self.data_sha256)


def autov2(sha256: str) -> str:
    """Civitai's AutoV2 of a file, from its whole-file sha256."""
    return sha256[:AUTOV2_DIGITS]


def autov3(data_sha256: str) -> str:
    """A1111's LoRA short hash (Civitai's AutoV3), from the sha256 of its tensor data."""
    return data_sha256[:AUTOV3_DIGITS]


def file_hashes(path: str | Path) -> FileHashes:
    """The whole-file and tensor-data sha256 of a safetensors file, in one read.

    The file's framing must already be checked (``safefile.check_safetensors``);
    the header length is taken from its first 8 bytes as safetensors defines it.
    """
    whole, data = hashlib.sha256(), hashlib.sha256()
    with Path(path).open("rb") as f:
        head = f.read(8)
        whole.update(head)
        (header_len,) = struct.unpack("<Q", head)
        skip = header_len  # header bytes: hashed into the whole-file digest only
        while block := f.read(_BLOCK):
            whole.update(block)
            if skip >= len(block):
                skip -= len(block)
                continue
            data.update(block[skip:])
            skip = 0
    return FileHashes(whole.hexdigest(), data.hexdigest())


def safetensors_bytes_hashes(blob: bytes) -> tuple[str, str]:
    """(full AutoV3 digest, legacy hash) of a serialized safetensors file held in memory."""
    (header_len,) = struct.unpack("<Q", blob[:8])
    data = hashlib.sha256(memoryview(blob)[8 + header_len :]).hexdigest()
    window = memoryview(blob)[LEGACY_OFFSET : LEGACY_OFFSET + LEGACY_LENGTH]
    return data, hashlib.sha256(window).hexdigest()[:LEGACY_DIGITS]
