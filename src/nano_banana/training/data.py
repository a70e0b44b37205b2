"""Training data: find image/caption pairs, read images safely, bucket them, build captions and batches.

A dataset is a folder of images with same-name caption files (``cat.png`` +
``cat.txt``), or a folder with ``metadata.jsonl`` / ``metadata.csv`` whose rows
name a file and its caption. Images are trained at their own aspect ratio: each
goes to a bucket whose sides are multiples of 64 and whose area is at most
resolution² (no upscaling unless asked), and SDXL's size/crop conditioning is
filled from the image's real original size and the crop actually taken.
Everything random here (batch order, flips, caption shuffles) is a pure function
of (seed, epoch, item), so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import NanoBananaError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
CAPTION_COLUMNS = ("text", "caption", "prompt")  # the names Hugging Face imagefolder and others use
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's decompression-bomb limit


class DatasetError(NanoBananaError):
    """The training data cannot be used as it is; the message lists what to fix."""


class ImageProblem(Exception):
    """One image that cannot be trained on; ``kind`` is a short category for the report."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class RawItem:
    """An image file and its caption as found on disk (``caption`` None: none was found)."""

    path: Path
    caption: str | None
    caption_source: str  # where the caption came from (a file, a metadata row), for messages


@dataclass(frozen=True)
class ImageInfo:
    width: int  # after applying the EXIF orientation, i.e. as the image is seen
    height: int
    sha256: str  # of the file's bytes: duplicates and cache keys


@dataclass(frozen=True)
class Placement:
    """How one image becomes a training tensor: resize, then crop to the bucket."""

    original: tuple[int, int]  # (width, height) of the image as seen
    resized: tuple[int, int]  # (width, height) after the resize that covers the bucket
    crop_left: int
    crop_top: int
    bucket: tuple[int, int]  # (width, height) of the training tensor

    def time_ids(self, flipped: bool = False) -> list[int]:
        """SDXL's six size/crop numbers: original (h, w), crop top-left (y, x), target (h, w)."""
        left = self.resized[0] - self.bucket[0] - self.crop_left if flipped else self.crop_left
        ow, oh = self.original
        bw, bh = self.bucket
        return [oh, ow, self.crop_top, left, bh, bw]


@dataclass(frozen=True)
class TrainItem:
    """A checked image ready for training."""

    path: Path
    caption: str
    sha256: str
    placement: Placement

    @property
    def bucket(self) -> tuple[int, int]:
        return self.placement.bucket


# --- discovery --------------------------------------------------------------


def discover_items(
    folder: str | Path, caption_ext: str = ".txt"
) -> tuple[list[RawItem], list[ImageProblem]]:
    """Image/caption pairs of a dataset folder, plus problems with the listing itself."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"dataset folder '{folder}' does not exist or is not a folder")
    images = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    for name in METADATA_FILES:
        if (folder / name).is_file():
            return _items_from_metadata(folder, folder / name, images)
    return [_item_with_caption_file(p, caption_ext) for p in images], []


def _item_with_caption_file(image: Path, caption_ext: str) -> RawItem:
    caption_path = image.with_suffix(caption_ext)
    if not caption_path.is_file():
        return RawItem(image, None, str(caption_path))
    try:
        text = caption_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return RawItem(image, None, f"{caption_path} (not UTF-8 text)")
    return RawItem(image, text.strip(), str(caption_path))


def _items_from_metadata(
    folder: Path, meta: Path, images: list[Path]
) -> tuple[list[RawItem], list[ImageProblem]]:
    rows, problems = _read_metadata_rows(meta)
    items: dict[Path, RawItem] = {}
    root = folder.resolve()
    for line, name, caption in rows:
        path = (folder / name).resolve()
        where = f"{meta.name} line {line}"
        if root not in path.parents:
            problems.append(
                ImageProblem("bad metadata", f"{where}: '{name}' points outside the dataset folder")
            )
        elif not path.is_file():
            problems.append(ImageProblem("missing image", f"{where}: '{name}' does not exist"))
        else:
            items[path] = RawItem(folder / name, caption, where)
    for image in images:  # images in the folder but not in the metadata have no caption
        items.setdefault(image.resolve(), RawItem(image, None, f"{meta.name} (no row for it)"))
    return sorted(items.values(), key=lambda it: str(it.path)), problems


def _read_metadata_rows(meta: Path) -> tuple[list[tuple[int, str, str | None]], list[ImageProblem]]:
    """(line, file name, caption) rows of a metadata.jsonl or metadata.csv file."""
    rows, problems = [], []
    try:
        text = meta.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"'{meta}' is not UTF-8 text") from None
    if meta.suffix == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(
                    ImageProblem("bad metadata", f"{meta.name} line {n}: not JSON ({exc.msg})")
                )
                continue
            records.append((n, record))
    else:
        reader = csv.DictReader(text.splitlines())
        records = [(n, record) for n, record in enumerate(reader, 2)]
    for n, record in records:
        name = record.get("file_name") if isinstance(record, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(ImageProblem("bad metadata", f"{meta.name} line {n}: no 'file_name'"))
            continue
        caption = next((record[c] for c in CAPTION_COLUMNS if isinstance(record.get(c), str)), None)
        rows.append((n, name, caption.strip() if caption is not None else None))
    return rows, problems


# --- images -----------------------------------------------------------------


def inspect_image(path: Path, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Fully decode an image once to prove it is usable; raise ``ImageProblem`` if not."""
    data = path.read_bytes()
    image = open_image(path, max_pixels)
    return ImageInfo(image.width, image.height, hashlib.sha256(data).hexdigest())


