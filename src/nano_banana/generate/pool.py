"""A pool of worker processes, each with its own engine, behind ``JobQueue``'s interface.

Why processes: when generation ran in the studio's web process, every browser
watching a job (Streamlit reruns its fragments about once a second) competed with
the generating thread for the one GIL, and a watched image took up to 10x longer.
Here the web process only keeps the line of jobs and their state; each engine runs
in a worker process of its own, one per GPU by default (one on a CPU-only machine).

The parent side keeps every waiting job in one line, so the place in queue is right
whatever the number of workers; a free worker gets the next job. A reader thread per
worker applies what the worker reports (progress, previews, the result) to the
caller's ``Job``, so the studio's pages cannot tell a pool from an in-process queue.
Cancelling a running job sets a number in shared memory that the worker's engine
reads between steps: no message has to get through while it computes.

A worker that dies (killed, out of host memory, a crash in native code) ends its job
with a message saying so; the job can be submitted again, and the worker is started
again with the LoRAs added since the pool began.

The worker side (``_worker_main``) loads the engine from the ``EngineSpec``, sends
the facts the web process needs (presets, prompt tokenizers, native size, LoRAs),
then runs what it is sent, one thing at a time, with ``JobRunner``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from multiprocessing.connection import Listener
from pathlib import Path
from typing import Any

from ..errors import GenerationError, LoraError
from ..gallery.store import Gallery
from ..lora.load import LoraFile
from ..prompt.loratags import lora_aliases
from ..prompt.plan import PromptPlan
from ..prompt.presets import Preset, get_preset
from ..settings import GenerationRequest
from .jobs import INTERNAL_ERROR, Job, JobLine, JobStatus
from .launch import Launcher, LocalLauncher
from .spec import EngineSpec
from .worker import ModelFacts, decode_preview

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolConfig:
    workers: int | None = None  # None: one per CUDA GPU (each its own engine), one without a GPU
    previews: bool = True  # latent previews while denoising
    downloads: bool = True  # each image's PNG bytes for a download (serve's clients save their own)
    # Loading SDXL from a cold disk takes minutes; a worker silent for longer is broken.
    start_timeout_s: float = 900.0
    # A worker that dies again and again (a model that crashes on load) is not restarted forever.
    max_restarts: int = 5


class PoolModel:
    """The model as the web process sees it: facts and prompt plans, no weights.

    It answers what the studio asks an ``Engine`` (``plan``, ``preset``, ``presets``,
    ``native_size``, ``base_name``), with the pool's current LoRAs for ``<lora:>`` tags.
    """

    def __init__(self, facts: ModelFacts, pool: WorkerPool) -> None:
        self.facts = facts
        self._pool = pool
        self._lock = threading.Lock()  # the tokenizers keep per-call state

    base_name = property(lambda self: self.facts.base_name)
    native_size = property(lambda self: self.facts.native_size)
    presets = property(lambda self: self.facts.presets)
    device = property(lambda self: self.facts.device)

    def preset(self, preset_id: str) -> Preset:
        return get_preset(self.presets, preset_id)

    def plan(self, request: GenerationRequest) -> PromptPlan:
        from .engine import plan_request

        aliases = {name: lora_aliases(name, lora) for name, lora in self._pool.loras().items()}
        with self._lock:
            return plan_request(request, self.presets, self.facts.tokenizers, aliases)


class _Worker:
    """The web process's handle on one worker process."""

    def __init__(self, slot: int, device: str | None) -> None:
        self.slot = slot
        self.device = device
        self.process: Any = None
        self.conn: Any = None
        self.send_lock = threading.Lock()
        self.ready = threading.Event()
        self.failure: str | None = None  # why it could not start
        self.job: Job | None = None
        self.job_no = 0
        self.restarts = 0
        self.stopping = False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.conn is not None

    def send(self, message: tuple) -> None:
        with self.send_lock:
            self.conn.send(message)


