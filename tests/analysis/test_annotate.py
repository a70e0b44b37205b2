"""Callouts: one per part found, names in reading order, and the input is never touched."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from nano_banana.analysis.callouts import (
    annotate,
    annotate_file,
    assign_names,
    default_output_path,
    parse_part_names,
)
from nano_banana.demo import render_object
from nano_banana.errors import ImageAnalysisError

COLORS = [(200, 40, 40), (40, 90, 200), (30, 150, 60), (230, 150, 30), (120, 60, 170)]


def layout(n: int = 5) -> Image.Image:
    """``n`` squares in one row, well apart, on white."""
    img = Image.new("RGB", (128, 128), "white")
    draw = ImageDraw.Draw(img)
    for i in range(n):
        x = 8 + i * 24
        draw.rectangle((x, 54, x + 15, 69), fill=COLORS[i % len(COLORS)])
    return img


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_callout_per_part_each_pointing_at_its_part():
    result = annotate(layout(5), ["a", "b", "c", "d", "e"])
    assert len(result.callouts) == result.report.part_count == 5
    assert [c.number for c in result.callouts] == [1, 2, 3, 4, 5]
    assert [c.name for c in result.callouts] == ["a", "b", "c", "d", "e"]
    scale = 512 / 128
    for callout in result.callouts:
        x0, y0, x1, y1 = (v * scale for v in callout.part.bbox)
        assert x0 <= callout.anchor[0] <= x1 and y0 <= callout.anchor[1] <= y1
        assert not (x0 <= callout.label[0] <= x1 and y0 <= callout.label[1] <= y1)
    # Reading order: parts numbered left to right.
    xs = [c.part.centroid[0] for c in result.callouts]
    assert xs == sorted(xs)


def test_drawn_callouts_are_separate_marks_beside_a_parts_list():
    source = layout(4)
    result = annotate(source, ["strap", "case"])
    out = np.asarray(result.image).astype(int)
    picture = np.asarray(source.resize((512, 512), Image.Resampling.LANCZOS)).astype(int)
    assert result.image.width > 512 and result.image.height >= 512
    changed = np.abs(out[:512, :512] - picture).sum(axis=2) > 60
    # Circle (its number inside), leader line and end dot make one mark per part.
    _, marks = ndimage.label(ndimage.binary_fill_holes(changed), structure=np.ones((3, 3)))
    assert marks == 4
    panel = out[:, 512:]
    assert (panel.sum(axis=2) < 200).any()  # the list's text is drawn
    assert [c.name for c in result.callouts] == ["strap", "case", "part 3", "part 4"]


def test_assembled_object_gets_a_single_callout():
    render = render_object("speaker", "assembled", seed=0)
    assert render.background != "dark grey"
    assert len(annotate(render.image).callouts) == 1


def test_empty_picture_gets_no_callouts_but_an_image():
    result = annotate(Image.new("RGB", (64, 64), "white"), ["x"])
    assert result.callouts == () and result.unused_names == ("x",)
    assert result.image.width > 512


def test_names_are_parsed_and_assigned_in_order():
    assert parse_part_names(" strap, case,, crown ,") == ["strap", "case", "crown"]
    assert parse_part_names(None) == [] and parse_part_names("") == []
    assert assign_names(3, ["a"]) == (["a", "part 2", "part 3"], [])
    assert assign_names(2, ["a", "b", "c", "d"]) == (["a", "b"], ["c", "d"])


def test_too_many_names_warn_and_name_the_unused_ones():
    result = annotate(layout(2), ["strap", "case", "crown"])
    assert result.unused_names == ("crown",)
    assert len(result.warnings) == 1 and "crown" in result.warnings[0]
    assert "2 part(s) found" in result.warnings[0]


def test_annotate_file_writes_a_new_file_and_leaves_the_input_alone(tmp_path):
    source = tmp_path / "layout.png"
    layout(3).save(source)
    before = digest(source)
    out, result = annotate_file(source, names=["a", "b", "c"])
    assert out == default_output_path(source) == tmp_path / "layout_annotated.png"
    assert digest(source) == before
    with Image.open(out) as img:
        assert img.size == result.image.size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.png", "layout_annotated.png"]
    jpeg, _ = annotate_file(source, tmp_path / "copy.jpg")
    with Image.open(jpeg) as img:
        assert img.format == "JPEG"


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_refuses_to_write_over_the_input(tmp_path, spelling):
    source = tmp_path / "layout.png"
    layout(3).save(source)
    before = digest(source)
    out = {"same": source, "dotted": tmp_path / "." / "layout.png", "link": tmp_path / "link.png"}
    if spelling == "link":
        out["link"].symlink_to(source)
    with pytest.raises(ImageAnalysisError, match="is the input image"):
        annotate_file(source, out[spelling])
    assert digest(source) == before


def test_bad_outputs_are_refused_without_leftovers(tmp_path):
    source = tmp_path / "layout.png"
    layout(3).save(source)
    with pytest.raises(ImageAnalysisError, match="image format"):
        annotate_file(source, tmp_path / "out.unknown")
    with pytest.raises(ImageAnalysisError, match="does not exist"):
        annotate_file(source, tmp_path / "missing" / "out.png")
    assert [p.name for p in tmp_path.iterdir()] == ["layout.png"]
