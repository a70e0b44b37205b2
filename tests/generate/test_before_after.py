"""The before/after view: one image over the other, split where a slider says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nano_banana.errors import InvalidSettingError
from nano_banana.generate.sheets import BEFORE_AFTER_SIDE, before_after

RED, BLUE = (220, 30, 30), (30, 60, 220)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


@pytest.mark.parametrize("split", [0.25, 0.5, 0.8])
def test_before_shows_left_of_the_split_and_after_right_of_it(split):
    view = before_after(Image.new("RGB", (128, 128), RED), Image.new("RGB", (128, 128), BLUE),
                        split, labels=("", ""))  # fmt: skip
    assert view.size == (BEFORE_AFTER_SIDE, BEFORE_AFTER_SIDE)  # small images are enlarged
    x = round(split * view.width)
    row = pixels(view)[view.height // 2]
    assert (row[: x - 3] == RED).all() and (row[x + 3 :] == BLUE).all()
    divider = row[x - 1 : x + 2]
    assert (divider.sum(axis=1) < 100).all()  # a thin dark line at the split


def test_the_ends_show_one_image_whole_and_labels_only_where_they_fit():
    before = Image.new("RGB", (512, 512), RED)
    after = Image.new("RGB", (256, 256), BLUE)  # compared at the size of before
    all_after = pixels(before_after(before, after, 0.0, labels=("", "")))
    assert (all_after[:, 3:] == BLUE).all()
    all_before = pixels(before_after(before, after, 1.0, labels=("base", "LoRA")))
    assert (all_before[:, :-3][40:] == RED).all()
    tag = all_before[:40, :200]
    assert (tag.sum(axis=2) < 150).any()  # the "base" tag, top left
    assert (all_before[:40, -200:-3] == RED).all()  # no room for "LoRA": not drawn


def test_a_split_outside_the_picture_is_refused():
    image = Image.new("RGB", (64, 64))
    with pytest.raises(InvalidSettingError, match="from 0 to 1"):
        before_after(image, image, 1.5)
