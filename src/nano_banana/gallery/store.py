"""The gallery: every saved image, as PNG files under one folder plus an SQLite index.

Layout::

    <root>/index.sqlite3                     the index (WAL mode)
    <root>/images/YYYY-MM-DD/<name>.png      the images, each carrying its full record

The files are the source of truth: each PNG holds its whole ``GenerationRecord``,
so the index can always be rebuilt from them (``repair``). Hence the rules:

* save: write a temp file, fsync, hard-link it to a fresh unique name (fails
  instead of overwriting), then insert the row and commit. If anything fails
  before the commit the file is removed again; if the process is killed in that
  window, a complete file without a row is left, which ``repair`` adopts.
* delete: remove the row first, then the file. An interruption leaves the
  file without a row — the image is still there and ``repair`` re-adopts it — and
  never a row pointing at nothing. Removing the file first could not lose the
  image either, but a failure of the second step would show a broken entry.

Every call opens its own short-lived SQLite connection (WAL, busy timeout), so
one ``Gallery`` may be shared by threads and several processes may use one root.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sqlite3
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from ..atomic import is_temp_name, write_bytes
from ..errors import GalleryError, InvalidSettingError, MetadataError
from .png import png_bytes, read_record
from .record import GenerationRecord, checked_record

ENV_VAR = "NANO_BANANA_GALLERY"
INDEX_NAME = "index.sqlite3"
IMAGES_DIR = "images"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 15.0  # several studio sessions may write at once; a save's commit is quick
REPAIR_GRACE_S = 60.0  # files younger than this may belong to a save still in progress
_ID_PATTERN = re.compile(r"[1-9][0-9]{0,17}")  # ids are positive integers, never paths

BeforeCommit = Callable[[Path], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused, so an old id cannot name a new image
    relpath TEXT NOT NULL UNIQUE,           -- POSIX path relative to the gallery root
    created TEXT NOT NULL,                  -- when the image was generated (record.created)
    saved TEXT NOT NULL,                    -- when it entered the gallery
    prompt TEXT NOT NULL,                   -- the user's prompt
    prompt_used TEXT NOT NULL,              -- the final prompt (preset applied)
    search TEXT NOT NULL,                   -- casefolded prompts, for Unicode-aware search
    preset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    base_model TEXT NOT NULL,
    loras TEXT NOT NULL,                    -- "name:scale, ..." summary
    sha256 TEXT NOT NULL,                   -- of the file's bytes
    record TEXT NOT NULL                    -- the whole GenerationRecord as JSON
);
CREATE INDEX IF NOT EXISTS images_preset ON images (preset, id);
"""
_COLUMNS = (
    "id, relpath, created, saved, prompt, prompt_used, search, preset, seed, width, height, "
    "base_model, loras, sha256, record"
)


@dataclass(frozen=True)
class GalleryEntry:
    """One image in the gallery."""

    id: int
    path: Path  # absolute path of the PNG inside the gallery
    relpath: str  # the same, relative to the gallery root (POSIX)
    created: str  # when it was generated (ISO 8601)
    saved: str  # when it entered the gallery
    prompt: str
    prompt_used: str
    preset: str
    seed: int
    width: int
    height: int
    base_model: str
    loras: str  # "name:scale, ..." (empty without LoRAs)
    sha256: str
    record: dict[str, Any] = field(repr=False)

    def generation_record(self) -> GenerationRecord:
        """The full record, e.g. to reuse its settings."""
        return GenerationRecord.from_dict(self.record)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


