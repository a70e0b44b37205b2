"""How a ``WorkerPool`` starts its workers: as local processes, or as Ray actors on a cluster.

Either way a worker connects back to the pool over an authenticated
``multiprocessing.connection`` and runs ``worker.serve``; the pool neither knows
nor cares where. What a launcher decides is where the pool listens (a private
Unix socket locally, a TCP port on this node's address for a cluster), how many
workers there are by default and on which device, and how to start, watch and
kill one. A handle answers ``poll``/``wait``/``kill`` like ``subprocess.Popen``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Protocol

from ..errors import GenerationError, NanoBananaError


class WorkerHandle(Protocol):
    pid: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


class Launcher(Protocol):
    def listen_address(self) -> Any:
        """The address the pool's ``Listener`` binds (None: a private Unix socket)."""

    def devices(self, device: str, workers: int | None) -> list[str | None]:
        """The device of each worker to start (None: the model spec's own)."""

    def launch(self, address: Any, authkey: bytes, slot: int, device: str | None) -> WorkerHandle:
        """Start one worker that connects to ``address`` with ``authkey``."""


class LocalLauncher:
    """Workers as child processes of this one: ``python -m nano_banana.generate.worker``.

    A new interpreter rather than ``multiprocessing``: no fork of a process holding
    torch's threads, and no re-running of the caller's main script (Streamlit's, a
    user's) that spawn-mode multiprocessing does. The key goes over stdin, not argv or
    the environment, where other programs of the same user could read it.
    """

    def listen_address(self) -> Any:
        return None

    def devices(self, device: str, workers: int | None) -> list[str | None]:
        """One worker per CUDA GPU (round robin when asked for more), else one."""
        gpus = 0
        if device in ("auto", "cuda"):
            import torch

            gpus = torch.cuda.device_count()
        count = _count(workers, max(1, gpus))
        if gpus == 0:
            return [None] * count
        return [f"cuda:{i % gpus}" for i in range(count)]

    def launch(self, address: Any, authkey: bytes, slot: int, device: str | None) -> WorkerHandle:
        process = subprocess.Popen(
            [sys.executable, "-m", "nano_banana.generate.worker", str(address)],
            stdin=subprocess.PIPE,
            text=True,
        )
        process.stdin.write(authkey.hex() + "\n")
        process.stdin.close()
        return process


class RayLauncher:
    """Workers as Ray actors, one GPU each where the cluster has GPUs (an optional extra).

    ``address`` is Ray's: "auto" joins the cluster this machine belongs to (``ray start``),
    None starts a local one. Actors run ``nano_banana`` as installed on their node, and
    connect back to the pool over TCP on this node's address with the pool's key.
    """

    def __init__(self, address: str | None = "auto") -> None:
        try:
            import ray
        except ImportError:
            raise NanoBananaError(
                "Ray is not installed: pip install 'nano-banana-studio[ray]' (or drop --ray)"
            ) from None
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except ConnectionError as exc:
                raise NanoBananaError(
                    f"no Ray cluster at {address!r}: {exc}; start one with `ray start --head`"
                ) from None
        self._gpus = int(ray.cluster_resources().get("GPU", 0))
        self._actor = _engine_actor(ray)

    def listen_address(self) -> Any:
        return (self._ray.util.get_node_ip_address(), 0)

    def devices(self, device: str, workers: int | None) -> list[str | None]:
        """One worker per GPU of the cluster (each actor sees its own as cuda), else one."""
        count = _count(workers, max(1, self._gpus))
        return ["cuda" if self._gpus else None] * count

    def launch(self, address: Any, authkey: bytes, slot: int, device: str | None) -> WorkerHandle:
        gpus = 1 if device == "cuda" else 0
        actor = self._actor.options(num_gpus=gpus, num_cpus=1, name=None).remote()
        pid = self._ray.get(actor.pid.remote())
        return _RayHandle(self._ray, actor, actor.serve.remote(address, authkey), pid)


def launcher_for(ray: str | None) -> Launcher:
    """The launcher a ``--ray`` option asks for: local processes without it; "local" starts
    a Ray cluster on this machine, any other value is Ray's address of a running one."""
    if ray is None:
        return LocalLauncher()
    return RayLauncher(None if ray == "local" else ray)


def _count(workers: int | None, default: int) -> int:
    count = default if workers is None else workers
    if count < 1:
        raise GenerationError(f"a worker pool needs at least 1 worker, got {count}")
    return count


class _RayHandle:
    """A Ray actor running ``worker.serve``, answering like ``subprocess.Popen``."""

    def __init__(self, ray, actor, serving, pid: int) -> None:
        self._ray, self._actor, self._serving = ray, actor, serving
        self.pid = pid

    def poll(self) -> int | None:
        done, _ = self._ray.wait([self._serving], timeout=0)
        return self._exit_code() if done else None

    def wait(self, timeout: float | None = None) -> int:
        done, _ = self._ray.wait([self._serving], timeout=timeout)
        if not done:
            raise subprocess.TimeoutExpired(f"ray actor {self.pid}", timeout)
        return self._exit_code()

    def kill(self) -> None:
        self._ray.kill(self._actor)

    def _exit_code(self) -> int:
        try:
            self._ray.get(self._serving)
        except Exception:  # the actor died (killed, crashed): like a signalled process
            return -9
        self._ray.kill(self._actor)  # an actor serves one worker's life; free its slot
        return 0


def _engine_actor(ray):
    """The actor class, made here so that importing this module never needs Ray."""

    @ray.remote
    class EngineWorker:
        def pid(self) -> int:
            return os.getpid()

        def serve(self, address: Any, authkey: bytes) -> None:
            from multiprocessing.connection import Client

            from nano_banana.generate import worker

            conn = Client(tuple(address), authkey=authkey)
            try:
                worker.serve(conn)
            finally:
                conn.close()

    return EngineWorker
