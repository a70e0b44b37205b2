"""Hostile and broken input from the outside: foreign PNGs, odd prompts, bad places to write.

Each case is one the reliability audit (issue 15) found: text that rich read as markup,
terminal controls printed verbatim, unbounded prompts, OS errors as tracebacks. Every one
must end in a result or in one ``error: …`` line, and checks that need no model must
fail before the model loads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from cli_helpers import assert_user_error
from nano_banana.demo.assets import demo_lora_path
from nano_banana.gallery.png import write_png
from nano_banana.gallery.record import LoraUse
from nano_banana.gallery.store import ENV_VAR, Gallery
from nano_banana.generate.engine import Engine
from nano_banana.generate.spec import EngineSpec
from record_fixtures import make_record

FAST = ("--steps", "2")  # the demo model; two steps are enough to make and save an image
# A title change (OSC 0), a screen clear (CSI 2J), an 8-bit CSI, a hidden hyperlink (OSC 8).
CONTROLS = "\x1b]0;pwned\x07 \x1b[2J \x9b31m \x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"


@pytest.fixture(autouse=True)
def gallery_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "gallery"
    monkeypatch.setenv(ENV_VAR, str(root))
    return root


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records every model load; the test fails the command before one happens."""
    calls: list = []
    monkeypatch.setattr(EngineSpec, "load", lambda spec: calls.append(spec))
    return calls


def png_with_text(path: Path, zip_chunks: bool = False, **chunks: str) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value, zip=zip_chunks)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def no_raw_controls(text: str) -> bool:
    return not any(ch in text for ch in "\x1b\x07\x9b")


def pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


# --- 3. rich markup in data ----------------------------------------------------------


def test_markup_in_a_prompt_is_printed_as_text_and_the_image_saved_once(cli, tmp_path):
    prompt = "a watch [/] [red:blue:0.5] [b]x[/b]"
    code, out, err = cli("generate", prompt, "--preset", "none", *FAST, "--out", tmp_path)
    assert code == 0, err
    assert f"prompt: {prompt}" in err  # opening tags do not vanish either
    assert pngs(tmp_path) == [Path(out.strip())]


def test_markup_in_a_records_model_and_lora_names_is_printed_as_text(cli, tmp_path):
    lora = LoraUse("odd", "[red]style[/b].safetensors", "ab" * 32, 1.0, 0.8)
    record = make_record(base_model="[/]model", loras=(lora,))
    source = write_png(Image.new("RGB", (8, 8)), record, tmp_path / "foreign.png")
    out_dir = tmp_path / "out"
    code, _, err = cli("generate", "--from", source, *FAST, "--width", 128, "--height", 128,
                       "--out", out_dir)  # fmt: skip
    assert code == 0, err
    assert "'[/]model'" in err and "[red]style[/b].safetensors" in err
    assert len(pngs(out_dir)) == 1


def test_gallery_list_shows_a_preset_name_with_markup_as_text(cli, gallery_root):
    Gallery.open(gallery_root).save(Image.new("RGB", (8, 8)), make_record(preset="[/]odd"))
    code, out, err = cli("gallery", "list")
    assert code == 0, err
    assert "[/]odd" in out


# --- 4. terminal controls from foreign files -----------------------------------------------


def test_show_makes_terminal_controls_visible(cli, tmp_path):
    parameters = f"a cat {CONTROLS}\nSteps: 20, Sampler: Euler, Seed: 3"
    path = png_with_text(tmp_path / "foreign.png", parameters=parameters, Comment=CONTROLS)
    code, out, err = cli("show", path)
    assert code == 0, err
    assert no_raw_controls(out), out
    assert "\\x1b]0;pwned\\x07" in out and "\\x9b31m" in out and "Steps: 20" in out

    code, out, err = cli("show", path, "--json")
    assert code == 0, err
    assert no_raw_controls(out)
    assert json.loads(out)["parameters"] == parameters  # escaped, not changed


def test_an_error_quoting_a_file_makes_its_controls_visible(cli, tmp_path, loads):
    record = make_record(preset="\x1b[2Jgone")
    source = write_png(Image.new("RGB", (8, 8)), record, tmp_path / "foreign.png")
    result = cli("generate", "--from", source)
    assert_user_error(result, "unknown preset '\\x1b[2Jgone'")
    assert no_raw_controls(result[2]) and loads == []


# --- 5. prompt length ------------------------------------------------------------------------


def test_a_prompt_over_the_limit_is_refused_before_loading(cli, tmp_path, loads):
    long = "w" * 10_001  # one over settings.MAX_PROMPT_CHARS
    assert_user_error(cli("generate", long), "prompt is 10,001 characters long")
    record = make_record().to_dict()
    record["request"]["prompt"] = long  # another tool's record: nothing checked it
    source = png_with_text(tmp_path / "long.png", nano_banana=json.dumps(record))
    assert_user_error(cli("generate", "--from", source), "prompt is 10,001 characters long")
    assert loads == []


def test_a_huge_record_is_not_read(cli, tmp_path, loads):
    record = make_record().to_dict()
    record["request"]["prompt"] = "w" * 2_000_000
    path = png_with_text(tmp_path / "huge.png", nano_banana=json.dumps(record))
    assert_user_error(cli("generate", "--from", path), "refusing to read it")
    assert loads == []


# --- 8. files that break readers --------------------------------------------------------


