"""Writing a file so that it is complete or absent, never half-written: the one way files are saved.

Any writer (``safetensors.save_file``, ``Image.save``, ``Path.write_text``) writes
to a temp file that ``atomic_path`` hands out in the target's own folder. The temp
file is fsynced, then renamed over the target (``overwrite``) or hard-linked to it:
the link fails with ``FileExistsError`` when the target exists, an exclusive create
like ``O_EXCL`` that never exposes a partly written file. The folder is fsynced so
that the new name survives a crash. Temp files are named ``TEMP_PREFIX ...
TEMP_SUFFIX`` so that leftovers of a crash are recognisable (gallery repair removes them).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".nb-"  # every temp file starts with this and ends with TEMP_SUFFIX
TEMP_SUFFIX = ".tmp"
# UTF-8 bytes of the target's name kept in its temp name: with the prefix, the random
# part and the suffix a temp name stays far below the 255 bytes most filesystems allow.
_NAME_KEPT = 64
_CREATE_ATTEMPTS = 100


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """A temp path beside ``path`` to write to; on success it becomes ``path`` in one step.

    With ``overwrite`` false the target is created exclusively: ``FileExistsError``
    if it exists, and the existing file is left as it was. If the writer (or the
    rename) fails, the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    with _temp_file(path) as tmp:
        mode = _plain_open_mode(path, tmp)
        yield tmp
        # Some writers replace the file they are given (safetensors leaves it 0600):
        # give it back the mode it would have had from a plain open().
        _set_mode(tmp, mode)
        fsync_file(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_path``); returns ``path``."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(
    path: str | Path, text: str, *, overwrite: bool = True, encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``path`` atomically (see ``atomic_path``); returns ``path``."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def is_temp_name(name: str) -> bool:
    """True for the name of one of our temp files (a leftover if no writer is running)."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def fsync_file(path: Path) -> None:
    """Make ``path``'s written bytes durable before its name is published."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a new or renamed entry of ``folder`` durable; not possible on every platform."""
    with contextlib.suppress(OSError):  # Windows cannot open a folder; its rename is still atomic
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _temp_file(path: Path) -> Iterator[Path]:
    tmp = _create_temp(path)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):  # renamed away, or never written
            tmp.unlink()


def _create_temp(path: Path) -> Path:
    # Not tempfile.mkstemp: its files are private (0600); ours get the mode a plain
    # open() gives (0666 less the umask), like every file written without a temp file.
    stem = f"{TEMP_PREFIX}{_name_start(path.name)}."
    for _ in range(_CREATE_ATTEMPTS):
        tmp = path.with_name(f"{stem}{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temp file name beside {path}")


def _plain_open_mode(path: Path, tmp: Path) -> int:
    """The permission bits ``open(path, "w")`` leaves: an existing file keeps its own, a new
    one gets 0666 less the umask, as the fresh temp file (``_create_temp``) already has."""
    for candidate in (path, tmp):
        with contextlib.suppress(OSError):
            return stat.S_IMODE(os.stat(candidate).st_mode)
    return 0o644  # neither can be read (not expected): what the usual umask gives


def _set_mode(tmp: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # the writer wrote nothing: nothing to publish
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
            os.chmod(tmp, mode)


def _name_start(name: str) -> str:
    """The first ``_NAME_KEPT`` UTF-8 bytes of ``name``, cut between characters, not inside one."""
    # Characters UTF-8 cannot encode (lone surrogates of an undecodable name) are left out:
    # the kept start only makes a leftover recognisable.
    return name.encode("utf-8", "ignore")[:_NAME_KEPT].decode("utf-8", "ignore")


def _link_exclusive(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links (FAT, some network shares): check, then
        # rename. Racy between the check and the rename, so only a fallback.
        if path.exists():
            raise FileExistsError(f"{path} already exists") from None
        os.replace(tmp, path)
