"""Generating through a running ``nano-banana serve``: what the CLI and scripts use.

``find_server(spec)`` returns a ``RemoteEngine`` when a server of this user serves
that model, else None (the caller then loads the model itself). ``RemoteEngine``
answers what the image commands ask of an ``Engine``: ``generate`` with progress,
``loras`` and ``base_name``. It imports neither torch nor diffusers, which is most
of what a one-image command would otherwise spend.
"""

from __future__ import annotations

from multiprocessing.connection import Client, Connection
from pathlib import Path

from PIL import Image

from ..errors import GenerationError, NanoBananaError
from ..generate.events import GenerationResult, ProgressCallback, ProgressEvent
from ..generate.spec import EngineSpec
from ..settings import GenerationRequest
from .address import ServerInfo, read_info, read_key, serve_dir
from .protocol import model_key, pid_alive


class OtherModel(NanoBananaError):
    """The server serves another model than the one asked for."""


def find_server(spec: EngineSpec, folder: Path | None = None) -> RemoteEngine | None:
    """The running server for ``spec``'s model, or None (no server, or another model)."""
    folder = folder or serve_dir()
    info = read_info(folder)
    if info is None or not pid_alive(info.pid) or info.model != model_key(spec):
        return None
    return RemoteEngine(info, folder)


class RemoteEngine:
    """An engine in a server's worker pool, used one connection per request."""

    def __init__(self, info: ServerInfo, folder: Path) -> None:
        self.info = info
        self._folder = folder
        self.base_name = info.base_name

    def __repr__(self) -> str:
        return f"RemoteEngine(pid {self.info.pid}, {self.info.address})"

    @property
    def loras(self) -> dict:
        """The server's LoRAs by adapter name (facts only, no tensors)."""
        with self._connect() as conn:
            conn.send(("loras",))
            return self._outcome(conn, None)

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        init_image: Image.Image | None = None,
    ) -> GenerationResult:
        """One image, made by the server (redrawn from ``init_image`` if given); hanging up
        (Ctrl+C here) cancels it there."""
        photo = () if init_image is None else (init_image,)
        with self._connect() as conn:
            conn.send(("generate", self.info.model, request, *photo))
            return self._outcome(conn, progress)

    def _connect(self) -> Connection:
        try:
            return Client(self.info.address, family="AF_UNIX", authkey=read_key(self._folder))
        except (OSError, EOFError) as exc:
            raise GenerationError(
                f"the server (pid {self.info.pid}) did not answer at {self.info.address}: {exc}"
            ) from None

    def _outcome(self, conn: Connection, progress: ProgressCallback | None):
        while True:
            try:
                kind, *rest = conn.recv()
            except (EOFError, OSError):
                raise GenerationError(
                    f"the server (pid {self.info.pid}) hung up before answering; "
                    "is it still running?"
                ) from None
            if kind == "progress":
                step, total, elapsed = rest
                if progress is not None:
                    progress(ProgressEvent(step, total, elapsed))
            elif kind == "done":
                return rest[0]
            elif kind == "other-model":
                raise OtherModel("the server serves another model")
            else:
                raise rest[0]