class WorkerPool(JobLine):
    """Jobs in one line, run by worker processes; the same interface as ``JobQueue``."""

    def __init__(
        self,
        spec: EngineSpec,
        gallery: Gallery | None = None,
        config: PoolConfig = PoolConfig(),
        launcher: Launcher | None = None,
    ) -> None:
        self.spec = spec.resolve()
        self._launcher = launcher or LocalLauncher()
        self.gallery = gallery
        self.config = config
        self._init_line()
        self._task_nos = itertools.count(1)
        self._tasks: dict[int, _Task] = {}
        self._added: list[tuple[str, str]] = []  # (path, name) added since start, for restarts
        self.model: PoolModel | None = None
        devices = self._launcher.devices(self.spec.device, config.workers)
        self._workers = [_Worker(slot, device) for slot, device in enumerate(devices)]
        for worker in self._workers:
            self._start(worker)
        try:
            self._wait_started()
        except BaseException:
            self.close()
            raise

    # --- starting workers ----------------------------------------------------------

    def _start(self, worker: _Worker) -> None:
        """Start ``worker`` through the launcher; its reader thread hands it its settings."""
        worker.ready.clear()
        worker.failure = None
        authkey = secrets.token_bytes(32)
        listener = Listener(self._launcher.listen_address(), authkey=authkey)
        worker.process = self._launcher.launch(
            listener.address, authkey, worker.slot, worker.device
        )
        spec = self.spec if worker.device is None else replace(self.spec, device=worker.device)
        gallery = None if self.gallery is None else str(self.gallery.root)
        settings = ("init", spec, gallery, self.config, tuple(self._added))
        threading.Thread(
            target=self._connect,
            args=(worker, listener, settings),
            name=f"pool-reader-{worker.slot}",
            daemon=True,
        ).start()

    def _connect(self, worker: _Worker, listener: Listener, settings: tuple) -> None:
        """The worker's reader thread: accept its connection, then read until it exits."""
        connected = threading.Event()
        threading.Thread(
            target=_close_if_exits, args=(worker.process, listener, connected), daemon=True
        ).start()
        try:
            conn = listener.accept()
        except OSError:  # the worker died before it connected (the watchdog closed the socket)
            self._on_exit(worker)
            return
        finally:
            connected.set()
            listener.close()
        worker.conn = conn
        worker.send(settings)
        self._read(worker, conn)

    def _wait_started(self) -> None:
        """Until every worker has loaded its model; the first failure is raised as it is."""
        deadline = time.monotonic() + self.config.start_timeout_s
        for worker in self._workers:
            if not worker.ready.wait(max(0.0, deadline - time.monotonic())):
                raise GenerationError(
                    f"worker {worker.slot} did not load the model within "
                    f"{self.config.start_timeout_s:.0f} s"
                )
            if worker.failure is not None:
                raise GenerationError(worker.failure)

    # --- the line (submit and get come from JobLine) ---------------------------------------

    def _submitted(self) -> None:
        self._dispatch()

    def preset(self, preset_id: str) -> Preset:
        return self.model.preset(preset_id)

    def position(self, job: Job) -> int | None:
        """0 while running, 1 for the next job to start, ...; None once finished."""
        with self._cond:
            if any(worker.job is job for worker in self._workers):
                return 0
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def busy(self) -> bool:
        with self._cond:
            return any(worker.job is not None for worker in self._workers)

    def worker_pids(self) -> list[int | None]:
        """Each worker's process id (None while it is not running), by slot."""
        with self._cond:
            return [w.process.pid if w.alive else None for w in self._workers]

    def running_on(self, job: Job) -> int | None:
        """The slot of the worker running ``job``, if one is."""
        with self._cond:
            return next((w.slot for w in self._workers if w.job is job), None)

    # --- LoRAs -----------------------------------------------------------------------------

    def add_lora(
        self, path: str | Path, name: str | None = None, timeout: float | None = None
    ) -> LoraFile:
        """Load ``path`` into every worker's engine, after each one's running job.

        A file already loaded (same sha256) is not loaded twice: its entry is returned.
        The web process keeps only facts of each LoRA (no tensors).
        """
        if (loaded := self._loaded_copy(path)) is not None:
            return loaded
        lora = self._ask_every_worker(("add_lora", str(path), name), timeout)
        with self._cond:
            self._loras[lora.name] = lora
            self._added.append((str(path), lora.name))
        return lora

    def remove_lora(self, name: str, timeout: float | None = None) -> None:
        """Unload adapter ``name`` from every worker (after each one's running job)."""
        if name not in self.loras():
            raise LoraError(f"no LoRA named '{name}' is loaded")
        self._ask_every_worker(("remove_lora", name), timeout)
        with self._cond:
            self._loras.pop(name, None)
            self._added = [(path, n) for path, n in self._added if n != name]

    def _ask_every_worker(self, message: tuple, timeout: float | None) -> Any:
        """Send ``message`` to every live worker; the first answer, or the first error raised."""
        futures = []
        with self._cond:
            if self._closed:
                raise GenerationError("the job queue is shut down; restart the studio")
            for worker in self._workers:
                if worker.alive and worker.failure is None:
                    task = _Task(next(self._task_nos), worker.slot, Future())
                    self._tasks[task.no] = task
                    worker.send((message[0], task.no, *message[1:]))
                    futures.append(task.future)
        if not futures:
            raise GenerationError("no worker is running; restart the studio")
        deadline = None if timeout is None else time.monotonic() + timeout
        answers = [
            f.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
            for f in futures
        ]
        return answers[0]

    # --- cancelling and shutting down -----------------------------------------------------

    def _on_cancel(self, job: Job) -> bool:
        """Called by ``Job.cancel``: a waiting job leaves the line (True), a running one is
        flagged for its worker, which stops at the next step."""
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
            else:
                for worker in self._workers:
                    if worker.job is job:
                        self._send_cancel(worker)
                return False
        job._set(status=JobStatus.CANCELLED, error="cancelled before it started")
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Cancel everything, stop the workers and wait for them."""
        with self._cond:
            self._closed = True
            pending = list(self._waiting)
            self._waiting.clear()
            for worker in self._workers:
                worker.stopping = True
                if worker.job is not None:
                    self._send_cancel(worker)
        for job in pending:
            job._cancel.set()
            job._set(status=JobStatus.CANCELLED, error="the studio is shutting down")
        for worker in self._workers:
            if worker.alive:
                with contextlib.suppress(OSError):  # already gone
                    worker.send(("stop",))
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker.process is None:
                continue
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(5)
        self._fail_tasks(None, "the studio is shutting down")

    def _send_cancel(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):  # a dying worker: its job fails anyway
            worker.send(("cancel", worker.job_no))

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- dispatching and reading --------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand waiting jobs to free workers, in line order."""
        with self._cond:
            for worker in self._workers:
                if not self._waiting:
                    return
                if worker.job is not None or not worker.ready.is_set() or worker.failure:
                    continue
                if not worker.alive:
                    continue
                job = self._waiting.popleft()
                worker.job, worker.job_no = job, next(self._ids)
                # A worker dying right now: its reader fails the job and restarts it.
                with contextlib.suppress(OSError):
                    worker.send(
                        ("job", worker.job_no, job.id, job.kind, job.request, job.sweep_values,
                         job.init_image)
                    )  # fmt: skip

    def _read(self, worker: _Worker, conn: Any) -> None:
        """Apply one worker's reports until it exits; then fail its job and start it again."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a report that cannot be unpickled: the job's result is lost
                log.exception("worker %d sent a report that could not be read", worker.slot)
                self._finish_job(worker, JobStatus.FAILED, INTERNAL_ERROR)
                continue
            self._apply(worker, message)
        self._on_exit(worker)

    def _apply(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            facts, loras = message[1], message[2]
            with self._cond:
                if self.model is None:
                    self.model = PoolModel(facts, self)
                    self._loras.update(loras)
            worker.ready.set()
            self._dispatch()
        elif kind == "failed":
            worker.failure = message[1]
            worker.ready.set()
            self._fail_waiting_if_no_worker()  # a restart that cannot load: say so, don't hang
        elif kind == "set":
            job_no, changes = message[1], message[2]
            with self._cond:
                job = worker.job if worker.job_no == job_no else None
            if job is None:
                return  # a late report of a job already ended here
            if isinstance(changes.get("preview"), bytes):  # JPEG on the wire (worker.Outbox)
                changes["preview"] = decode_preview(changes["preview"])
            job._set(**changes)
            if changes.get("status", JobStatus.RUNNING).finished:
                with self._cond:
                    worker.job = None
                self._dispatch()
        elif kind == "answer":
            task_no, ok, value = message[1], message[2], message[3]
            with self._cond:
                task = self._tasks.pop(task_no, None)
            if task is not None:
                if ok:
                    task.future.set_result(value)
                else:
                    task.future.set_exception(value)

    def _on_exit(self, worker: _Worker) -> None:
        worker.conn = None
        if worker.stopping:
            return  # close() waits for it
        try:
            code = worker.process.wait(5)
        except subprocess.TimeoutExpired:  # it closed its end but lingers: end it
            worker.process.kill()
            code = worker.process.wait(5)
        log.error("worker %d stopped unexpectedly (exit code %s)", worker.slot, code)
        self._finish_job(
            worker,
            JobStatus.FAILED,
            f"the worker running this job stopped unexpectedly (exit code {code}) before it "
            "finished; it is being restarted — submit the job again to retry",
        )
        self._fail_tasks(worker.slot, "the worker stopped while loading the LoRA; try again")
        if not worker.ready.is_set():
            worker.failure = (
                worker.failure or f"the worker stopped while loading (exit code {code})"
            )
            worker.ready.set()
            return
        if worker.restarts >= self.config.max_restarts:
            worker.failure = (
                f"worker {worker.slot} stopped {worker.restarts + 1} times; not restarted"
            )
            self._fail_waiting_if_no_worker()
            return
        worker.restarts += 1
        with self._cond:
            if self._closed:
                return
            self._start(worker)

    def _finish_job(self, worker: _Worker, status: JobStatus, error: str) -> None:
        with self._cond:
            job, worker.job = worker.job, None
        if job is not None and not job.status.finished:
            job._set(status=status, error=error)

    def _fail_tasks(self, slot: int | None, message: str) -> None:
        with self._cond:
            ended = [t for t in self._tasks.values() if slot is None or t.slot == slot]
            for task in ended:
                del self._tasks[task.no]
        for task in ended:
            if not task.future.done():
                task.future.set_exception(GenerationError(message))

    def _fail_waiting_if_no_worker(self) -> None:
        with self._cond:
            if any(w.failure is None for w in self._workers):
                return
            pending = list(self._waiting)
            self._waiting.clear()
        for job in pending:
            job._set(status=JobStatus.FAILED, error="no worker is running; restart the studio")


@dataclass
class _Task:
    """A request to one worker (load or unload a LoRA) waiting for its answer."""

    no: int
    slot: int
    future: Future


def _close_if_exits(
    process: subprocess.Popen, listener: Listener, connected: threading.Event
) -> None:
    """Unblock ``listener.accept()`` if the worker dies before it connects."""
    while not connected.wait(0.2):
        if process.poll() is not None:
            with contextlib.suppress(OSError):
                listener.close()
            return
