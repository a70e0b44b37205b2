"""The server behind ``nano-banana serve``: a worker pool and a local socket.

Each client connection carries one generation: the client sends the model it
wants and the request; the server checks the model is the one it serves, queues
the job in its pool, relays the job's progress, and answers with the result (or
the error). A client that hangs up (Ctrl+C) cancels its job. Clients save their
images themselves, exactly as they would without a server, so the pool keeps no
gallery and no PNG bytes.
"""

from __future__ import annotations

import logging
import os
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from pathlib import Path

from ..errors import CancelledError, GenerationError, NanoBananaError
from ..generate.jobs import Job, JobKind, JobStatus
from ..generate.launch import Launcher
from ..generate.pool import PoolConfig, WorkerPool
from ..generate.spec import EngineSpec
from .address import ServerInfo, prepare, publish, read_info, withdraw
from .protocol import model_key, pid_alive

log = logging.getLogger(__name__)
RELAY_S = 0.1  # how often a waiting connection looks at its job (progress, hang-ups)


class Server:
    """A warm pool of engines that ``nano-banana`` commands on this machine can use."""

    def __init__(
        self,
        spec: EngineSpec,
        folder: Path,
        config: PoolConfig = PoolConfig(),
        launcher: Launcher | None = None,
    ) -> None:
        self.spec = spec.resolve()
        self.folder = folder
        _refuse_second_server(folder)
        key = prepare(folder)
        socket = folder / "server.sock"
        socket.unlink(missing_ok=True)  # left by a server that was killed
        self.pool = WorkerPool(
            self.spec, None, PoolConfig(**{**config.__dict__, "downloads": False})
        )
        try:
            self.listener = Listener(str(socket), family="AF_UNIX", authkey=key)
            os.chmod(socket, 0o600)
            info = ServerInfo(
                address=str(socket),
                pid=os.getpid(),
                model=model_key(self.spec),
                workers=len(self.pool.worker_pids()),
                base_name=self.pool.model.base_name,
            )
            publish(folder, info)
        except BaseException:
            self.pool.close()
            raise
        self._closed = threading.Event()

    def serve_forever(self) -> None:
        """Accept clients until ``close`` (or Ctrl+C in the caller)."""
        while not self._closed.is_set():
            try:
                conn = self.listener.accept()
            except (OSError, EOFError, AuthenticationError) as exc:  # closed, or a bad client
                if self._closed.is_set():
                    return
                log.warning("a connection was refused: %s", exc)
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self.listener.close()  # removes the socket file too
        withdraw(self.folder, os.getpid())
        self.pool.close()

    # --- one client -----------------------------------------------------------------------

    def _handle(self, conn: Connection) -> None:
        try:
            with conn:
                self._answer(conn, conn.recv())
        except (EOFError, OSError):
            pass  # the client went away; its job, if any, was cancelled in _relay

    def _answer(self, conn: Connection, message: tuple) -> None:
        if message[0] == "loras":
            conn.send(("done", self.pool.loras()))
            return
        if message[0] != "generate":
            conn.send(("error", GenerationError(f"unknown request {message[0]!r}")))
            return
        _, model, request, *photo = message  # a photo follows for image to image
        if model != model_key(self.spec):
            conn.send(("other-model", None))
            return
        try:
            job = self.pool.submit(JobKind.GENERATE, request, init_image=next(iter(photo), None))
        except NanoBananaError as exc:
            conn.send(("error", exc))
            return
        self._relay(conn, job)

    def _relay(self, conn: Connection, job: Job) -> None:
        """Progress while the job runs, then its outcome; a hang-up cancels the job."""
        last = None
        while True:
            finished = job.wait(RELAY_S)
            progress = job.progress  # the last step too, so a client's bar ends full
            if progress is not None and progress != last:
                last = progress
                conn.send(("progress", progress.step, progress.total, progress.elapsed_s))
            if finished:
                break
            if conn.poll():  # a client only speaks to hang up: EOF
                job.cancel()
                return
        if job.status is JobStatus.DONE:
            conn.send(("done", job.result.images[0].result))
        elif job.status is JobStatus.CANCELLED:
            conn.send(("error", CancelledError(job.error or "cancelled")))
        else:
            conn.send(("error", GenerationError(job.error or "the job failed")))


def _refuse_second_server(folder: Path) -> None:
    info = read_info(folder)
    if info is not None and pid_alive(info.pid):
        raise NanoBananaError(
            f"a server is already running (pid {info.pid}, {info.address}); stop it first, "
            f"or give this one another folder with $NANO_BANANA_SERVE_DIR"
        )