def ztxt_bomb(path: Path) -> Path:
    """A compressed text chunk that inflates past Pillow's limit (a few kB on disk)."""
    return png_with_text(path, zip_chunks=True, parameters="a" * 3_000_000)


def deep_record(path: Path) -> Path:
    return png_with_text(path, nano_banana="[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("make", [ztxt_bomb, deep_record])
@pytest.mark.parametrize("command", [["show"], ["generate", "--from"]])
def test_show_and_from_refuse_a_text_bomb_in_one_line(cli, tmp_path, loads, make, command):
    path = make(tmp_path / "bomb.png")
    assert_user_error(cli(*command, path), str(path))
    assert loads == []


@pytest.mark.parametrize("command", ["analyze", "annotate"])
def test_a_decompression_bomb_is_one_line(cli, tmp_path, monkeypatch, command):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64), "white").save(path)
    # Pillow's own limit, lowered so that a small file is a "bomb": 4096 pixels is above
    # twice 1500 (an error in Pillow) and between 3000 and twice it (only a warning).
    for limit in (1500, 3000):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        assert_user_error(cli(command, path), "too large to analyse")
    assert not (tmp_path / "bomb_annotated.png").exists()


def test_an_impossible_out_folder_fails_before_loading(cli, tmp_path, loads):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_user_error(cli("generate", "x", "--out", a_file / "sub"), "cannot create")
    assert_user_error(cli("generate", "x", "--out", a_file), "is a file")
    assert_user_error(cli("sweep", "x", "--out", a_file), "is a file")
    assert_user_error(cli("generate", "x", "--gallery", a_file), "is a file")
    assert loads == []


def test_an_unwritable_out_folder_fails_before_loading(cli, tmp_path, loads, monkeypatch):
    real_open = os.open

    def read_only(path, *args, **kwargs):  # a read-only folder (chmod does not stop root)
        if Path(path).parent == tmp_path / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    (tmp_path / "locked").mkdir()
    result = cli("generate", "x", "--out", tmp_path / "locked")
    assert_user_error(result, "cannot write into", "Permission denied")
    assert loads == []


def test_export_onto_a_folder_is_one_line(cli, gallery_root, tmp_path):
    entry = Gallery.open(gallery_root).save(Image.new("RGB", (8, 8)), make_record())
    (tmp_path / "images.zip").mkdir()
    assert_user_error(
        cli("gallery", "export", entry.id, "--to", tmp_path / "images.zip", "--overwrite"),
        "is a folder",
    )
    (tmp_path / "dest" / entry.path.name).mkdir(parents=True)
    for extra in ((), ("--overwrite",)):
        result = cli("gallery", "export", entry.id, "--to", tmp_path / "dest", *extra)
        assert_user_error(result, entry.path.name)


def test_a_lone_surrogate_argument_is_one_line(cli, tmp_path, loads):
    # what Python makes of the byte 0xff on a UTF-8 command line
    assert_user_error(cli("generate", "\udcff"), "not valid UTF-8")
    assert_user_error(cli("gallery", "list", "--query", "\udcff"), "not valid UTF-8")
    assert loads == []


def test_a_batch_file_in_latin_1_is_one_line(cli, tmp_path, loads):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes("a café\n".encode("latin-1"))
    assert_user_error(cli("batch", prompts), "not UTF-8")
    assert loads == []


def test_a_broken_user_preset_fails_only_when_asked_for(cli, tmp_path, monkeypatch):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "latin.toml").write_bytes('template = "caf\xe9 {prompt}"\n'.encode("latin-1"))
    (folder / "folder.toml").mkdir()
    (folder / "Bad Name.toml").write_text('template = "{prompt}"\n')
    monkeypatch.setenv("NANO_BANANA_PRESETS", str(folder))

    code, out, err = cli("generate", "x", "--preset", "none", *FAST, "--out", tmp_path / "out")
    assert code == 0, err
    assert_user_error(cli("generate", "x", "--preset", "latin"), "latin.toml", "UTF-8")
    code, out, err = cli("presets")
    assert code == 0 and "exploded-view" in out
    assert "latin.toml" in err and "folder.toml" in err and "Bad Name.toml" in err


# --- 9. smaller ones ---------------------------------------------------------------------


def test_a_lora_weight_in_the_file_argument_has_the_scale_bounds(cli, loads):
    result = cli("generate", "x", "--lora", f"{demo_lora_path()}:99")
    assert_user_error(result, "99.0 is out of range")
    assert loads == []


def test_sweep_values_are_capped(cli, loads):
    values = ",".join(str(i) for i in range(65))
    assert_user_error(cli("sweep", "x", "--setting", "seed", "--values", values), "at most 64")
    assert loads == []


def test_sweep_saves_each_image_as_it_is_made(cli, tmp_path, monkeypatch):
    from nano_banana.errors import GenerationError

    real = Engine.generate
    calls = []

    def fail_second(self, request, *args, **kwargs):
        calls.append(request)
        if len(calls) == 2:
            raise GenerationError("out of memory (simulated)")
        return real(self, request, *args, **kwargs)

    monkeypatch.setattr(Engine, "generate", fail_second)
    code, _, err = cli("sweep", "x", "--values", "0,1", *FAST, "--out", tmp_path)
    assert code == 2 and err.strip().splitlines()[-1] == "error: out of memory (simulated)"
    assert len(pngs(tmp_path)) == 1  # the first image survives the failure of the second
