"""Saving images under fresh names, atomically: for ``--out FOLDER`` and for the gallery.

Names are ``<local time>-<tag>-<random>.png``. Each is claimed by an exclusive
link of a complete temp file (``atomic.write_bytes``), so two images
of the same second and seed never overwrite each other, and a crash leaves
either the whole file or nothing.
"""

from __future__ import annotations

import io
import os
import secrets
from datetime import datetime
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..atomic import TEMP_PREFIX, TEMP_SUFFIX, write_bytes
from ..errors import GalleryError
from .png import png_bytes
from .record import GenerationRecord

NAME_ATTEMPTS = 100


def write_unique(data: bytes, folder: Path, tag: str, suffix: str = ".png") -> Path:
    """Write ``data`` into ``folder`` under a new name no other writer can take."""
    for _ in range(NAME_ATTEMPTS):
        path = folder / f"{datetime.now():%Y%m%d-%H%M%S}-{tag}-{secrets.token_hex(4)}{suffix}"
        try:
            return write_bytes(path, data, overwrite=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise GalleryError(f"cannot write {path}: {exc.strerror or exc}") from None
    raise GalleryError(f"could not find a free file name in '{folder}'")


def save_image(image: Image.Image, record: GenerationRecord, folder: Path) -> Path:
    """Save ``image`` with its settings into ``folder`` (created if needed) under a new name."""
    folder = _output_folder(folder)
    return write_unique(png_bytes(image, record), folder, str(record.request.seed))


def save_sheet(sheet: Image.Image, record: GenerationRecord, folder: Path, kind: str) -> Path:
    """A comparison or sweep sheet: the panels' files carry the full settings; the sheet says what it is."""
    info = PngInfo()
    info.add_text("Description", f"nano-banana {kind} sheet; prompt: {record.request.prompt}")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", pnginfo=info)
    return write_unique(buffer.getvalue(), _output_folder(folder), f"{kind}-{record.request.seed}")


def check_output_folder(folder: Path) -> Path:
    """``folder`` created if needed and shown writable by writing (and removing) a temp file,
    so a command fails before its minutes of work, not after them."""
    folder = _output_folder(folder)
    probe = folder / f"{TEMP_PREFIX}write-check.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        probe.unlink()
    except OSError as exc:
        raise GalleryError(f"cannot write into '{folder}': {exc.strerror or exc}") from None
    return folder


def _output_folder(folder: Path) -> Path:
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise GalleryError(f"output folder '{folder}' is a file; give a folder to save images into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GalleryError(
            f"cannot create output folder '{folder}': {exc.strerror or exc}"
        ) from None
    return folder
