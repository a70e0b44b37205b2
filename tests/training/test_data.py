"""Dataset discovery, aspect buckets, SDXL size/crop conditioning, captions and batches."""

from __future__ import annotations

import json
import random

import pytest
import torch
from PIL import Image

from nano_banana.training.data import (
    bucket_for,
    build_caption,
    discover_items,
    epoch_batches,
    load_pixels,
    open_image,
    place,
)
from train_fixtures import make_dataset


@pytest.mark.parametrize(
    ("size", "resolution", "upscale", "expected"),
    [
        ((1024, 1024), 1024, False, (1024, 1024)),
        ((3000, 2000), 1024, False, (1216, 832)),  # SDXL's own 3:2 bucket
        ((2000, 3000), 1024, False, (832, 1216)),
        ((4000, 1000), 1024, False, (2048, 512)),
        ((640, 480), 1024, False, (640, 448)),  # no upscaling: at most the image's own area
        ((640, 480), 1024, True, (1152, 832)),
        ((100, 100), 1024, False, (64, 64)),
    ],
)
def test_buckets(size, resolution, upscale, expected):
    w, h = bucket_for(*size, resolution, upscale)
    assert (w, h) == expected
    assert w % 64 == 0 and h % 64 == 0 and w * h <= resolution**2
    if not upscale:
        assert w <= max(64, size[0]) and h <= max(64, size[1])


def test_placement_fills_sdxl_conditioning_from_the_real_size_and_crop():
    p = place(3000, 2000, (1216, 832))
    assert p.resized[0] >= 1216 and p.resized[1] >= 832
    ids = p.time_ids()
    assert ids[:2] == [2000, 3000]  # original (h, w)
    assert ids[2:4] == [p.crop_top, p.crop_left]
    assert ids[4:] == [832, 1216]  # target (h, w)
    # a flip mirrors the crop: the left offset is measured from the other side
    wide = place(200, 100, (64, 64))
    assert (
        wide.crop_left == (128 - 64) // 2
        and wide.time_ids(flipped=True)[3] == 128 - 64 - wide.crop_left
    )


def test_pixels_are_the_crop_and_the_flip_mirrors_them(tmp_path):
    image = Image.new("RGB", (128, 64), "white")
    image.paste((255, 0, 0), (0, 0, 64, 64))  # left half red
    image.save(tmp_path / "x.png")
    p = place(128, 64, (128, 64))
    pixels = load_pixels(tmp_path / "x.png", p)
    assert pixels.shape == (3, 64, 128) and pixels.min() >= -1 and pixels.max() <= 1
    flipped = load_pixels(tmp_path / "x.png", p, flipped=True)
    assert torch.equal(flipped, pixels.flip(-1))
    assert pixels[1, 32, 10] < 0 and pixels[1, 32, 120] > 0.9  # red (no green) left, white right


def test_exif_orientation_and_transparency(tmp_path):
    image = Image.new("RGBA", (80, 40), (0, 0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the image is seen as 40x80
    image.save(tmp_path / "rot.png", exif=exif)
    seen = open_image(tmp_path / "rot.png")
    assert seen.size == (40, 80) and seen.mode == "RGB"
    assert seen.getpixel((5, 5)) == (255, 255, 255)  # transparent parts become white background


def test_captions_trigger_first_and_fixed_under_shuffle():
    caption = "knolling, lens, body, battery, memory card, lens cap"
    assert (
        build_caption(caption, "knolling, flat lay")
        == "knolling, flat lay, lens, body, battery, memory card, lens cap"
    )
    for seed in range(20):
        out = build_caption(caption, "knolling, flat lay", shuffle=True, rng=random.Random(seed))
        tags = out.split(", ")
        assert tags[:2] == ["knolling", "flat lay"] and sorted(tags[2:]) == sorted(
            ["lens", "body", "battery", "memory card", "lens cap"]
        )
    dropped = [build_caption(caption, "t", dropout=0.5, rng=random.Random(s)) for s in range(200)]
    assert 60 < dropped.count("") < 140


def test_metadata_jsonl_and_csv(tmp_path):
    data = make_dataset(tmp_path / "d", n=2)
    for p in data.glob("*.txt"):
        p.unlink()
    rows = [
        {"file_name": "item00.png", "text": "a watch"},
        {"file_name": "../etc/passwd", "text": "x"},
        {"file_name": "gone.png", "caption": "y"},
    ]
    (data / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    items, problems = discover_items(data)
    assert {i.path.name: i.caption for i in items} == {"item00.png": "a watch", "item01.png": None}
    kinds = sorted(p.kind for p in problems)
    assert kinds == ["bad metadata", "bad metadata", "missing image"]
    (data / "metadata.jsonl").unlink()
    (data / "metadata.csv").write_text('file_name,caption\nitem00.png,"a, b"\nitem01.png,c\n')
    items, problems = discover_items(data)
    assert [i.caption for i in items] == ["a, b", "c"] and not problems


def test_batches_one_bucket_each_deterministic_and_sharded():
    buckets = [(64, 64)] * 5 + [(128, 64)] * 3
    a = epoch_batches(buckets, 2, seed=1, epoch=0)
    assert a == epoch_batches(buckets, 2, seed=1, epoch=0)
    assert a != epoch_batches(buckets, 2, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(8))
    assert all(len({buckets[i] for i in b}) == 1 for b in a)
    shards = [epoch_batches(buckets, 2, 1, 0, num_processes=3, process_index=r) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # every process runs the same number of steps
    assert {i for s in shards for b in s for i in b} == set(range(8))
