"""Data files a user can extend: the package's own, then the ones in the user's folder.

Scenario presets and the parts catalog are TOML files of one shape each. The
package ships some under ``assets/<kind>/``; a user adds more, or overrides a
shipped one by using its name, in a folder of their own. Readers get each file's
name, text and a source to name in messages; parsing stays with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from .errors import NanoBananaError

SUFFIX = ".toml"


def read_data_files(
    kind: str,
    user_dir: Path,
    error: type[NanoBananaError],
    unreadable: dict[str, NanoBananaError] | None = None,
) -> Iterator[tuple[str, str, str]]:
    """``(stem, text, source)`` for the shipped files of ``kind`` in name order, then the user's.

    A user file that cannot be read as UTF-8 text raises ``error`` naming it; with an
    ``unreadable`` dict the error goes there under the file's stem instead, and the other
    files are still read.
    """
    shipped = resources.files("nano_banana") / "assets" / kind
    for entry in sorted(shipped.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(SUFFIX):
            yield entry.name[: -len(SUFFIX)], entry.read_text("utf-8"), f"built-in {entry.name}"
    if user_dir.is_dir():
        for path in sorted(user_dir.glob(f"*{SUFFIX}")):
            try:
                text = _read_user_file(path, error)
            except NanoBananaError as exc:
                if unreadable is None:
                    raise
                unreadable[path.stem] = exc
                continue
            yield path.stem, text, str(path)


def _read_user_file(path: Path, error: type[NanoBananaError]) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path} cannot be read as UTF-8 text: {exc}") from None
