"""``nano-banana show`` and ``nano-banana gallery …`` as a user sees them: output and exit code.

Commands run through ``nano_banana.cli.main`` (the console-script entry point),
so user errors arrive as one ``error: …`` line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from cli_helpers import USER_ERROR, assert_user_error
from nano_banana.gallery.png import write_png
from nano_banana.gallery.record import GenerationRecord
from nano_banana.gallery.store import ENV_VAR, Gallery
from record_fixtures import SDXL_LORA
from record_fixtures import make_record as shared_record


def make_record(prompt: str = "a mechanical watch", seed: int = 5, preset: str = "knolling"):
    """An SDXL image's record with one LoRA, as the CLI shows it."""
    return shared_record(
        prompt, seed, preset, "stabilityai/stable-diffusion-xl-base-1.0", (SDXL_LORA,)
    )


def image() -> Image.Image:
    return Image.new("RGB", (8, 8), (10, 20, 30))


@pytest.fixture(autouse=True)
def gallery_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Never touch the real user gallery: every test gets its own through the env var."""
    root = tmp_path / "gallery"
    monkeypatch.setenv(ENV_VAR, str(root))
    return root


# --- show IMAGE.png ---------------------------------------------------------------


def test_show_prints_a1111_parameters_and_our_record(cli, tmp_path: Path) -> None:
    record = make_record("a banana 🍌\nשלום\twith tab")
    path = write_png(image(), record, tmp_path / "ours.png")

    code, out, err = cli("show", path)
    assert code == 0, err
    assert "knolling, a banana 🍌\nשלום\twith tab" in out
    assert "Negative prompt: blurry" in out
    assert "Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 5, Size: 1024x1024" in out
    assert 'Lora hashes: "knolling: abababababab"' in out
    assert '"lora_scale": 0.8' in out

    code, out, _ = cli("show", path, "--json")
    data = json.loads(out)
    assert GenerationRecord.from_dict(data["record"]) == record
    assert data["parsed"]["params"]["Seed"] == "5"


def test_show_prints_the_memory_mode_in_our_record(cli, tmp_path: Path) -> None:
    record = replace(make_record(), offload="model", vae_tiling=True)
    path = write_png(image(), record, tmp_path / "small-gpu.png")
    code, out, err = cli("show", path)
    assert code == 0, err
    parameters, ours = out.split("nano-banana record")
    assert '"offload": "model"' in ours and '"vae_tiling": true' in ours
    assert "offload" not in parameters and "tiling" not in parameters


def test_show_a1111_image_from_another_tool(cli, tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler, Seed: 3")
    path = tmp_path / "a1111.png"
    image().save(path, pnginfo=info)

    code, out, _ = cli("show", path)
    assert code == 0
    assert "a cat" in out and "Steps: 20" in out
    assert "no nano-banana record" in out
    assert json.loads(cli("show", path, "--json")[1])["record"] is None


def test_show_image_without_metadata(cli, tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    image().save(path)
    assert_user_error(cli("show", path), str(path), "no generation settings")


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("<html>not an image</html>"), "not a readable PNG"),
        (lambda p: image().save(p, format="JPEG"), "JPEG image, not a PNG"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
)
def test_show_bad_files(cli, tmp_path: Path, make, fragment: str) -> None:
    path = tmp_path / "bad.png"
    make(path)
    assert_user_error(cli("show", path), str(path), fragment)


@pytest.mark.slow  # a real process through the installed entry point
def test_show_exit_code_through_the_real_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    image().save(path)
    done = subprocess.run(
        [sys.executable, "-c", "from nano_banana.cli import main; main()", "show", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, ENV_VAR: str(tmp_path / "g")},
    )
    assert done.returncode == USER_ERROR
    assert done.stderr.startswith("error: ") and "no generation settings" in done.stderr
    assert "Traceback" not in done.stderr


# --- gallery ------------------------------------------------------------------------


def fill(root: Path) -> list:
    gallery = Gallery.open(root)
    return [
        gallery.save(image(), make_record("a mechanical watch", seed=1)),
        gallery.save(image(), make_record("a camera 📷", seed=2, preset="exploded")),
        gallery.save(image(), make_record("ساعة", seed=3)),
    ]


def test_list_newest_first_and_filters(cli, gallery_root: Path) -> None:
    a, b, c = fill(gallery_root)

    code, out, _ = cli("gallery", "list", "--json")
    assert code == 0
    assert [e["id"] for e in json.loads(out)] == [c.id, b.id, a.id]
    assert [e["id"] for e in json.loads(cli("gallery", "list", "-q", "CAMERA", "--json")[1])] == [
        b.id
    ]
    by_preset = cli("gallery", "list", "--preset", "exploded", "--json")[1]
    assert [e["id"] for e in json.loads(by_preset)] == [b.id]
    code, out, _ = cli("gallery", "list")
    assert code == 0 and "a mechanical watch" in out and "ساعة" in out


def test_gallery_option_overrides_env(cli, tmp_path: Path, gallery_root: Path) -> None:
    other = tmp_path / "other"
    fill(other)
    assert json.loads(cli("gallery", "list", "--json")[1]) == []
    code, out, _ = cli("gallery", "--gallery", other, "list", "--json")
    assert code == 0 and len(json.loads(out)) == 3


def test_gallery_option_that_is_a_file(cli, tmp_path: Path) -> None:
    bad = tmp_path / "file"
    bad.write_text("x")
    assert_user_error(cli("gallery", "--gallery", bad, "list"), "is a file")


def test_gallery_show(cli, gallery_root: Path) -> None:
    a, *_ = fill(gallery_root)
    code, out, _ = cli("gallery", "show", a.id)
    assert code == 0 and str(a.path) in out and '"seed": 1' in out
    data = json.loads(cli("gallery", "show", a.id, "--json")[1])
    assert data["record"] == a.record and data["path"] == str(a.path)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "images/x.png", "999"])
def test_bad_ids_everywhere(cli, gallery_root: Path, tmp_path: Path, bad: str) -> None:
    fill(gallery_root)
    for command in (
        ["show", bad],
        ["delete", bad, "--yes"],
        ["export", bad, "--to", tmp_path / "x"],
    ):
        assert_user_error(cli("gallery", *command), "no gallery image with id")
    assert not (tmp_path / "x").exists()
    assert Gallery.open(gallery_root).count() == 3


def test_delete_asks_and_refuses_without_an_answer(cli, gallery_root: Path) -> None:
    a, b, c = fill(gallery_root)

    assert_user_error(cli("gallery", "delete", a.id), "pass --yes")  # stdin closed
    code, out, _ = cli("gallery", "delete", a.id, stdin="n\n")
    assert "not deleted" in out
    assert a.path.exists() and Gallery.open(gallery_root).count() == 3

    code, out, _ = cli("gallery", "delete", a.id, stdin="y\n")
    assert code == 0 and "deleted" in out and not a.path.exists()
    code, out, _ = cli("gallery", "delete", b.id, "--yes")
    assert code == 0 and not b.path.exists()
    assert [e.id for e in Gallery.open(gallery_root).list()] == [c.id]


def test_export_zip_and_folder(cli, gallery_root: Path, tmp_path: Path) -> None:
    a, b, _ = fill(gallery_root)
    dest = tmp_path / "sel.zip"
    code, out, err = cli("gallery", "export", a.id, b.id, "--to", dest)
    assert code == 0, err
    with zipfile.ZipFile(dest) as archive:
        assert archive.read(a.path.name) == a.path.read_bytes()
    assert_user_error(cli("gallery", "export", a.id, "--to", dest), "already exists")

    code, _, _ = cli("gallery", "export", b.id, "--to", tmp_path / "folder")
    assert code == 0 and (tmp_path / "folder" / b.path.name).read_bytes() == b.path.read_bytes()


def test_repair_after_manual_delete_and_orphan(cli, gallery_root: Path) -> None:
    a, b, c = fill(gallery_root)
    a.path.unlink()
    with sqlite3.connect(gallery_root / "index.sqlite3") as conn:
        conn.execute("DELETE FROM images WHERE id = ?", (b.id,))

    code, out, _ = cli("gallery", "repair", "--grace", "0", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["rows_removed"] == [f"{a.id}: {a.relpath}"]
    assert [line.split(": ")[1] for line in report["files_adopted"]] == [b.relpath]
    code, out, _ = cli("gallery", "repair", "--grace", "0")
    assert code == 0 and "nothing to repair" in out


def test_symlink_escaping_the_gallery_is_refused(cli, gallery_root: Path, tmp_path: Path) -> None:
    a, *_ = fill(gallery_root)
    secret = tmp_path / "secret.png"
    image().save(secret)
    a.path.unlink()
    a.path.symlink_to(secret)

    assert_user_error(
        cli("gallery", "export", a.id, "--to", tmp_path / "leak.zip"), "outside the gallery"
    )
    assert not (tmp_path / "leak.zip").exists()
    code, _, _ = cli("gallery", "delete", a.id, "--yes")
    assert code == 0 and secret.exists()  # the link went, its target stayed
