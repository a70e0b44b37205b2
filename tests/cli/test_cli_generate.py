"""The generate/compare/sweep commands as a user runs them: real main(), exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import invoke
from nano_banana.gallery.png import parse_a1111, read_png_text, read_record
from nano_banana.generate.photo import open_photo, photo_facts
from nano_banana.generate.spec import EngineSpec


def run_cli(args, capsys, monkeypatch):
    """Run ``nano-banana ARGS`` in-process; return (exit code, stdout, stderr)."""
    return invoke(monkeypatch, capsys, args)


@pytest.fixture()
def model_args(tiny_sdxl_dir, tiny_lora, tmp_path, monkeypatch):
    monkeypatch.setenv("NANO_BANANA_GALLERY", str(tmp_path / "gallery"))
    return [
        "--base",
        tiny_sdxl_dir,
        "--lora",
        tiny_lora,
        "--width",
        64,
        "--height",
        64,
        "--steps",
        3,
        "--device",
        "cpu",
    ]


def one_line_error(code, err, expected_code=2):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == expected_code, err
    assert lines and lines[-1].startswith("error: ")
    assert "Traceback" not in err
    return lines[-1]


def test_generate_saves_into_gallery_with_metadata(model_args, capsys, monkeypatch, tmp_path):
    code, out, err = run_cli(
        [
            "generate",
            "a wireless bluetooth speaker",
            "--preset",
            "exploded-view",
            "--seed",
            42,
            *model_args,
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    path = out.strip().splitlines()[-1]
    assert path.startswith(str(tmp_path / "gallery"))
    record = read_record(path)
    assert record.request.seed == 42 and record.request.preset == "exploded-view"
    assert record.prompt_used.startswith(
        "exploded view, component breakdown, a wireless bluetooth speaker"
    )
    parsed = parse_a1111(read_png_text(path)["parameters"])
    assert parsed["params"]["Seed"] == "42" and parsed["params"]["Sampler"] == "Euler a"
    code, out, _ = run_cli(["gallery", "list", "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)[0]["seed"] == 42


def test_from_reproduces_the_image(model_args, capsys, monkeypatch, tmp_path):
    prompt = "a watch \t with ⌚, مرحبا"
    code, out, err = run_cli(
        ["generate", prompt, "--out", tmp_path / "a", *model_args], capsys, monkeypatch
    )
    assert code == 0, err
    first = out.strip().splitlines()[-1]
    assert read_record(first).request.prompt == prompt
    code, out, err = run_cli(
        ["generate", "--from", first, "--out", tmp_path / "b", *model_args[:4]], capsys, monkeypatch
    )
    assert code == 0, err
    second = out.strip().splitlines()[-1]
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))
    assert read_record(second).request == read_record(first).request


def test_empty_prompt_generates_and_round_trips(model_args, capsys, monkeypatch, tmp_path):
    code, out, err = run_cli(
        ["generate", "", "--preset", "none", "--out", tmp_path, "--json", *model_args],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    image = json.loads(out)["images"][0]
    assert read_record(image["path"]).request.prompt == ""


def test_long_prompt_warns_and_records_the_used_prompt(model_args, capsys, monkeypatch, tmp_path):
    long = " ".join(["watch"] * 120)
    code, out, err = run_cli(
        ["generate", long, "--preset", "none", "--out", tmp_path, *model_args], capsys, monkeypatch
    )
    assert code == 0
    assert "warning:" in err and "CLIP reads 75" in err
    record = read_record(out.strip().splitlines()[-1])
    assert record.prompt_truncated and len(record.prompt_used) < len(long)


def test_compare_and_sweep_write_panels_and_sheet(model_args, capsys, monkeypatch, tmp_path):
    code, out, err = run_cli(
        ["compare", "a camera", "--seed", 1, "--out", tmp_path, "--json", *model_args],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    result = json.loads(out)
    base, lora = (read_record(i["path"]) for i in result["images"])
    assert base.request.lora_scale == 0 and lora.request.lora_scale == 0.8
    assert base.request.seed == lora.request.seed == 1
    assert Image.open(result["sheet"]).width > 2 * 64
    code, out, err = run_cli(
        ["sweep", "a camera", "--values", "0,0.6,1.0", "--out", tmp_path, "--json", *model_args],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    scales = [read_record(i["path"]).request.lora_scale for i in json.loads(out)["images"]]
    assert scales == [0.0, 0.6, 1.0]


def test_compare_without_a_lora_fails_before_loading_and_sweep_runs(
    model_args, capsys, monkeypatch, tmp_path
):
    assert model_args[2] == "--lora"
    without_lora = model_args[:2] + model_args[4:]
    with monkeypatch.context() as patch:
        loads = []
        patch.setattr(EngineSpec, "load", lambda spec: loads.append(spec))
        code, _, err = run_cli(["compare", "a camera", *without_lora], capsys, monkeypatch)
    assert "choose a LoRA first (--lora FILE" in one_line_error(code, err) and loads == []
    code, out, err = run_cli(  # a LoRA-scale sweep with no LoRA is allowed on the CLI
        ["sweep", "a camera", "--values", "0,1", "--out", tmp_path, "--json", *without_lora],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert [read_record(i["path"]).loras for i in json.loads(out)["images"]] == [(), ()]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--width", 1001], "width 1001 is not a multiple of 8"),
        (["--height", 0], "height 0 is out of range"),
        (["--steps", 0], "steps 0 is out of range"),
        (["--steps", 100000], "steps 100000 is out of range"),
        (["--cfg", "nan"], "cfg must be a finite number"),
        (["--cfg", -2], "cfg -2.0 is out of range"),
        (["--lora-scale", 3], "lora scale 3.0 is out of range"),
        (["--seed", -1], "seed -1 is out of range"),
        (["--seed", 2**64 + 1], "is out of range"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--device", "cuda:0"], "no CUDA GPU is available"),
    ],
)
def test_bad_settings_fail_in_one_line(model_args, capsys, monkeypatch, extra, message):
    code, _, err = run_cli(["generate", "x", *model_args, *extra], capsys, monkeypatch)
    if extra[0] == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert message in one_line_error(code, err)


def write_lora_like(path, kind):
    """Files users have really been handed under a .safetensors name."""
    if kind == "pickle":
        torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, path)
    elif kind == "html":
        path.write_text("<!DOCTYPE html><html><body>Sign in to download</body></html>")
    elif kind == "lfs":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    elif kind == "truncated":
        header = json.dumps(
            {"a": {"dtype": "F32", "shape": [64], "data_offsets": [0, 256]}}
        ).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 10)
    return path


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("pickle", "lora.safetensors", "pickle"),
        ("pickle", "lora.ckpt", "pickle"),
        ("html", "lora.safetensors", "HTML"),
        ("lfs", "lora.safetensors", "Git LFS pointer"),
        ("truncated", "lora.safetensors", "truncated"),
    ],
)
def test_bad_lora_files_are_refused_by_their_bytes(
    model_args, capsys, monkeypatch, tmp_path, kind, name, message
):
    bad = write_lora_like(tmp_path / name, kind)
    args = [a if a != model_args[3] else bad for a in model_args]
    code, _, err = run_cli(["generate", "x", *args], capsys, monkeypatch)
    line = one_line_error(code, err)
    assert message in line and name in line


def test_missing_and_wrong_base_models(model_args, capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(["generate", "x", "--base", tmp_path / "nowhere"], capsys, monkeypatch)
    assert "not found" in one_line_error(code, err)
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["generate", "x", "--base", tmp_path / "empty"], capsys, monkeypatch)
    assert "not a diffusers model folder" in one_line_error(code, err)
    ckpt = write_lora_like(tmp_path / "model.safetensors", "pickle")
    code, _, err = run_cli(["generate", "x", "--base", ckpt], capsys, monkeypatch)
    assert "pickle" in one_line_error(code, err)


def test_from_an_image_without_settings(model_args, capsys, monkeypatch, tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    code, _, err = run_cli(["generate", "--from", plain, *model_args], capsys, monkeypatch)
    assert "plain.png" in one_line_error(code, err)


def test_help_lists_every_option_with_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one option per line, so defaults are not wrapped
    code, out, _ = run_cli(["generate", "--help"], capsys, monkeypatch)
    assert code == 0
    text = " ".join(out.split())
    for option in (
        "--preset",
        "--base",
        "--vae",
        "--lora",
        "--lora-scale",
        "--negative",
        "--steps",
        "--cfg",
        "--width",
        "--height",
        "--seed",
        "--device",
        "--out",
        "--json",
        "--from",
    ):
        assert option in text
    for default in (
        "0.8",
        "7.5",
        "30",
        "the model's native size",
        "knolling",
        "euler-a",
        "random",
        "the gallery",
        "the built-in demo model",
    ):
        # click shows a described default in parentheses: [default: (0.8)]
        assert re.search(rf"\[default: \(?{re.escape(default)}\)?\]", text), default


def test_usage_errors_are_short_and_non_zero(capsys, monkeypatch):
    code, out, err = run_cli(["generate", "x", "--steps", "many"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err and "Invalid value for '--steps'" in err


def test_generate_image_redraws_a_photo_and_records_it(model_args, capsys, monkeypatch, tmp_path):
    photo = tmp_path / "product.jpg"
    Image.radial_gradient("L").convert("RGB").resize((80, 60)).save(photo)
    args = ["generate", "a watch", "--seed", 3, "--no-server", *model_args]
    code, out, err = run_cli(
        [*args, "--image", photo, "--out", tmp_path / "a"], capsys, monkeypatch
    )
    assert code == 0, err
    path = out.strip().splitlines()[-1]
    record = read_record(path)
    assert record.init_image == photo_facts(open_photo(photo)) and record.init_image.width == 80
    assert record.request.strength == 0.6  # the photo's default strength
    params = parse_a1111(read_png_text(path)["parameters"])["params"]
    assert params["Denoising strength"] == "0.6"
    code, out, err = run_cli([*args, "--out", tmp_path / "b"], capsys, monkeypatch)
    plain = out.strip().splitlines()[-1]
    assert read_record(plain).init_image is None
    assert not np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(plain)))

    # --from of a photo's image: remade from the same photo, or warned that it is not
    code, out, err = run_cli(["generate", "--from", path, "--image", photo, "--out",
                              tmp_path / "c", *model_args[:4]], capsys, monkeypatch)  # fmt: skip
    assert code == 0 and "warning" not in err, err
    again = out.strip().splitlines()[-1]
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(again)))
    code, out, err = run_cli(["generate", "--from", path, "--out", tmp_path / "d",
                              *model_args[:4]], capsys, monkeypatch)  # fmt: skip
    assert code == 0 and "started from a 80x60 photo" in err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--image", "NOTES"], "is not an image"),
        (["--image", "PHOTO", "--compose"], "use one or the other"),
        (["--image", "PHOTO", "--strength", "0.1"], "redraws nothing"),
        (["--image", "MISSING"], "cannot read the photo"),
    ],
)
def test_generate_image_refuses_what_it_cannot_use(
    extra, fragment, model_args, capsys, monkeypatch, tmp_path
):
    (tmp_path / "notes.png").write_text("not a picture")
    Image.new("RGB", (16, 16), "red").save(tmp_path / "photo.png")
    files = {"NOTES": tmp_path / "notes.png", "PHOTO": tmp_path / "photo.png",
             "MISSING": tmp_path / "missing.png"}  # fmt: skip
    extra = [files.get(arg, arg) for arg in extra]
    code, _, err = run_cli(
        ["generate", "a watch", "--no-server", *extra, *model_args], capsys, monkeypatch
    )
    assert fragment in one_line_error(code, err)
