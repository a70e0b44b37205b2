"""A product photo to start an image from (image to image): read safely, oriented, in RGB.

The studio's "Start from a photo" upload and ``generate --image`` both read the
photo here, so a file gives the same pixels (and the record the same digest,
``engine.photo_facts``) whichever way it came in. What is refused, in one line
naming the file: anything but PNG, JPEG or WebP (judged by the bytes, not the
name), files over ``MAX_PHOTO_MB``, images over Pillow's decompression-bomb
limit (checked from the header, before any pixel is decoded), and cut-off or
damaged files. The checks of image-to-image settings live here too, importable
without torch (the command line checks them before loading a model).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InvalidSettingError
from ..gallery.record import InitImage
from ..settings import GenerationRequest

PHOTO_FORMATS = ("PNG", "JPEG", "WEBP")  # Pillow's names: what a browser shows and a camera makes
# A 24-megapixel phone JPEG is under 15 MB and a 12 MP PNG some 25 MB; a larger file is a
# raw scan or not a photo, and every byte of it sits in the web process's memory.
MAX_PHOTO_MB = 30
# Pillow's decompression-bomb limit (about 89 megapixels): decoding more takes gigabytes.
MAX_PHOTO_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# The photo is redrawn at the output size (SDXL: about 1024 px); a larger copy would only be
# pickled to a worker with every job of a batch. 2048 keeps detail for outputs up to 2048.
MAX_PHOTO_SIDE = 2048
PHOTO_NOT_FOR_BOARDS = (
    "a parts-first board is drawn from its parts list, not from a photo; "
    "turn the board off to start from the photo"
)


def load_photo(data: bytes, name: str) -> Image.Image:
    """``data`` (the file ``name``) as an RGB photo, oriented by its EXIF tag, transparency on
    white, at most ``MAX_PHOTO_SIDE`` pixels a side; ``InvalidSettingError`` if refused."""
    if len(data) > MAX_PHOTO_MB * 2**20:
        raise InvalidSettingError(_too_big(name, len(data)))
    if not data:
        raise InvalidSettingError(f"'{name}' is empty; choose a PNG, JPEG or WebP photo")
    image = _open(data, name)
    try:
        image.load()
        image = _on_white(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidSettingError(f"'{name}' is cut off or damaged ({_short(exc)})") from None
    if max(image.size) > MAX_PHOTO_SIDE:
        image.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.LANCZOS)
    return image


def open_photo(path: str | Path) -> Image.Image:
    """The photo file at ``path`` (``load_photo``'s checks), or a one-line error naming it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PHOTO_MB * 2**20:  # refused before it is read into memory
            raise InvalidSettingError(_too_big(str(path), size))
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidSettingError(f"cannot read the photo {path}: {exc.strerror}") from None
    return load_photo(data, str(path))


def _too_big(name: str, size: int) -> str:
    return f"'{name}' is {size / 2**20:.0f} MB; photos are limited to {MAX_PHOTO_MB} MB"


def _open(data: bytes, name: str) -> Image.Image:
    """Open the header only: the format and the pixel count are judged before decoding."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; past the limit is refused too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidSettingError(_bomb_message(name)) from None
    except UnidentifiedImageError:
        raise InvalidSettingError(
            f"'{name}' is not an image; choose a PNG, JPEG or WebP photo"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidSettingError(f"'{name}' is cut off or damaged ({_short(exc)})") from None
    if image.format not in PHOTO_FORMATS:
        raise InvalidSettingError(
            f"'{name}' is a {image.format} image; choose a PNG, JPEG or WebP photo"
        )
    if image.width * image.height > MAX_PHOTO_PIXELS:
        raise InvalidSettingError(_bomb_message(name, image.size))
    return image


def _bomb_message(name: str, size: tuple[int, int] | None = None) -> str:
    pixels = f" ({size[0]}x{size[1]})" if size else ""
    return (
        f"'{name}' has too many pixels{pixels} to decode safely (more than "
        f"{MAX_PHOTO_PIXELS / 1e6:.0f} megapixels); downscale it first"
    )


def _on_white(image: Image.Image) -> Image.Image:
    """RGB; a transparent background becomes white (a product shot's studio backdrop)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


# --- image to image ------------------------------------------------------------------


def check_image_to_image(request: GenerationRequest) -> None:
    """Refuse image-to-image settings that draw nothing: no strength, or too few steps."""
    if request.strength is None:
        raise InvalidSettingError("an input image needs a strength from 0 to 1 (--strength)")
    if image_to_image_steps(request.steps, request.strength) == 0:
        raise InvalidSettingError(
            f"strength {request.strength} x {request.steps} steps redraws nothing; "
            "raise the strength or the steps"
        )


def photo_facts(image: Image.Image) -> InitImage:
    """What a record keeps of an input photo: its size and the sha256 of its RGB pixels."""
    rgb = image.convert("RGB")
    return InitImage(hashlib.sha256(rgb.tobytes()).hexdigest(), rgb.width, rgb.height)


def image_to_image_steps(steps: int, strength: float) -> int:
    """Denoising steps diffusers runs for image to image: the last ``strength`` share of the
    schedule (``StableDiffusionXLImg2ImgPipeline.get_timesteps``)."""
    return min(int(steps * strength), steps)