def open_image(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, size-check (before decoding), decode and orient an image as RGB on white."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageProblem(
            "decompression bomb", f"{path}: too many pixels to decode safely"
        ) from None
    except UnidentifiedImageError:
        raise ImageProblem("undecodable", f"{path}: not an image Pillow can read") from None
    except OSError as exc:  # e.g. a download cut off inside the header
        kind = "truncated" if "truncat" in str(exc).lower() else "unreadable"
        raise ImageProblem(kind, f"{path}: {kind} image file ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageProblem(
            "decompression bomb",
            f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
            f"{max_pixels / 1e6:.0f} MP limit; downscale it first",
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        kind = "truncated" if "truncat" in str(exc).lower() else "corrupt"
        raise ImageProblem(kind, f"{path}: {kind} image data ({exc})") from None
    return _to_rgb(ImageOps.exif_transpose(image))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # knolling backgrounds are white
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


# --- buckets ----------------------------------------------------------------


def bucket_for(
    width: int, height: int, resolution: int, upscale: bool = False, step: int = 64
) -> tuple[int, int]:
    """The (width, height) bucket of an image: its aspect ratio, sides multiples of ``step``,
    area at most resolution² and, without ``upscale``, at most the image's own area."""
    area = resolution * resolution
    if not upscale:
        area = min(area, width * height)
    aspect = width / height
    bw = max(step, int(math.sqrt(area * aspect) // step) * step)
    bh = max(step, int(math.sqrt(area / aspect) // step) * step)
    return bw, bh


def place(width: int, height: int, bucket: tuple[int, int]) -> Placement:
    """Resize to cover the bucket, keeping the aspect ratio, and take the centre crop."""
    bw, bh = bucket
    scale = max(bw / width, bh / height)
    rw, rh = max(bw, round(width * scale)), max(bh, round(height * scale))
    return Placement((width, height), (rw, rh), (rw - bw) // 2, (rh - bh) // 2, bucket)


def load_pixels(path: Path, placement: Placement, flipped: bool = False) -> torch.Tensor:
    """The training tensor of an image: (3, H, W) in [-1, 1]."""
    image = open_image(path)
    if image.size != placement.original:
        raise ImageProblem("changed", f"{path}: the image changed on disk since it was checked")
    image = image.resize(placement.resized, Image.Resampling.LANCZOS)
    bw, bh = placement.bucket
    image = image.crop(
        (placement.crop_left, placement.crop_top, placement.crop_left + bw, placement.crop_top + bh)
    )
    if flipped:
        image = ImageOps.mirror(image)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


# --- captions ---------------------------------------------------------------


def split_tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_caption(
    caption: str,
    trigger: str,
    *,
    shuffle: bool = False,
    dropout: float = 0.0,
    rng: random.Random | None = None,
) -> str:
    """Trigger words first, then the caption's tags (shuffled if asked; the trigger never moves).

    With probability ``dropout`` the whole caption is empty: the model also learns the
    unconditional case, which classifier-free guidance relies on.
    """
    rng = rng or random.Random(0)
    if dropout and rng.random() < dropout:
        return ""
    trigger_tags = split_tags(trigger)
    tags = [t for t in split_tags(caption) if t not in trigger_tags]
    if shuffle:
        rng.shuffle(tags)
    return ", ".join(trigger_tags + tags)


def item_rng(seed: int, epoch: int, index: int) -> random.Random:
    """Per-item randomness (flip, caption shuffle, dropout) as a pure function of its position."""
    return random.Random(f"{seed}/{epoch}/{index}")


# --- batches ----------------------------------------------------------------


def epoch_batches(
    buckets: list[tuple[int, int]],
    batch_size: int,
    seed: int,
    epoch: int,
    num_processes: int = 1,
    process_index: int = 0,
) -> list[list[int]]:
    """This process's batches of one epoch: item indices, each batch from one bucket.

    Items are shuffled within their bucket, cut into batches, and the batches shuffled;
    with several processes each takes every N-th batch (the list is padded so all
    processes run the same number of steps).
    """
    rng = random.Random(f"batches/{seed}/{epoch}")
    by_bucket: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, bucket in enumerate(buckets):
        by_bucket[bucket].append(index)
    batches = []
    for bucket in sorted(by_bucket):
        indices = by_bucket[bucket]
        rng.shuffle(indices)
        batches += [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    rng.shuffle(batches)
    original = len(batches)
    while len(batches) % num_processes:
        batches.append(batches[len(batches) % original])
    return batches[process_index::num_processes]
