"""A product photo to start from: read safely (wrong types, bombs, huge and damaged files refused
in one line), oriented and on white, recorded by its pixels' digest, and the image-to-image
checks a job gets before it is queued."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from PIL import Image

from nano_banana.errors import InvalidSettingError
from nano_banana.gallery.png import a1111_parameters, parse_a1111, parse_record_json, record_json
from nano_banana.gallery.record import InitImage, checked_record
from nano_banana.generate.jobs import JobKind, check_photo_job
from nano_banana.generate.photo import (
    MAX_PHOTO_MB,
    MAX_PHOTO_SIDE,
    load_photo,
    open_photo,
    photo_facts,
)
from nano_banana.generate.reproduce import photo_differences
from nano_banana.settings import GenerationRequest
from record_fixtures import make_record


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def test_png_jpeg_and_webp_photos_load_as_rgb_with_the_same_pixels_from_a_file(tmp_path):
    red = Image.new("RGB", (40, 30), (200, 10, 10))
    for fmt in ("PNG", "JPEG", "WEBP"):
        photo = load_photo(encoded(red, fmt), f"shot.{fmt.lower()}")
        assert photo.mode == "RGB" and photo.size == (40, 30)
    path = tmp_path / "shot.png"
    path.write_bytes(encoded(red, "PNG"))
    assert photo_facts(open_photo(path)) == photo_facts(red)  # the same pixels, the same digest


def test_the_photo_is_turned_upright_and_its_transparency_is_white():
    tall = Image.new("RGB", (20, 40), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° to view": a phone held upright
    photo = load_photo(encoded(tall, "JPEG", exif=exif), "phone.jpg")
    assert photo.size == (40, 20)
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert load_photo(encoded(clear, "PNG"), "cut-out.png").getpixel((3, 3)) == (255, 255, 255)


def test_a_large_photo_is_scaled_down_to_the_side_limit():
    big = Image.new("RGB", (MAX_PHOTO_SIDE * 2, MAX_PHOTO_SIDE), "green")
    assert load_photo(encoded(big, "PNG"), "big.png").size == (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE // 2)


def bomb_png() -> bytes:
    """A 10000 x 10000 one-bit PNG: a few kB on disk, 100 megapixels decoded."""
    return encoded(Image.new("1", (10_000, 10_000)), "PNG")


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("anim.png", lambda: encoded(Image.new("RGB", (8, 8)), "GIF"), "is a GIF image"),
        ("scan.tif", lambda: encoded(Image.new("RGB", (8, 8)), "TIFF"), "is a TIFF image"),
        ("notes.png", lambda: b"just some text, not pixels", "is not an image"),
        ("empty.jpg", lambda: b"", "is empty"),
        ("bomb.png", bomb_png, "too many pixels"),
        ("cut.jpg", lambda: encoded(Image.new("RGB", (64, 64), "red"), "JPEG")[:300], "cut off"),
        ("huge.png", lambda: b"\0" * (MAX_PHOTO_MB * 2**20 + 1), f"limited to {MAX_PHOTO_MB} MB"),
    ],
)
def test_bad_photos_are_refused_in_one_line_naming_the_file(name, make, fragment):
    with pytest.raises(InvalidSettingError) as refused:
        load_photo(make(), name)
    message = str(refused.value)
    assert fragment in message and f"'{name}'" in message and "\n" not in message


def test_a_missing_photo_file_is_one_line(tmp_path):
    with pytest.raises(InvalidSettingError, match="cannot read the photo"):
        open_photo(tmp_path / "nope.jpg")


REQUEST = GenerationRequest(prompt="a watch", steps=10, strength=0.6)


@pytest.mark.parametrize(
    ("kind", "changes", "fragment"),
    [
        (JobKind.COMPARE, {}, "single image only"),
        (JobKind.SWEEP, {}, "single image only"),
        (JobKind.GENERATE, {"compose": True}, "parts-first board"),
        (JobKind.GENERATE, {"strength": None}, "needs a strength"),
        (JobKind.GENERATE, {"strength": 0.05}, "redraws nothing"),
    ],
)
def test_a_photo_job_is_refused_when_it_cannot_use_the_photo(kind, changes, fragment):
    with pytest.raises(InvalidSettingError, match=fragment):
        check_photo_job(kind, replace(REQUEST, **changes))
    check_photo_job(JobKind.GENERATE, REQUEST)  # a single image at 0.6: fine


def photo_record(strength: float = 0.6):
    record = make_record()
    facts = photo_facts(Image.new("RGB", (30, 20), "red"))
    return replace(record, request=replace(record.request, strength=strength), init_image=facts)


def test_the_record_keeps_the_photo_and_the_infotext_says_denoising_strength():
    record = photo_record()
    assert record.init_image == InitImage(record.init_image.sha256, 30, 20)
    assert parse_record_json(record_json(record)) == record  # round-trips exactly
    assert checked_record(record) == record
    params = parse_a1111(a1111_parameters(record))["params"]
    assert params["Denoising strength"] == "0.6"
    keys = list(params)  # where A1111 writes it: after the model and VAE, before the LoRAs
    assert keys.index("Model") < keys.index("Denoising strength")
    plain = make_record()  # drawn from noise: no such key, even with a board's strength
    board = replace(plain, request=replace(plain.request, compose=True, strength=0.3))
    for other in (plain, board):
        assert "Denoising strength" not in a1111_parameters(other)


@pytest.mark.parametrize(
    ("photo", "fragment"),
    [
        ({"sha256": "xyz", "width": 3, "height": 2}, "sha256"),
        ({"sha256": "a" * 64, "width": 0, "height": 2}, "width must be at least 1"),
        ({"sha256": "a" * 64, "width": 3, "height": 2, "path": "/home/x"}, "path"),
    ],
)
def test_a_damaged_photo_entry_in_a_record_is_refused(photo, fragment):
    data = photo_record().to_dict()
    data["init_image"] = photo
    with pytest.raises(Exception, match=fragment):
        checked_record(parse_record_json(json.dumps(data)))


def test_remaking_a_photos_image_says_when_the_photo_is_missing_or_another():
    record = photo_record()
    same, other = Image.new("RGB", (30, 20), "red"), Image.new("RGB", (30, 20), "blue")
    assert photo_differences(record, same) == []
    (missing,) = photo_differences(record, None)
    assert "started from a 30x20 photo" in missing and "--image" in missing
    (wrong,) = photo_differences(record, other)
    assert "another photo" in wrong
    assert photo_differences(make_record(), None) == []  # drawn from noise: nothing to say
