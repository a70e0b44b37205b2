"""Gallery: saves never collide or half-write, repair reconciles, paths stay inside."""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from nano_banana.atomic import TEMP_PREFIX, TEMP_SUFFIX
from nano_banana.errors import GalleryError
from nano_banana.gallery.png import read_record
from nano_banana.gallery.store import ENV_VAR, INDEX_NAME, Gallery, default_root
from record_fixtures import SDXL_LORA, make_record


def image(value: int = 0) -> Image.Image:
    return Image.new("RGB", (8, 8), (value % 256, 0, 0))


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    return Gallery.open(tmp_path / "gallery")


def files_in(gallery: Gallery) -> list[Path]:
    return sorted(p for p in gallery.images_dir.rglob("*") if p.is_file())


def age(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


# --- location -------------------------------------------------------------------


def test_root_from_env_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    assert default_root() == tmp_path / "from-env"
    assert Gallery.open().root == (tmp_path / "from-env").resolve()
    assert Gallery.open(tmp_path / "explicit").root == (tmp_path / "explicit").resolve()
    monkeypatch.delenv(ENV_VAR)
    assert default_root().name == "gallery" and "nano-banana" in str(default_root())


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(GalleryError, match="is a file"):
        Gallery.open(tmp_path / "f")


def test_index_uses_wal_and_schema_version(gallery: Gallery) -> None:
    with sqlite3.connect(gallery.index_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == 1


def test_newer_schema_is_refused(gallery: Gallery) -> None:
    with sqlite3.connect(gallery.index_path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(GalleryError, match="newer nano-banana"):
        Gallery.open(gallery.root)


def test_damaged_index_says_how_to_recover(tmp_path: Path) -> None:
    root = tmp_path / "g"
    (root / "images").mkdir(parents=True)
    (root / INDEX_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="gallery repair"):
        Gallery.open(root)


# --- save, get, list ---------------------------------------------------------------


def test_save_stores_file_and_row(gallery: Gallery) -> None:
    record = make_record("a camera 📷")
    entry = gallery.save(image(), record)

    assert entry.path.is_file()
    assert entry.path.parent.parent == gallery.images_dir  # images/YYYY-MM-DD/name.png
    assert entry.path.name.endswith(".png") and "-7-" in entry.path.name
    assert read_record(entry.path) == record
    assert entry.generation_record() == record
    assert (entry.prompt, entry.preset, entry.seed) == ("a camera 📷", "knolling", 7)
    assert gallery.get(entry.id) == entry
    assert gallery.get(str(entry.id)) == entry
    assert gallery.read_bytes(entry.id) == entry.path.read_bytes()


def test_same_second_same_seed_never_collide(gallery: Gallery) -> None:
    entries = [gallery.save(image(i), make_record(seed=42)) for i in range(10)]
    assert len({e.path for e in entries}) == 10
    assert len({e.id for e in entries}) == 10
    assert len(files_in(gallery)) == 10
    for i, entry in enumerate(entries):  # nothing was overwritten
        with Image.open(entry.path) as img:
            assert img.getpixel((0, 0))[0] == i


def test_concurrent_saves_from_threads(gallery: Gallery) -> None:
    errors: list[BaseException] = []
    saved = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(6):
                entry = gallery.save(image(n * 10 + i), make_record(f"thread {n}", seed=1))
                with lock:
                    saved.append(entry)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(saved) == 36
    assert len({e.path for e in saved}) == 36 and len({e.id for e in saved}) == 36
    assert gallery.count() == 36 and len(files_in(gallery)) == 36
    assert gallery.repair(grace_s=0).changed is False


def test_concurrent_saves_from_processes(gallery: Gallery) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
        from record_fixtures import make_record
        from test_gallery import image
        from nano_banana.gallery import Gallery
        g = Gallery.open({str(gallery.root)!r})
        for i in range(5):
            g.save(image(i), make_record("process " + sys.argv[1], seed=3))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(n)], stderr=subprocess.PIPE)
        for n in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert gallery.count() == 15 and len(files_in(gallery)) == 15
    assert gallery.repair(grace_s=0).changed is False


def test_list_newest_first_search_and_filter(gallery: Gallery) -> None:
    a = gallery.save(image(), make_record("Mechanical WATCH"))
    b = gallery.save(image(), make_record("a camera", preset="exploded"))
    c = gallery.save(image(), make_record("100% cotton_shirt"))
    d = gallery.save(image(), make_record("ÉCLAIR au café"))

    assert [e.id for e in gallery.list()] == [d.id, c.id, b.id, a.id]
    assert [e.id for e in gallery.list(query="watch")] == [a.id]
    assert [e.id for e in gallery.list(query="éclair")] == [d.id]  # Unicode case-insensitive
    assert [e.id for e in gallery.list(query="%")] == [c.id]  # LIKE wildcards are literal
    assert [e.id for e in gallery.list(query="_")] == [c.id]
    assert [e.id for e in gallery.list(query="0% c")] == [c.id]
    assert [e.id for e in gallery.list(query="0%_c")] == []  # unescaped, this would match
    assert [e.id for e in gallery.list(preset="exploded")] == [b.id]
    assert [e.id for e in gallery.list(limit=2, offset=1)] == [c.id, b.id]
    assert gallery.count() == 4 and gallery.count(query="c") == 4
    assert gallery.presets() == ["exploded", "knolling"]


@pytest.mark.parametrize(
    "bad_id", ["../../etc/passwd", "/etc/passwd", "1; DROP TABLE images", "0", "-1", "", "1.5"]
)
def test_bad_ids_are_just_unknown(gallery: Gallery, bad_id: str) -> None:
    gallery.save(image(), make_record())
    with pytest.raises(GalleryError, match="no gallery image with id"):
        gallery.get(bad_id)
    with pytest.raises(GalleryError, match="no gallery image with id"):
        gallery.delete(bad_id)
    assert gallery.count() == 1


def test_unknown_id(gallery: Gallery) -> None:
    with pytest.raises(GalleryError, match="no gallery image with id 5"):
        gallery.get(5)


# --- crashes --------------------------------------------------------------------------


class InjectedFault(Exception):
    pass


@pytest.mark.parametrize("fault", [InjectedFault, KeyboardInterrupt, SystemExit])
def test_fault_between_file_and_commit_leaves_nothing(gallery: Gallery, fault: type) -> None:
    kept = gallery.save(image(), make_record("kept"))
    seen: list[Path] = []

    def crash(path: Path) -> None:
        assert path.is_file()  # the file was complete at this point
        seen.append(path)
        raise fault()

    with pytest.raises(fault):
        gallery.save(image(), make_record("lost"), before_commit=crash)

    assert seen and not seen[0].exists()
    assert files_in(gallery) == [kept.path]
    assert [e.id for e in gallery.list()] == [kept.id]
    assert gallery.repair(grace_s=0).changed is False


def test_process_killed_before_commit_leaves_a_whole_file_that_repair_adopts(
    gallery: Gallery,
) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
        from record_fixtures import make_record
        from test_gallery import image
        from nano_banana.gallery import Gallery
        g = Gallery.open({str(gallery.root)!r})
        g.save(image(9), make_record("killed", seed=99), before_commit=lambda p: os._exit(9))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()

    orphans = files_in(gallery)
    assert len(orphans) == 1 and gallery.count() == 0  # no row, one complete file
    assert read_record(orphans[0]).request.seed == 99

    assert gallery.repair().files_recent == [gallery._relpath(orphans[0])]  # too new to judge
    age(orphans[0])
    report = gallery.repair()
    assert report.files_adopted == [f"1: {gallery._relpath(orphans[0])}"]
    (entry,) = gallery.list()
    assert entry.prompt == "killed" and entry.path == orphans[0]


# --- repair ---------------------------------------------------------------------------


def test_repair_after_manual_file_delete(gallery: Gallery) -> None:
    a = gallery.save(image(), make_record("a"))
    b = gallery.save(image(), make_record("b"))
    b.path.unlink()

    report = gallery.repair()
    assert report.rows_removed == [f"{b.id}: {gallery._relpath(b.path)}"]
    assert [e.id for e in gallery.list()] == [a.id]
    assert gallery.repair().changed is False


def test_repair_adopts_ours_lists_foreign_removes_temp(gallery: Gallery, tmp_path: Path) -> None:
    kept = gallery.save(image(), make_record("kept"))
    folder = kept.path.parent
    # an orphan of ours (its row was lost), a foreign PNG, a non-image, a temp leftover
    ours = gallery.save(image(), make_record("orphan"))
    with sqlite3.connect(gallery.index_path) as conn:
        conn.execute("DELETE FROM images WHERE id = ?", (ours.id,))
    foreign = folder / "foreign.png"
    image().save(foreign)
    notes = folder / "notes.txt"
    notes.write_text("hi")
    temp = folder / f"{TEMP_PREFIX}abc{TEMP_SUFFIX}"
    temp.write_bytes(b"half")
    fresh_temp = folder / f"{TEMP_PREFIX}new{TEMP_SUFFIX}"
    fresh_temp.write_bytes(b"still writing")
    for path in (ours.path, foreign, notes, temp):
        age(path)

    report = gallery.repair()

    assert [line.split(": ")[1] for line in report.files_adopted] == [gallery._relpath(ours.path)]
    assert sorted(report.files_unknown) == sorted(
        [gallery._relpath(foreign), gallery._relpath(notes)]
    )
    assert report.temp_removed == [gallery._relpath(temp)]
    assert report.files_recent == [gallery._relpath(fresh_temp)]
    assert not temp.exists() and fresh_temp.exists() and foreign.exists() and notes.exists()
    assert {e.prompt for e in gallery.list()} == {"kept", "orphan"}


def dropped_in(folder: Path, name: str, record: dict) -> Path:
    """A PNG someone put into the gallery folder, with a record no one checked."""
    info = PngImagePlugin.PngInfo()
    info.add_text("nano_banana", json.dumps(record))
    path = folder / name
    image().save(path, pnginfo=info)
    age(path)
    return path


def edited(change) -> dict:
    record = make_record("dropped in").to_dict()
    change(record)
    return record


BAD_RECORDS = {
    "lora_scale_text": lambda r: r.update(loras=[{**asdict(SDXL_LORA), "scale": "abc"}]),
    "prompt_int": lambda r: r["request"].update(prompt=5),
    "width_text": lambda r: r["request"].update(width="abc"),
    "cfg_nan": lambda r: r["request"].update(cfg=math.nan),
    "no_seed": lambda r: r["request"].update(seed=None),
    "model_int": lambda r: r.update(base_model=7),
    "board_list": lambda r: r.update(board=[1]),
}


def test_repair_adopts_only_records_that_pass_validation(gallery: Gallery) -> None:
    folder = gallery.images_dir / "2026-01-01"
    folder.mkdir()
    good = dropped_in(folder, "good.png", edited(lambda r: None))
    bad = [
        dropped_in(folder, f"{name}.png", edited(change)) for name, change in BAD_RECORDS.items()
    ]

    report = gallery.repair()  # no traceback, whatever the records hold

    assert [line.split(": ")[1] for line in report.files_adopted] == [gallery._relpath(good)]
    assert sorted(report.files_unknown) == sorted(gallery._relpath(p) for p in bad)
    assert [e.prompt for e in gallery.list()] == ["dropped in"]


def test_repair_rebuilds_a_lost_index(gallery: Gallery) -> None:
    entries = [gallery.save(image(i), make_record(f"p{i}", seed=i)) for i in range(3)]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{gallery.index_path}{suffix}").unlink(missing_ok=True)
    for entry in entries:
        age(entry.path)

    fresh = Gallery.open(gallery.root)
    assert fresh.count() == 0
    assert len(fresh.repair().files_adopted) == 3
    assert {e.prompt for e in fresh.list()} == {"p0", "p1", "p2"}


# --- delete and export ----------------------------------------------------------------


def test_delete_removes_row_and_file(gallery: Gallery) -> None:
    a = gallery.save(image(), make_record("a"))
    b = gallery.save(image(), make_record("b"))
    gallery.delete(a.id)
    assert not a.path.exists() and b.path.exists()
    assert [e.id for e in gallery.list()] == [b.id]
    with pytest.raises(GalleryError, match="no gallery image"):
        gallery.get(a.id)
    later = gallery.save(image(), make_record("c"))
    assert later.id > b.id  # ids are never reused


def test_delete_that_cannot_remove_the_file_changes_nothing(gallery: Gallery) -> None:
    entry = gallery.save(image(), make_record("stays"))
    entry.path.unlink()
    entry.path.mkdir()  # unlink() of a folder fails: simulates a file we may not remove
    try:
        with pytest.raises(GalleryError, match="cannot delete"):
            gallery.delete(entry.id)
        assert gallery.get(entry.id) == entry  # the row was put back, same id
    finally:
        entry.path.rmdir()


def test_export_to_zip_and_folder_keeps_original_bytes(gallery: Gallery, tmp_path: Path) -> None:
    a = gallery.save(image(1), make_record("a 🍌"))
    b = gallery.save(image(2), make_record("b"))

    zip_path = gallery.export([a.id, str(b.id)], tmp_path / "out" / "sel.zip")
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == sorted([a.path.name, b.path.name])
        assert archive.read(a.path.name) == a.path.read_bytes()
    assert zipfile.ZipFile(io.BytesIO(gallery.zip_bytes([b.id]))).read(b.path.name) == (
        b.path.read_bytes()
    )
    with pytest.raises(GalleryError, match="already exists"):
        gallery.export([a.id], zip_path)

    folder = gallery.export([a.id, b.id], tmp_path / "folder")
    assert (folder / a.path.name).read_bytes() == a.path.read_bytes()
    assert read_record(folder / b.path.name) == b.generation_record()
    gallery.export([a.id], folder)  # identical file already there: fine
    (folder / a.path.name).write_bytes(b"changed")
    with pytest.raises(GalleryError, match="other content"):
        gallery.export([a.id], folder)


def test_export_checks_every_id_first(gallery: Gallery, tmp_path: Path) -> None:
    a = gallery.save(image(), make_record())
    with pytest.raises(GalleryError, match="no gallery image"):
        gallery.export([a.id, "../../etc/passwd"], tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(GalleryError, match="nothing to export"):
        gallery.export([], tmp_path / "y.zip")


# --- paths that try to escape ---------------------------------------------------------


def test_symlinked_file_pointing_outside_is_refused(gallery: Gallery, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not leak")
    entry = gallery.save(image(), make_record())
    entry.path.unlink()
    entry.path.symlink_to(secret)

    with pytest.raises(GalleryError, match="outside the gallery"):
        gallery.read_bytes(entry.id)
    with pytest.raises(GalleryError, match="outside the gallery"):
        gallery.export([entry.id], tmp_path / "leak.zip")
    assert not (tmp_path / "leak.zip").exists()

    gallery.delete(entry.id)  # removes the link itself, never its target
    assert secret.read_text() == "do not leak"


def test_symlinked_folder_pointing_outside(gallery: Gallery, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.png"
    image().save(victim)
    entry = gallery.save(image(), make_record())
    day = entry.path.parent
    moved = tmp_path / "moved"
    day.rename(moved)
    day.symlink_to(outside, target_is_directory=True)
    # A row that (via the link) names the outside file, as a tampered index might.
    with sqlite3.connect(gallery.index_path) as conn:
        rel = f"images/{day.name}/victim.png"
        conn.execute("UPDATE images SET relpath = ? WHERE id = ?", (rel, entry.id))

    with pytest.raises(GalleryError, match="outside the gallery"):
        gallery.read_bytes(entry.id)
    with pytest.raises(GalleryError, match="outside the gallery"):
        gallery.delete(entry.id)
    assert victim.exists()
    with pytest.raises(GalleryError, match="outside the gallery"):
        gallery.save(image(), make_record())  # would write through the link
    assert sorted(p.name for p in outside.iterdir()) == ["victim.png"]

    report = gallery.repair(grace_s=0)
    assert f"images/{day.name}" in report.files_unsafe
    assert victim.exists()


@pytest.mark.parametrize(
    "relpath", ["../../etc/passwd", "/etc/passwd", "images/../../x.png", "index.sqlite3"]
)
def test_tampered_row_paths_are_refused(gallery: Gallery, relpath: str) -> None:
    entry = gallery.save(image(), make_record())
    with sqlite3.connect(gallery.index_path) as conn:
        conn.execute("UPDATE images SET relpath = ? WHERE id = ?", (relpath, entry.id))
    with pytest.raises(GalleryError, match="not inside"):
        gallery.read_bytes(entry.id)
    with pytest.raises(GalleryError, match="not inside"):
        gallery.delete(entry.id)
    assert gallery.index_path.exists()
