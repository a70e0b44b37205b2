"""``dataset check`` finds each kind of bad item, with its path, and shows the buckets."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from nano_banana.training.check import check_dataset
from nano_banana.training.data import DatasetError
from train_fixtures import make_dataset


def png_bytes(size=(64, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, "white" if mode == "RGB" else 0).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def bad_folder(tmp_path):
    data = make_dataset(tmp_path / "data", n=2)  # item00, item01 are good

    def add(name: str, content: bytes, caption: str | None = "a caption"):
        (data / name).write_bytes(content)
        if caption is not None:
            (data / name).with_suffix(".txt").write_text(caption, encoding="utf-8")

    add("undecodable.png", b"<html>404 not found</html>")
    whole = jpeg_bytes()
    add("truncated.jpg", whole[: len(whole) * 2 // 3])  # an interrupted download
    corrupt = bytearray(png_bytes((64, 64)))
    corrupt[60:70] = b"\xff" * 10  # damage the compressed image data, keep the length
    add("corrupt.png", bytes(corrupt))
    # a real decompression bomb: 100 megapixels of 1-bit zeros compress to a few kB
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000), 0).save(bomb, "PNG")
    add("bomb.png", bomb.getvalue())
    add("nocaption.png", png_bytes(), caption=None)
    add("emptycaption.png", png_bytes((64, 65)), caption="  \n")
    add("tiny.png", png_bytes((16, 16)))
    add("item00_copy.png", (data / "item00.png").read_bytes())
    return data


EXPECTED = {
    "undecodable": "undecodable.png",
    "truncated": "truncated.jpg",
    "corrupt": "corrupt.png",
    "decompression bomb": "bomb.png",
    "missing caption": "nocaption.png",
    "empty caption": "emptycaption.png",
    "too small": "tiny.png",
    "duplicate": "item00_copy.png",
}


def test_every_kind_of_bad_item_is_found_with_its_path(bad_folder):
    report = check_dataset(bad_folder, resolution=64)
    found = {p.kind: p.path for p in report.problems}
    assert {k: f"{bad_folder / v}" for k, v in EXPECTED.items()} == found
    assert sorted(i.path.name for i in report.items) == ["item00.png", "item01.png"]
    text = report.format()
    for kind, name in EXPECTED.items():
        assert f"{kind}: 1" in text and str(bad_folder / name) in text
    assert "exact duplicate of" in text and "item00.png" in text
    assert "64x64: 2" in text


def test_refuse_unless_skipping(bad_folder):
    report = check_dataset(bad_folder, resolution=64)
    with pytest.raises(DatasetError, match="8 problem"):
        report.usable_items(skip_bad=False)
    assert len(report.usable_items(skip_bad=True)) == 2
    assert report.summary() == {"images": 2, "skipped": 8, "buckets": {"64x64": 2}}


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no usable images"):
        check_dataset(tmp_path / "empty").usable_items(skip_bad=True)
    with pytest.raises(DatasetError, match="does not exist"):
        check_dataset(tmp_path / "nope")
