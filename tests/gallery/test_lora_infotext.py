"""An image's A1111 text names its LoRAs as A1111 does, and pasting it back re-applies them.

A real generation on the tiny model: the infotext's prompt carries
``<lora:NAME:STRENGTH>`` tags and ``Lora hashes`` the AutoV3 hash of the file;
the pasted prompt, read with our A1111-format parser, makes the same image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.gallery.png import (
    a1111_parameters,
    parse_a1111,
    parse_lora_hashes,
    read_png_text,
    write_png,
)
from nano_banana.generate.engine import Engine
from nano_banana.settings import GenerationRequest, LoraWeight

SMALL = dict(seed=11, width=64, height=64, steps=3, preset="none")


@pytest.fixture(scope="module")
def engine(tiny_sdxl_dir, tiny_lora, tiny_lora_b) -> Engine:
    eng = Engine.load(str(tiny_sdxl_dir), device="cpu")
    eng.add_lora(tiny_lora, name="structure")
    eng.add_lora(tiny_lora_b, name="other")
    return eng


def tensor_sha256(path: Path) -> str:
    """A1111's LoRA hash, by its definition: sha256 of the bytes after 8 + header length."""
    raw = path.read_bytes()
    return hashlib.sha256(raw[8 + int.from_bytes(raw[:8], "little") :]).hexdigest()


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


def test_the_infotext_tags_and_hashes_the_loras(engine, tiny_lora):
    chosen = (LoraWeight("structure", 1.0), LoraWeight("other", 0.5))
    result = engine.generate(
        GenerationRequest(prompt="a watch", lora_scale=0.8, loras=chosen, **SMALL)
    )
    parsed = parse_a1111(a1111_parameters(result.record))

    assert parsed["prompt"] == "a watch <lora:structure:0.8> <lora:other:0.4>"  # strengths
    hashes = parse_lora_hashes(parsed["params"]["Lora hashes"])
    assert hashes["structure"] == tensor_sha256(tiny_lora)[:12]
    assert hashes["structure"] != hashlib.sha256(tiny_lora.read_bytes()).hexdigest()[:12]
    assert result.record.prompt_used == "a watch"  # our record: what the encoders saw


def test_a_pasted_infotext_makes_the_same_image(engine, tmp_path):
    original = engine.generate(
        GenerationRequest(
            prompt="a watch", lora_scale=0.6, loras=(LoraWeight("structure", 1.0),), **SMALL
        )
    )
    path = write_png(original.image, original.record, tmp_path / "made.png")
    parsed = parse_a1111(read_png_text(path)["parameters"])
    params = parsed["params"]
    width, height = map(int, params["Size"].split("x"))

    # What a user pastes: the prompt with its tags, and the settings line's numbers
    pasted = GenerationRequest(
        prompt=parsed["prompt"],
        negative_prompt=parsed["negative"],
        seed=int(params["Seed"]),
        steps=int(params["Steps"]),
        cfg=float(params["CFG scale"]),
        width=width,
        height=height,
        preset="none",
        lora_scale=1.0,  # the tag's weight is the strength A1111 applies
    )
    again = engine.generate(pasted)
    assert [(u.name, u.scale) for u in again.record.loras] == [("structure", pytest.approx(0.6))]
    assert again.record.prompt_used == original.record.prompt_used == "a watch"
    assert np.array_equal(pixels(again), pixels(original))
    # and without the tag the LoRA is not applied: the tags did the work
    bare = engine.generate(replace(pasted, prompt="a watch", loras=()))
    assert np.abs(pixels(bare) - pixels(original)).mean() > 0.5


def test_a_tag_for_a_lora_not_loaded_is_one_line_naming_the_loaded_ones(engine):
    with pytest.raises(
        InvalidSettingError, match=r"names no loaded LoRA 'knolling' \(loaded: structure, other\)"
    ) as err:
        engine.generate(GenerationRequest(prompt="a watch <lora:knolling:1>", **SMALL))
    assert "\n" not in str(err.value)


def test_show_prints_the_civitai_hashes(cli, engine, tiny_lora, tmp_path):
    result = engine.generate(
        GenerationRequest(prompt="a watch", loras=(LoraWeight("structure", 1.0),), **SMALL)
    )
    path = write_png(result.image, result.record, tmp_path / "shown.png")
    autov2 = hashlib.sha256(tiny_lora.read_bytes()).hexdigest()[:10]
    autov3 = tensor_sha256(tiny_lora)[:12]

    code, out, err = cli("show", path)
    assert code == 0, err
    assert f"structure (structure.safetensors): AutoV2 {autov2}, AutoV3 {autov3}" in out

    code, out, _ = cli("show", path, "--json")
    (row,) = json.loads(out)["lora_hashes"]
    assert (row["autov2"], row["autov3"]) == (autov2, autov3)
