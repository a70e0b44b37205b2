"""Saving images outside the gallery (``--out FOLDER``): unique names, atomic writes.

Names are ``<UTC time>-<seed>-<random>.png`` and are claimed with an exclusive
create, so two images of the same second and seed never overwrite each other.
The gallery uses the same naming for its own files.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .errors import GalleryError
from .metadata import write_png
from .record import GenerationRecord


def claim_unique_path(folder: Path, tag: str, suffix: str = ".png") -> Path:
    """Create an empty placeholder file with a fresh name in ``folder`` and return its path.

    The placeholder is replaced atomically by the real image; if saving fails
    the caller removes it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = folder / f"{stamp}-{tag}-{secrets.token_hex(3)}{suffix}"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise GalleryError(f"could not find a free file name in '{folder}'")


def save_image(image: Image.Image, record: GenerationRecord, folder: Path) -> Path:
    """Save ``image`` with its settings into ``folder`` under a new unique name."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise GalleryError(f"--out '{folder}' is a file; give a folder to save images into")
    path = claim_unique_path(folder, str(record.request.seed))
    try:
        write_png(image, record, path, overwrite=True)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def save_sheet(sheet: Image.Image, record: GenerationRecord, folder: Path, kind: str) -> Path:
    """A comparison or sweep sheet: the panels' files carry the full settings; the sheet says what it is."""
    path = claim_unique_path(Path(folder), f"{kind}-{record.request.seed}")
    info = PngInfo()
    info.add_text("Description", f"nano-banana {kind} sheet; prompt: {record.request.prompt}")
    tmp = path.with_name(path.name + ".tmp")
    try:
        sheet.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise
    return path
