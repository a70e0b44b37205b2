"""PNG metadata: our record round-trips exactly; the A1111 text is readable by the A1111 rule."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from nano_banana.atomic import TEMP_PREFIX
from nano_banana.errors import InvalidSettingError, MetadataError
from nano_banana.gallery.png import (
    A1111_KEY,
    A1111_PAIR,
    RECORD_KEY,
    a1111_parameters,
    model_display_name,
    parse_a1111,
    png_bytes,
    read_png_text,
    read_record,
    write_png,
)
from nano_banana.gallery.record import (
    RECORDED_OFFLOADS,
    GenerationRecord,
    LoraUse,
    checked_record,
)
from nano_banana.model.memory import OFFLOAD_CHOICES
from nano_banana.prompt.loratags import find_lora_tags
from nano_banana.settings import GenerationRequest, LoraWeight, Sampler

SHA_A = "a1b2c3d4e5f6" + "0" * 52
SHA_B = "ffeeddccbbaa" + "1" * 52
DATA_A = "0123456789ab" + "2" * 52  # sha256 of knolling's tensor bytes: its AutoV3 is 0123456789ab


def make_record(prompt: str = "a mechanical watch", negative: str = "blurry", **request_kw):
    request = GenerationRequest(prompt=prompt, seed=request_kw.pop("seed", 1234), **request_kw)
    request = request.sized(1024, 1024).validated()  # records always hold the size used
    prompt_used = f"knolling, {prompt}" if prompt else ""
    return GenerationRecord(
        request=request,
        prompt_used=prompt_used,
        negative_used=negative,
        prompt_tokens=7,
        prompt_truncated=False,
        base_model="/models/sd_xl_base_1.0.safetensors",
        base_model_hash="31e35c80fc4829d14",
        loras=(
            LoraUse("knolling", "knolling_v2.safetensors", SHA_A, 1.0, 0.8, DATA_A),
            # recorded before records kept the tensor hash: the whole-file hash stands in
            LoraUse("exploded", "exploded.safetensors", SHA_B, 0.5, 0.4),
        ),
        created="2026-01-02T03:04:05+00:00",
    )


def tiny_image(color=(200, 120, 30)) -> Image.Image:
    return Image.new("RGB", (16, 8), color)


PROMPTS = {
    "empty": "",
    "ascii": "a mechanical watch, exploded view",
    "emoji": "a banana 🍌 split into parts 🔧⚙️",
    "rtl": "שעון מכני מפורק — ساعة ميكانيكية",
    "controls": "line one\nline two\twith tab\n  indented line  ",
    "latin1": "café crème, naïve façade",
    "quotes_and_colons": 'a "quoted" part: with, commas: and colons',
    "looks_like_negative": "x\nNegative prompt: not really",
}


@pytest.mark.parametrize("name", PROMPTS)
def test_record_round_trips_exactly(tmp_path: Path, name: str) -> None:
    record = make_record(PROMPTS[name], negative="tab\there, ünïcode ✓\nsecond line")
    path = write_png(tiny_image(), record, tmp_path / "out.png")

    assert read_record(path) == record
    with Image.open(path) as image:  # the pixels are untouched
        assert image.convert("RGB").getpixel((3, 3)) == (200, 120, 30)


@pytest.mark.parametrize("name", [n for n in PROMPTS if n != "looks_like_negative"])
def test_a1111_text_reads_back_with_the_reader_rule(name: str) -> None:
    record = make_record(PROMPTS[name], negative="soft, blurry")
    parsed = parse_a1111(a1111_parameters(record))

    # A1111's prompt carries the LoRAs as tags; without them it is the prompt we used
    prompt, tags = find_lora_tags(parsed["prompt"])
    assert prompt == record.prompt_used
    # named by file stem, as A1111 names its files (adapter "knolling" is knolling_v2.safetensors)
    assert [(t.name, t.weight) for t in tags] == [("knolling_v2", 0.8), ("exploded", 0.4)]
    assert parsed["negative"] == "soft, blurry"
    params = parsed["params"]
    assert params["Steps"] == "30"
    assert params["Sampler"] == "Euler a"
    assert params["CFG scale"] == "7.5"
    assert params["Seed"] == "1234"
    assert params["Size"] == "1024x1024"
    assert params["Model"] == "sd_xl_base_1.0"
    assert params["Model hash"] == "31e35c80fc"
    assert params["Lora hashes"] == "knolling_v2: 0123456789ab, exploded: ffeeddccbbaa"
    assert params["Lora weights"] == "knolling_v2: 0.8, exploded: 0.4"
    assert params["Version"].startswith("nano-banana")


def test_settings_line_matches_the_reference_pattern() -> None:
    """png-metadata.md: the last line counts if >= 3 pairs match the pattern; every pair should."""
    last = a1111_parameters(make_record()).split("\n")[-1]
    pairs = A1111_PAIR.findall(last)
    assert [key for key, _ in pairs] == [
        "Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model",
        "Lora hashes", "Lora weights", "Preset", "Version",
    ]  # fmt: skip


def test_empty_values_are_left_out() -> None:
    record = make_record(prompt="", negative="")
    record = GenerationRecord(**{**record.__dict__, "loras": (), "base_model_hash": None})
    text = a1111_parameters(record)

    assert "Negative prompt" not in text
    assert "Lora" not in text and "Model hash" not in text
    assert parse_a1111(text)["params"]["Seed"] == "1234"
    assert parse_a1111(text)["prompt"] == ""


def test_values_with_separators_are_json_quoted() -> None:
    record = make_record()
    record = GenerationRecord(**{**record.__dict__, "base_model": "C:\\models\\my, model.ckpt"})
    params = parse_a1111(a1111_parameters(record))["params"]
    assert params["Model"] == "my, model"
    assert params["Steps"] == "30"  # the quoted comma did not split the line


def test_sampler_uses_a1111_names() -> None:
    for sampler in Sampler:
        params = parse_a1111(a1111_parameters(make_record(sampler=sampler)))["params"]
        assert params["Sampler"] == sampler.a1111_name


def test_model_display_name_hides_folders() -> None:
    assert model_display_name("stabilityai/stable-diffusion-xl-base-1.0") == (
        "stable-diffusion-xl-base-1.0"
    )
    assert model_display_name("/home/me/sdxl.safetensors") == "sdxl"
    assert model_display_name("D:\\models\\juggernaut.SAFETENSORS") == "juggernaut"


def test_non_latin1_text_goes_to_itxt_and_is_read_back(tmp_path: Path) -> None:
    record = make_record(PROMPTS["emoji"])
    path = write_png(tiny_image(), record, tmp_path / "emoji.png")
    raw = path.read_bytes()
    assert b"iTXt" in raw  # Pillow's rule: text that is not latin-1 becomes UTF-8 iTXt
    chunks = read_png_text(path)
    assert find_lora_tags(parse_a1111(chunks[A1111_KEY])["prompt"])[0] == record.prompt_used
    assert json.loads(chunks[RECORD_KEY])["request"]["prompt"] == PROMPTS["emoji"]


def test_loras_in_request_round_trip(tmp_path: Path) -> None:
    record = make_record(loras=(LoraWeight("knolling", 1.0), LoraWeight("exploded", 0.5)))
    path = write_png(tiny_image(), record, tmp_path / "l.png")
    back = read_record(path)
    assert back.request.loras == (LoraWeight("knolling", 1.0), LoraWeight("exploded", 0.5))
    assert back.loras[0].sha256 == SHA_A


def test_write_png_never_overwrites_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "same.png"
    write_png(tiny_image((1, 2, 3)), make_record("first"), target)
    with pytest.raises(FileExistsError):
        write_png(tiny_image(), make_record("second"), target)
    assert read_record(target).request.prompt == "first"

    write_png(tiny_image(), make_record("second"), target, overwrite=True)
    assert read_record(target).request.prompt == "second"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_failed_encode_leaves_no_file(tmp_path: Path) -> None:
    class Broken:
        def save(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_png(Broken(), make_record(), tmp_path / "x.png")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_png_bytes_equal_file_bytes(tmp_path: Path) -> None:
    record = make_record()
    path = write_png(tiny_image(), record, tmp_path / "b.png")
    assert path.read_bytes() == png_bytes(tiny_image(), record)


# --- bad inputs ---------------------------------------------------------------


def test_image_without_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    tiny_image().save(path)
    with pytest.raises(MetadataError, match="no generation settings") as exc:
        read_record(path)
    assert "\n" not in str(exc.value)


def test_a1111_only_image_says_so(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    path = tmp_path / "a1111.png"
    tiny_image().save(path, pnginfo=info)
    with pytest.raises(MetadataError, match="AUTOMATIC1111 'parameters'"):
        read_record(path)
    assert read_png_text(path)["parameters"].startswith("a cat")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a readable PNG"),
        (b"<html>404</html>", "not a readable PNG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a readable PNG"),
    ],
)
def test_broken_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(MetadataError, match=message):
        read_record(path)


def test_jpeg_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"  # the name lies; the bytes decide
    tiny_image().save(path, format="JPEG")
    with pytest.raises(MetadataError, match="JPEG image, not a PNG"):
        read_record(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="does not exist"):
        read_record(tmp_path / "nope.png")
    with pytest.raises(MetadataError, match="is a folder"):
        read_record(tmp_path)


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ("{not json", "damaged nano_banana record"),
        ("[1, 2]", "damaged nano_banana record"),
        ('{"request": {"prompt": "x", "bogus": 1}}', "damaged nano_banana record"),
        ('{"format": 99, "request": {}}', "newer nano-banana"),
    ],
)
def test_damaged_record_chunk(tmp_path: Path, chunk: str, message: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(RECORD_KEY, chunk)
    path = tmp_path / "damaged.png"
    tiny_image().save(path, pnginfo=info)
    with pytest.raises(MetadataError, match=message):
        read_record(path)


# --- the memory mode (offload, VAE tiling) ------------------------------------------


def test_the_memory_mode_round_trips_in_our_record_only(tmp_path: Path) -> None:
    record = replace(make_record(), offload="sequential", vae_tiling=True)
    path = write_png(tiny_image(), record, tmp_path / "out.png")
    assert read_record(path) == record
    # A1111's text stays A1111's: the same with or without the memory mode
    assert read_png_text(path)[A1111_KEY] == a1111_parameters(make_record())


def test_a_record_from_before_the_memory_mode_still_loads(tmp_path: Path) -> None:
    old = make_record().to_dict()
    del old["offload"], old["vae_tiling"]
    info = PngImagePlugin.PngInfo()
    info.add_text(RECORD_KEY, json.dumps(old))
    path = tmp_path / "old.png"
    tiny_image().save(path, pnginfo=info)
    record = read_record(path)
    assert (record.offload, record.vae_tiling) == (None, None)  # not known, not guessed
    assert checked_record(record) == record


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"offload": "auto"}, "offload must be one of none, model, sequential; got 'auto'"),
        ({"offload": 1}, "offload must be one of"),
        ({"vae_tiling": "on"}, "vae_tiling has the wrong type"),
    ],
)
def test_a_memory_mode_no_engine_applies_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(InvalidSettingError, match=message):
        checked_record(replace(make_record(), **changes))


def test_the_recorded_offloads_are_the_resolved_choices() -> None:
    assert set(RECORDED_OFFLOADS) == set(OFFLOAD_CHOICES) - {"auto"}
