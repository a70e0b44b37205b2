"""Where a ``nano-banana serve`` listens, and the key a client needs: one per user.

The socket and a random key live in a folder only the user can open (the runtime
folder, else the cache folder). ``multiprocessing.connection`` checks the key with
an HMAC handshake before anything is unpickled, so only a process that can read
the user's key file can talk to the server. ``server.json`` says which model it
serves, so a client can tell without connecting whether it may use it.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_bytes, write_text
from ..errors import NanoBananaError

ENV_DIR = "NANO_BANANA_SERVE_DIR"  # another folder (tests, several servers side by side)


def serve_dir() -> Path:
    """The user's folder for the server's socket, key and description."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    import platformdirs

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(runtime) if runtime else Path(platformdirs.user_cache_dir(appauthor=False))
    return root / "nano-banana-serve"


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.json`` says of a running server."""

    address: str  # the socket's path
    pid: int
    model: dict  # the served EngineSpec, resolved, as ``to_dict`` gives it (speed left out)
    workers: int
    base_name: str  # the name images record as their base model

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)


def key_path(folder: Path) -> Path:
    return folder / "server.key"


def info_path(folder: Path) -> Path:
    return folder / "server.json"


def prepare(folder: Path) -> bytes:
    """A private folder and a fresh key for a server about to start."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)  # an existing folder too: the key must not be readable by others
    key = secrets.token_bytes(32)
    write_bytes(key_path(folder), key.hex().encode())  # unreachable to others: the folder is 0700
    os.chmod(key_path(folder), 0o600)
    return key


def publish(folder: Path, info: ServerInfo) -> None:
    write_text(info_path(folder), info.to_json())


def withdraw(folder: Path, pid: int) -> None:
    """Remove the description, socket and key of server ``pid`` (not of a newer one)."""
    info = read_info(folder)
    if info is None or info.pid != pid:
        return
    for path in (info_path(folder), key_path(folder), Path(info.address)):
        path.unlink(missing_ok=True)


def read_info(folder: Path) -> ServerInfo | None:
    """The running server's description; None when none was published or it is unreadable."""
    try:
        data = json.loads(info_path(folder).read_text())
        return ServerInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def read_key(folder: Path) -> bytes:
    try:
        return bytes.fromhex(key_path(folder).read_text().strip())
    except (OSError, ValueError) as exc:
        raise NanoBananaError(f"cannot read the server's key in {folder}: {exc}") from None