@dataclass
class RepairReport:
    """What ``Gallery.repair`` found and did; paths are relative to the gallery root."""

    rows_removed: list[str] = field(default_factory=list)  # "id: relpath" whose file was gone
    files_adopted: list[str] = field(default_factory=list)  # orphans with our metadata, now rows
    files_unknown: list[str] = field(default_factory=list)  # orphans without it, left in place
    files_unsafe: list[str] = field(default_factory=list)  # symlinks or escapes, left in place
    files_recent: list[str] = field(default_factory=list)  # too new to judge; maybe mid-save
    temp_removed: list[str] = field(default_factory=list)  # leftovers of interrupted saves

    @property
    def changed(self) -> bool:
        return bool(self.rows_removed or self.files_adopted or self.temp_removed)

    def to_dict(self) -> dict[str, list[str]]:
        return asdict(self)


def default_root() -> Path:
    """``$NANO_BANANA_GALLERY``, else the per-user data folder's ``gallery``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("nano-banana", appauthor=False)) / "gallery"


class Gallery:
    """A persistent store of generated images. Build with ``Gallery.open(root)``."""

    def __init__(self, root: Path) -> None:
        self.root = root  # resolved; created by open()
        self.index_path = root / INDEX_NAME
        self.images_dir = root / IMAGES_DIR

    @classmethod
    def open(cls, root: str | Path | None = None) -> Gallery:
        """Open (creating if needed) the gallery at ``root`` or at ``default_root()``."""
        root = Path(root).expanduser() if root is not None else default_root()
        if root.exists() and not root.is_dir():
            raise GalleryError(f"gallery folder {root} is a file; choose a folder")
        try:
            (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(f"cannot create gallery folder {root}: {exc.strerror}") from None
        gallery = cls(root.resolve())
        gallery._init_schema()
        return gallery

    # --- connections ---------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection in autocommit mode; callers BEGIN their own transactions."""
        try:
            conn = sqlite3.connect(self.index_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot open gallery index {self.index_path}: {exc}") from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            yield conn
        except sqlite3.DatabaseError as exc:
            raise GalleryError(_db_error_message(self.index_path, exc)) from None
        finally:
            conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (KeyboardInterrupt too)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._connect() as conn:
            for _ in range(50):  # switching to WAL needs a moment alone with the file
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    time.sleep(0.1)
        with self._transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row["version"] > SCHEMA_VERSION:
                raise GalleryError(
                    f"gallery {self.root} was made by a newer nano-banana (schema "
                    f"{row['version']}); update nano-banana to use it"
                )

    # --- paths ---------------------------------------------------------------

    def _inside(self, relpath: str, *, follow: bool = True) -> Path:
        """The absolute path of ``relpath`` after checking it stays inside the gallery.

        ``follow=False`` checks only the folder (for unlinking: removing a symlink
        itself is safe, following a symlinked folder is not).
        """
        rel = Path(relpath)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.parts[0] != IMAGES_DIR:
            raise GalleryError(f"gallery path {relpath!r} is not inside {self.images_dir}")
        path = self.root / rel
        resolved = path.resolve() if follow else path.parent.resolve() / path.name
        if not resolved.is_relative_to(self.images_dir.resolve()):
            raise GalleryError(
                f"gallery file {relpath} points outside the gallery ({resolved}); refusing it"
            )
        return path

    def _relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # --- saving --------------------------------------------------------------

    def save(
        self,
        image: Image.Image,
        record: GenerationRecord,
        *,
        before_commit: BeforeCommit | None = None,
    ) -> GalleryEntry:
        """Store ``image`` with its record under a fresh name and index it.

        ``before_commit`` is called with the file's path after the file is complete
        and the row inserted but before the commit: a seam for fault-injection tests
        (an exception there must leave neither file nor row).
        """
        data = png_bytes(image, record)
        path = self._write_unique(data, record)
        try:
            with self._transaction() as conn:
                entry_id = self._insert(conn, path, record, data)
                if before_commit is not None:
                    before_commit(path)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return self.get(entry_id)

    def _write_unique(self, data: bytes, record: GenerationRecord) -> Path:
        """Write ``data`` into today's folder under a new name that no other save can take."""
        from .save import write_unique  # save imports metadata, as we do; no cycle at import time

        folder = self.images_dir / datetime.now().strftime("%Y-%m-%d")
        folder.mkdir(exist_ok=True)
        self._inside(self._relpath(folder))  # refuses a day folder that is a symlink out
        return write_unique(data, folder, str(record.request.seed))

    def _insert(
        self, conn: sqlite3.Connection, path: Path, record: GenerationRecord, data: bytes
    ) -> int:
        request = record.request
        loras = ", ".join(f"{lu.name}:{lu.scale:g}" for lu in record.loras)
        row = {
            "relpath": self._relpath(path),
            "created": record.created,
            "saved": datetime.now().astimezone().isoformat(timespec="seconds"),
            "prompt": request.prompt,
            "prompt_used": record.prompt_used,
            "search": f"{request.prompt}\n{record.prompt_used}".casefold(),
            "preset": request.preset,
            "seed": request.seed,
            "width": request.width,
            "height": request.height,
            "base_model": record.base_model,
            "loras": loras,
            "sha256": hashlib.sha256(data).hexdigest(),
            "record": json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False),
        }
        names = ", ".join(row)
        marks = ", ".join(f":{key}" for key in row)
        cursor = conn.execute(f"INSERT INTO images ({names}) VALUES ({marks})", row)
        return int(cursor.lastrowid)

    # --- reading -------------------------------------------------------------

    def get(self, entry_id: int | str) -> GalleryEntry:
        """The entry with this id; ``GalleryError`` if there is none (or it is not an id)."""
        key = _parse_id(entry_id)
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise GalleryError(_unknown_id_message(entry_id))
        return self._entry(row)

    def list(
        self,
        query: str | None = None,
        preset: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[GalleryEntry]:
        """Entries newest first; ``query`` matches prompt text (case-insensitive substring)."""
        if limit < 1 or offset < 0:
            raise GalleryError(f"limit must be >= 1 and offset >= 0, got {limit} and {offset}")
        where, params = _filters(query, preset)
        sql = f"SELECT {_COLUMNS} FROM images WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?"
        with self._connect() as conn:
            rows = conn.execute(sql, [*params, limit, offset]).fetchall()
        return [self._entry(row) for row in rows]

    def count(self, query: str | None = None, preset: str | None = None) -> int:
        """How many entries match (all of them without filters)."""
        where, params = _filters(query, preset)
        with self._connect() as conn:
            sql = f"SELECT COUNT(*) FROM images WHERE {where}"
            return int(conn.execute(sql, params).fetchone()[0])

    def presets(self) -> list[str]:
        """The presets that occur in the gallery, for filters."""
        with self._connect() as conn:
            rows = conn.execute("SELECT DISTINCT preset FROM images ORDER BY preset").fetchall()
        return [row[0] for row in rows]

    def _entry(self, row: sqlite3.Row) -> GalleryEntry:
        return GalleryEntry(
            id=row["id"],
            path=self.root / row["relpath"],
            relpath=row["relpath"],
            created=row["created"],
            saved=row["saved"],
            prompt=row["prompt"],
            prompt_used=row["prompt_used"],
            preset=row["preset"],
            seed=row["seed"],
            width=row["width"],
            height=row["height"],
            base_model=row["base_model"],
            loras=row["loras"],
            sha256=row["sha256"],
            record=json.loads(row["record"]),
        )

    def read_bytes(self, entry_id: int | str) -> bytes:
        """The saved file's exact bytes (metadata included), e.g. for a download button."""
        entry = self.get(entry_id)
        path = self._inside(entry.relpath)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise GalleryError(
                f"the file of gallery image {entry.id} is missing ({path}); "
                "run `nano-banana gallery repair`"
            ) from None

    # --- deleting ------------------------------------------------------------

    def delete(self, entry_id: int | str) -> GalleryEntry:
        """Remove an image: its row first, then its file (see the module docstring for why)."""
        entry = self.get(entry_id)
        path = self._inside(entry.relpath, follow=False)
        with self._transaction() as conn:
            conn.execute("DELETE FROM images WHERE id = ?", (entry.id,))
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            self._restore_row(entry)
            raise GalleryError(f"cannot delete {path}: {exc.strerror or exc}") from None
        return entry

    def _restore_row(self, entry: GalleryEntry) -> None:
        """Put back a row whose file could not be removed, so delete changes nothing."""
        row = entry.to_dict()
        row["search"] = f"{entry.prompt}\n{entry.prompt_used}".casefold()
        row["record"] = json.dumps(entry.record, sort_keys=True, ensure_ascii=False)
        row.pop("path")
        with self._transaction() as conn:
            names = ", ".join(row)
            marks = ", ".join(f":{key}" for key in row)
            conn.execute(f"INSERT INTO images ({names}) VALUES ({marks})", row)

    # --- exporting -----------------------------------------------------------

    def export(
        self, ids: Iterable[int | str], dest: str | Path, *, overwrite: bool = False
    ) -> Path:
        """Copy the original files of ``ids`` to ``dest``: a zip if it ends in .zip, else a folder.

        Every id is checked before anything is written. Existing files are never
        overwritten unless ``overwrite`` (an identical file already there is fine).
        """
        dest = Path(dest).expanduser()
        files = self._export_files(ids)
        try:
            return _export_to(dest, files, overwrite)
        except OSError as exc:  # a folder named like the zip, a read-only or impossible place
            where = exc.filename or dest
            raise GalleryError(f"cannot export to '{where}': {exc.strerror or exc}") from None

    def zip_bytes(self, ids: Iterable[int | str]) -> bytes:
        """A zip of the original files of ``ids`` in memory, for the studio's download."""
        return _zip(self._export_files(ids))

    def _export_files(self, ids: Iterable[int | str]) -> list[tuple[str, bytes]]:
        entries = [self.get(entry_id) for entry_id in dict.fromkeys(ids)]
        if not entries:
            raise GalleryError("nothing to export: give at least one gallery id")
        return [(entry.path.name, self.read_bytes(entry.id)) for entry in entries]

    # --- repairing -----------------------------------------------------------

    def repair(self, *, grace_s: float = REPAIR_GRACE_S) -> RepairReport:
        """Reconcile rows and files after crashes or manual deletes.

        Rows whose file is gone are removed; files without a row are adopted when
        they carry our metadata, else listed and left alone; leftover temp files of
        interrupted saves are removed. Files younger than ``grace_s`` seconds are
        left for now: another process may be between writing and committing them.
        """
        report = RepairReport()
        self._remove_rows_without_files(report)
        known = self._known_relpaths()
        cutoff = time.time() - grace_s
        for path in self._walk_images():
            rel = self._relpath(path)
            if rel in known:
                continue
            self._repair_file(path, rel, cutoff, report)
        return report

    def _remove_rows_without_files(self, report: RepairReport) -> None:
        with self._connect() as conn:
            rows = conn.execute("SELECT id, relpath FROM images ORDER BY id").fetchall()
        for row in rows:
            try:
                present = self._inside(row["relpath"]).is_file()
            except GalleryError:
                report.files_unsafe.append(row["relpath"])
                present = False
            if not present:
                with self._transaction() as conn:
                    gone = conn.execute("DELETE FROM images WHERE id = ?", (row["id"],))
                if gone.rowcount:
                    report.rows_removed.append(f"{row['id']}: {row['relpath']}")

    def _known_relpaths(self) -> set[str]:
        with self._connect() as conn:
            return {row[0] for row in conn.execute("SELECT relpath FROM images")}

    def _walk_images(self) -> Iterator[Path]:
        for folder, dirs, files in os.walk(self.images_dir, followlinks=False):
            dirs.sort()
            base = Path(folder)
            for name in sorted(files) + [d for d in dirs if (base / d).is_symlink()]:
                yield base / name

    def _repair_file(self, path: Path, rel: str, cutoff: float, report: RepairReport) -> None:
        if path.is_symlink():
            report.files_unsafe.append(rel)
            return
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return  # removed meanwhile
        if mtime > cutoff:
            report.files_recent.append(rel)
            return
        if is_temp_name(path.name):
            path.unlink(missing_ok=True)
            report.temp_removed.append(rel)
            return
        if path.suffix.lower() != ".png":
            report.files_unknown.append(rel)
            return
        try:
            # Adopted only if it passes the checks of an image made here: the file may be
            # anyone's, and its record goes into the index and back into generate --from.
            record = checked_record(read_record(path))
            data = path.read_bytes()
        except (MetadataError, InvalidSettingError, OSError):
            report.files_unknown.append(rel)
            return
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM images WHERE relpath = ?", (rel,)).fetchone():
                return  # its own save committed meanwhile
            entry_id = self._insert(conn, path, record, data)
        report.files_adopted.append(f"{entry_id}: {rel}")


# --- helpers -----------------------------------------------------------------


def _parse_id(entry_id: int | str) -> int:
    """Ids are positive integers; anything else (a path, a name) is simply unknown."""
    if isinstance(entry_id, bool):
        raise GalleryError(_unknown_id_message(entry_id))
    if isinstance(entry_id, int):
        if entry_id < 1:
            raise GalleryError(_unknown_id_message(entry_id))
        return entry_id
    text = str(entry_id).strip()
    if not _ID_PATTERN.fullmatch(text):
        raise GalleryError(_unknown_id_message(entry_id))
    return int(text)


def _unknown_id_message(entry_id: object) -> str:
    shown = repr(entry_id) if not isinstance(entry_id, int) else str(entry_id)
    return f"no gallery image with id {shown}; ids are the numbers `nano-banana gallery list` shows"


def _filters(query: str | None, preset: str | None) -> tuple[str, list[str]]:
    """The WHERE clause (and its parameters) of a prompt search and a preset filter."""
    where, params = ["1"], []
    if query:
        where.append("search LIKE ? ESCAPE '\\'")
        params.append(f"%{_escape_like(query.casefold())}%")
    if preset:
        where.append("preset = ?")
        params.append(preset)
    return " AND ".join(where), params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _db_error_message(path: Path, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"gallery index {path} is busy (another process holds it); try again"
    if "not a database" in text or "malformed" in text:
        return (
            f"gallery index {path} is damaged ({text}); move it aside and run "
            "`nano-banana gallery repair` to rebuild it from the images"
        )
    return f"gallery index {path}: {text}"


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    # PNGs are already compressed; storing keeps the bytes and the zip fast.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def _export_to(dest: Path, files: list[tuple[str, bytes]], overwrite: bool) -> Path:
    """Write ``files`` into the zip or folder ``dest`` (see ``Gallery.export``)."""
    if dest.suffix.lower() == ".zip":
        if dest.is_dir():
            raise GalleryError(f"{dest} is a folder; give a new file name ending in .zip")
        if dest.exists() and not overwrite:
            raise GalleryError(f"{dest} already exists; choose another name or remove it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(dest, _zip(files), overwrite=True)
        return dest
    if dest.exists() and not dest.is_dir():
        raise GalleryError(f"{dest} is a file; give a folder or a name ending in .zip")
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        _copy_into(dest / name, data, overwrite)
    return dest


def _copy_into(target: Path, data: bytes, overwrite: bool) -> None:
    try:
        write_bytes(target, data, overwrite=overwrite)
    except FileExistsError:
        if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
            return
        if target.is_dir():
            raise GalleryError(f"{target} is a folder; export elsewhere or remove it") from None
        raise GalleryError(
            f"{target} already exists with other content; export elsewhere or remove it"
        ) from None


__all__ = ["ENV_VAR", "Gallery", "GalleryEntry", "RepairReport", "default_root"]
