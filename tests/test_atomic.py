"""The one atomic writer: a target is complete or absent, never partial, whatever the writer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from nano_banana import atomic
from nano_banana.atomic import TEMP_PREFIX, atomic_path, is_temp_name, write_bytes, write_text

# name -> (writer of a temp path, reader of the finished file, what the reader must return)
WRITERS: dict[str, tuple[Callable[[Path], object], Callable[[Path], object], object]] = {
    "bytes": (lambda p: p.write_bytes(b"\x00new"), Path.read_bytes, b"\x00new"),
    "text": (lambda p: p.write_text("new ✓", encoding="utf-8"), Path.read_text, "new ✓"),
    "pillow": (
        lambda p: Image.new("RGB", (4, 2), (9, 8, 7)).save(p, format="PNG"),
        lambda p: Image.open(p).getpixel((3, 1)),
        (9, 8, 7),
    ),
    "safetensors": (
        lambda p: save_file({"w": torch.arange(3.0)}, str(p)),
        lambda p: load_file(str(p))["w"].tolist(),
        [0.0, 1.0, 2.0],
    ),
}


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("overwrite", [True, False])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_writer_gives_a_complete_file_and_no_temp(tmp_path, writer, overwrite):
    write, read, expected = WRITERS[writer]
    target = tmp_path / "out.bin"
    with atomic_path(target, overwrite=overwrite) as tmp:
        assert tmp.parent == tmp_path and is_temp_name(tmp.name)  # same folder: rename is atomic
        assert not target.exists()  # nothing visible while the writer runs
        write(tmp)
    assert read(target) == expected
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("existing", [None, b"old contents"])
@pytest.mark.parametrize("overwrite", [True, False])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_failing_writer_leaves_the_target_as_it_was(tmp_path, writer, overwrite, existing):
    write, _, _ = WRITERS[writer]
    target = tmp_path / "out.bin"
    if existing is not None:
        target.write_bytes(existing)

    def half_then_fail(path: Path) -> None:
        write(path)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), atomic_path(target, overwrite=overwrite) as tmp:
        half_then_fail(tmp)
    if existing is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == existing
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "write",
    [
        lambda path, overwrite: write_bytes(path, b"second", overwrite=overwrite),
        lambda path, overwrite: write_text(path, "second", overwrite=overwrite),
    ],
    ids=["write_bytes", "write_text"],
)
@pytest.mark.parametrize("overwrite", [True, False])
def test_exclusive_create_refuses_an_existing_file_and_overwrite_replaces_it(
    tmp_path, write, overwrite
):
    target = tmp_path / "same.txt"
    assert write(target, overwrite) == target  # absent: both modes create it
    target.write_text("first")
    if overwrite:
        write(target, overwrite)
        assert target.read_text() == "second"
    else:
        with pytest.raises(FileExistsError):
            write(target, overwrite)
        assert target.read_text() == "first"
    assert leftovers(tmp_path) == []


def test_exclusive_create_without_hard_links_still_refuses(tmp_path, monkeypatch):
    """Filesystems without hard links (FAT, some shares) fall back to check-then-rename."""

    def no_links(src, dst):
        raise PermissionError("operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "fat.bin"
    write_bytes(target, b"one", overwrite=False)
    assert target.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        write_bytes(target, b"two", overwrite=False)
    assert target.read_bytes() == b"one"
    assert leftovers(tmp_path) == []


def test_files_get_the_mode_a_plain_write_gives(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert (write_text(tmp_path / "atomic.txt", "x").stat().st_mode & 0o777) == (
        plain.stat().st_mode & 0o777
    )


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_every_writer_gives_the_mode_of_a_plain_open(tmp_path, writer, umask):
    """safetensors replaces the file it is given with a private (0600) one: a LoRA meant for
    sharing must still get 0666 less the umask, like any file a plain open() creates."""
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "out.bin") as tmp:
            WRITERS[writer][0](tmp)
    finally:
        os.umask(old)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_overwriting_keeps_the_existing_files_mode(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with atomic_path(target) as tmp:
        WRITERS["safetensors"][0](tmp)
    assert target.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    ("name", "temp"),
    [
        (f"{TEMP_PREFIX}image.png.1a2b3c4d{atomic.TEMP_SUFFIX}", True),
        (f"{TEMP_PREFIX}abc{atomic.TEMP_SUFFIX}", True),
        ("image.png", False),
        (f"{TEMP_PREFIX}image.png", False),
        (f"notes{atomic.TEMP_SUFFIX}", False),
    ],
)
def test_temp_names_are_recognisable(name, temp):
    assert is_temp_name(name) is temp


def test_a_long_target_name_still_gets_a_temp_name(tmp_path):
    target = tmp_path / ("x" * 240 + ".png")
    assert write_bytes(target, b"ok").read_bytes() == b"ok"


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("x" * 240 + ".png", "x" * 64),
        ("\U0001f600" * 60 + ".png", "\U0001f600" * 16),  # 4-byte characters: 64 bytes, whole
        ("ab" + "\u20ac" * 60 + ".png", "ab" + "\u20ac" * 20),  # the 21st would need 65 bytes
        ("short.png", "short.png"),
    ],
)
def test_temp_names_keep_whole_characters_and_fit_the_filesystem(tmp_path, name, kept):
    target = tmp_path / name
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(f"{TEMP_PREFIX}{kept}.") and len(os.fsencode(tmp.name)) < 255
        tmp.write_bytes(b"ok")
    assert target.read_bytes() == b"ok"


def test_a_failing_rename_removes_the_temp_file(tmp_path):
    folder_in_the_way = tmp_path / "out.bin"
    (folder_in_the_way / "child").mkdir(parents=True)
    with pytest.raises(OSError):
        write_bytes(folder_in_the_way, b"data")
    assert folder_in_the_way.is_dir()
    assert leftovers(tmp_path) == []
