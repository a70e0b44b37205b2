"""A job queue over one engine: many callers submit, one worker thread runs the jobs in order.

The studio shares one ``Engine`` between all browser sessions. A pipeline runs
one job at a time anyway (the engine's lock), so instead of threads queueing
invisibly on that lock, jobs wait here where a caller can see its place in line,
watch progress and a preview, and cancel. The worker is the only thread that
touches the engine's mutable state (adapters, VAE precision, LoRA loading), and
it saves every finished image to the gallery, so a shell only submits and reads.

A job's failure is its own: our errors become its message, anything unexpected
is logged and becomes a generic message, and the worker carries on.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from ..errors import (
    CancelledError,
    GalleryError,
    GenerationError,
    InvalidSettingError,
    LoraError,
    NanoBananaError,
)
from ..gallery.png import png_bytes
from ..gallery.store import Gallery, GalleryEntry
from ..lora.load import LoraFile
from ..settings import GenerationRequest
from .engine import Engine, GenerationResult, ProgressEvent, release_device_memory
from .photo import PHOTO_NOT_FOR_BOARDS, check_image_to_image
from .preview import LatentPreview, preview_for
from .sheets import (
    LORA_STRENGTHS,
    active_loras,
    check_compare,
    check_sweep,
    compare,
    compare_images,
    sweep,
)

log = logging.getLogger(__name__)

PREVIEWS_PER_IMAGE = 8  # a preview every total/8 steps: visible progress, negligible cost
MAX_KEPT_JOBS = 200  # finished jobs remembered for lookup by id; sessions keep their own
INTERNAL_ERROR = (
    "internal error while running this job (details are in the studio's log); try again"
)


class JobKind(str, Enum):
    GENERATE = "generate"  # one image
    COMPARE = "compare"  # base model vs base + LoRA, same seed
    SWEEP = "sweep"  # one image per LoRA scale, same seed


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobProgress:
    """Where a running job is, over all of its images."""

    image: int  # 1-based index of the image being denoised
    images: int  # images in this job (2 for compare, one per value for sweep)
    step: int  # 1-based step within the current image
    total: int  # steps per image
    elapsed_s: float  # since the job started
    eta_s: float  # estimated seconds left for the whole job

    @property
    def fraction(self) -> float:
        done = (self.image - 1) * self.total + self.step
        return min(1.0, done / max(1, self.images * self.total))


@dataclass(frozen=True)
class JobImage:
    """One finished image of a job, as saved."""

    label: str  # "image", or the panel caption of a comparison / sweep
    result: GenerationResult
    entry: GalleryEntry | None  # None when there is no gallery or saving failed
    png: bytes  # the saved file's exact bytes (metadata included): what a download sends


@dataclass(frozen=True)
class JobResult:
    images: tuple[JobImage, ...]
    sheet: Image.Image | None  # the labelled side-by-side sheet of a compare / sweep
    warnings: tuple[str, ...] = ()  # prompt truncation, gallery trouble


class Job:
    """One submitted job. Read its state from any thread; only the queue's worker changes it."""

    def __init__(
        self,
        job_id: str,
        kind: JobKind,
        request: GenerationRequest,
        sweep_values: tuple[float, ...],
        queue: JobQueue,
        init_image: Image.Image | None = None,
    ) -> None:
        self.id = job_id
        self.kind = kind
        self.request = request  # validated: a random seed is already drawn
        self.sweep_values = sweep_values
        self.init_image = init_image  # image to image: the photo redrawn at request.strength
        self.submitted = time.time()
        self._queue = queue
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._status = JobStatus.QUEUED
        self._progress: JobProgress | None = None
        self._preview: Image.Image | None = None
        self._result: JobResult | None = None
        self._error: str | None = None

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.kind.value}, {self.status.value})"

    # --- reading ---------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        with self._lock:
            return self._status

    @property
    def progress(self) -> JobProgress | None:
        with self._lock:
            return self._progress

    @property
    def preview(self) -> Image.Image | None:
        """The latest rough preview of the image being denoised, if previews are on."""
        with self._lock:
            return self._preview

    @property
    def result(self) -> JobResult | None:
        with self._lock:
            return self._result

    @property
    def error(self) -> str | None:
        """Why the job failed or was cancelled, as a message for the user."""
        with self._lock:
            return self._error

    @property
    def position(self) -> int | None:
        """0 while running, 1 for the next job in line, 2 after that ...; None once finished."""
        return self._queue.position(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; False if ``timeout`` ran out first."""
        return self._finished.wait(timeout)

    # --- acting ----------------------------------------------------------------

    def cancel(self) -> bool:
        """Stop this job: a queued job never runs, a running one stops at its next step.

        Returns False if the job had already finished. Other jobs are not affected.
        """
        self._cancel.set()
        return self._queue._on_cancel(self) or not self.status.finished

    # --- the worker's side -----------------------------------------------------

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, f"_{name}", value)
        if changes.get("status", JobStatus.QUEUED).finished:
            # The photo is not needed again (the record keeps its digest), and the line
            # remembers many finished jobs: a photo each would be megabytes each.
            self.init_image = None
            self._finished.set()


def check_job(
    kind: JobKind,
    request: GenerationRequest,
    sweep_values: Sequence[float],
    preset: Callable[[str], Any],
    loras: dict[str, LoraFile],
) -> GenerationRequest:
    """The validated request (seed drawn) or our error saying what is wrong with it.

    ``preset`` looks a preset up (raising for an unknown one) and ``loras`` are the
    adapters jobs may name. Compare and sweep jobs get the CLI's checks (``sheets.check_*``).
    """
    request = request.validated()
    preset(request.preset)
    chosen = active_loras(request, loras)
    unknown = [name for name in chosen if name not in loras]
    if unknown:
        raise InvalidSettingError(
            f"LoRA '{unknown[0]}' is not loaded; loaded: {', '.join(loras) or 'none'}"
        )
    if kind is JobKind.COMPARE:
        check_compare(request, chosen)
    elif kind is JobKind.SWEEP:
        check_sweep(request, "lora_scale", sweep_values, chosen)
    return request


def check_photo_job(kind: JobKind, request: GenerationRequest) -> None:
    """Our error if a job cannot start from a photo: only a single, plain image can, with a
    strength that redraws something."""
    if kind is not JobKind.GENERATE:
        raise InvalidSettingError(
            "a photo starts a single image only, not a comparison or a sweep; "
            "choose 'Single image' or remove the photo"
        )
    if request.compose:
        raise InvalidSettingError(PHOTO_NOT_FOR_BOARDS)
    check_image_to_image(request)


@dataclass
class _Task:
    """Work other than a job (loading a LoRA) that must run on the worker thread."""

    call: Callable[[], Any]
    future: Future


class JobLine:
    """What every job queue shares: the line of waiting jobs, their ids, submitting, lookup.

    ``JobQueue`` (one engine, a thread) and ``pool.WorkerPool`` (engines in worker
    processes) run the jobs; a subclass sets up ``_init_line`` and answers ``preset``
    (``check`` uses it), and ``_submitted`` hands new work on (a pool dispatches it to a
    free worker).
    """

    def _init_line(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque = deque()
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._loras: dict[str, LoraFile] = {}  # what callers may name
        self._closed = False

    def check(
        self,
        kind: JobKind,
        request: GenerationRequest,
        sweep_values: Sequence[float] = LORA_STRENGTHS,
    ) -> GenerationRequest:
        """The validated request (seed drawn) or our error saying what is wrong with it."""
        return check_job(kind, request, sweep_values, self.preset, self.loras())

    def preset(self, preset_id: str) -> Any:
        """The model's preset ``preset_id`` (raises for an unknown one)."""
        raise NotImplementedError

    def loras(self) -> dict[str, LoraFile]:
        """The LoRAs jobs may use, by adapter name (a snapshot)."""
        with self._cond:
            return dict(self._loras)

    def _loaded_copy(self, path: str | Path) -> LoraFile | None:
        """The loaded entry of the file at ``path`` (same sha256), if it is loaded already."""
        from ..lora.load import file_sha256

        digest = file_sha256(path)
        return next((lora for lora in self.loras().values() if lora.sha256 == digest), None)

    def _submitted(self) -> None:
        """Called after a job joined the line, outside the lock."""

    def submit(
        self,
        kind: JobKind | str,
        request: GenerationRequest,
        sweep_values: Sequence[float] = LORA_STRENGTHS,
        init_image: Image.Image | None = None,
    ) -> Job:
        """Check ``request`` now (errors raise here, nothing is queued) and queue the job.

        With ``init_image`` the image is redrawn from that photo at ``request.strength``."""
        kind = JobKind(kind)
        request = self.check(kind, request, sweep_values)
        if init_image is not None:
            check_photo_job(kind, request)
        with self._cond:
            if self._closed:
                raise GenerationError("the job queue is shut down; restart the studio")
            job = Job(
                f"job-{next(self._ids)}", kind, request, tuple(sweep_values), self, init_image
            )
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old_jobs()
            self._cond.notify_all()
        self._submitted()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def _forget_old_jobs(self) -> None:
        finished = [j for j in self._jobs.values() if j.status.finished]
        for job in finished[: max(0, len(self._jobs) - MAX_KEPT_JOBS)]:
            del self._jobs[job.id]


class JobQueue(JobLine):
    """Runs jobs on ``engine`` one at a time, in submission order, saving results to ``gallery``."""

    def __init__(
        self, engine: Engine, gallery: Gallery | None = None, *, previews: bool = True
    ) -> None:
        self.engine = engine
        self.gallery = gallery
        self._runner = JobRunner(engine, gallery, previews=previews)
        self._init_line()  # jobs and _Tasks wait in one line: a task goes first
        self._running: Job | None = None
        self._loras.update(engine.loras)  # changed only by the worker from now on
        self._worker = threading.Thread(target=self._work, name="nano-banana-jobs", daemon=True)
        self._worker.start()

    def preset(self, preset_id: str) -> Any:
        return self.engine.preset(preset_id)

    def position(self, job: Job) -> int | None:
        with self._cond:
            if self._running is job:
                return 0
            queued = [item for item in self._waiting if isinstance(item, Job)]
            return queued.index(job) + 1 if job in queued else None

    def waiting(self) -> int:
        """Jobs in line, not counting the running one."""
        with self._cond:
            return sum(isinstance(item, Job) for item in self._waiting)

    def busy(self) -> bool:
        with self._cond:
            return self._running is not None

    # --- LoRAs ---------------------------------------------------------------------

    def add_lora(
        self, path: str | Path, name: str | None = None, timeout: float | None = None
    ) -> LoraFile:
        """Read ``path`` with the safe loader and attach it to the engine, on the worker thread.

        Runs before any queued job (after the running one). A file already loaded
        (same sha256) is not loaded twice: its existing entry is returned.
        """
        if (loaded := self._loaded_copy(path)) is not None:
            return loaded
        return self._run_on_worker(lambda: self._attach(path, name), timeout)

    def remove_lora(self, name: str, timeout: float | None = None) -> None:
        """Detach adapter ``name`` from the engine, on the worker thread (after the running job)."""
        if name not in self.loras():
            raise LoraError(f"no LoRA named '{name}' is loaded")
        self._run_on_worker(lambda: self._detach(name), timeout)

    def _detach(self, name: str) -> None:
        self.engine.remove_lora(name)
        with self._cond:
            self._loras.pop(name, None)

    def _attach(self, path: str | Path, name: str | None) -> LoraFile:
        lora = self.engine.add_lora(path, name=name)
        with self._cond:
            self._loras[lora.name] = lora
        return lora

    def _run_on_worker(self, call: Callable[[], Any], timeout: float | None) -> Any:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise GenerationError("the job queue is shut down; restart the studio")
            self._waiting.appendleft(_Task(call, future))
            self._cond.notify_all()
        return future.result(timeout)

    # --- shutting down --------------------------------------------------------------

    def close(self, timeout: float | None = 30.0) -> None:
        """Cancel everything, stop the worker and wait for it."""
        with self._cond:
            self._closed = True
            pending = list(self._waiting)
            self._waiting.clear()
            running = self._running
            self._cond.notify_all()
        for item in pending:
            if isinstance(item, Job):
                item._cancel.set()
                item._set(status=JobStatus.CANCELLED, error="the studio is shutting down")
            else:
                item.future.set_exception(GenerationError("the studio is shutting down"))
        if running is not None:
            running._cancel.set()
        self._worker.join(timeout)

    # --- the worker ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item = self._waiting.popleft()
                if isinstance(item, Job):
                    self._running = item
            try:
                if isinstance(item, Job):
                    self._run_job(item)
                else:
                    self._run_task(item)
            finally:
                with self._cond:
                    self._running = None

    def _run_task(self, task: _Task) -> None:
        try:
            task.future.set_result(task.call())
        except BaseException as exc:  # handed to the caller, who waits on the future
            task.future.set_exception(exc)

    def _run_job(self, job: Job) -> None:
        self._runner.run(job)

    def _on_cancel(self, job: Job) -> bool:
        """Take a cancelled job out of the line; True if it was waiting (a running one sees its flag)."""
        with self._cond:
            if job not in self._waiting:
                return False
            self._waiting.remove(job)
        job._set(status=JobStatus.CANCELLED, error="cancelled before it started")
        return True


class RunnableJob(Protocol):
    """What a runner needs of a job: the queue's ``Job``, or a worker process's stand-in for one."""

    id: str
    kind: JobKind
    request: GenerationRequest
    sweep_values: tuple[float, ...]
    init_image: Image.Image | None  # image to image: the photo to redraw (GENERATE jobs only)
    _cancel: Any  # anything with is_set(): the engine polls it between steps

    def _set(self, **changes: Any) -> None: ...


class JobRunner:
    """Runs jobs on one engine and saves their images: the part of a queue that touches the model.

    ``JobQueue`` calls it on its worker thread, a pool's worker process calls it for
    the jobs it is sent; both report through the job's ``_set``.
    """

    def __init__(
        self,
        engine: Engine,
        gallery: Gallery | None = None,
        *,
        previews: bool = True,
        downloads: bool = True,
    ) -> None:
        self.engine = engine
        self.gallery = gallery
        self._previews_wanted = previews
        self._downloads = downloads  # keep each image's PNG bytes (clients that save their own: no)
        self._preview_map: LatentPreview | None = None
        self._preview_tried = False

    def run(self, job: RunnableJob) -> None:
        """Run ``job`` to a finished state; every outcome, failures included, goes through ``job._set``."""
        if job._cancel.is_set():
            job._set(status=JobStatus.CANCELLED, error="cancelled")
            return
        job._set(status=JobStatus.RUNNING)
        try:
            job._set(status=JobStatus.DONE, result=self._execute(job))
        except CancelledError:
            job._set(status=JobStatus.CANCELLED, error="cancelled")
        except NanoBananaError as exc:
            job._set(status=JobStatus.FAILED, error=str(exc))
        except torch.OutOfMemoryError:
            release_device_memory()
            job._set(
                status=JobStatus.FAILED,
                error=(f"out of memory on {self.engine.device}; try a smaller size or fewer steps"),
            )
        except Exception:
            log.exception("job %s (%s) failed unexpectedly", job.id, job.kind.value)
            job._set(status=JobStatus.FAILED, error=INTERNAL_ERROR)

    def _execute(self, job: RunnableJob) -> JobResult:
        """Run the job's generations with progress, then save every image."""
        images = {JobKind.GENERATE: 1, JobKind.COMPARE: compare_images(job.request)}.get(
            job.kind, len(job.sweep_values)
        )
        progress = self._progress_callback(job, images)
        if job.kind is JobKind.GENERATE:
            result = self.engine.generate(
                job.request, progress=progress, cancel=job._cancel, init_image=job.init_image
            )
            made, sheet = [("image", result)], None
        else:
            if job.kind is JobKind.COMPARE:
                sheet_result = compare(
                    self.engine, job.request, progress=progress, cancel=job._cancel
                )
            else:
                sheet_result = sweep(
                    self.engine,
                    job.request,
                    "lora_scale",
                    job.sweep_values,
                    progress=progress,
                    cancel=job._cancel,
                )
            made = [(panel.label, panel.result) for panel in sheet_result.panels]
            sheet = sheet_result.sheet
        warnings = list(dict.fromkeys(r.plan.warning() for _, r in made if r.plan.warning()))
        saved = [self._save(label, result, warnings) for label, result in made]
        return JobResult(tuple(saved), sheet, tuple(warnings))

    def _progress_callback(self, job: RunnableJob, images: int) -> Callable[[ProgressEvent], None]:
        preview = self._preview_for_engine()
        started = time.perf_counter()
        state = {"image": 1, "last_step": 0}

        def on_step(event: ProgressEvent) -> None:
            if event.step <= state["last_step"]:
                state["image"] += 1  # a new image of a compare / sweep began
            state["last_step"] = event.step
            elapsed = time.perf_counter() - started
            done = (state["image"] - 1) * event.total + event.step
            left = images * event.total - done
            changes: dict[str, Any] = {
                "progress": JobProgress(
                    state["image"], images, event.step, event.total, elapsed, elapsed / done * left
                )
            }
            every = max(1, event.total // PREVIEWS_PER_IMAGE)
            if preview is not None and event.latents is not None and event.step % every == 0:
                changes["preview"] = preview.preview_image(event.latents)
            job._set(**changes)

        return on_step

    def _preview_for_engine(self) -> LatentPreview | None:
        """Fit the preview map on first use; a VAE it cannot handle just means no previews."""
        if self._previews_wanted and not self._preview_tried:
            self._preview_tried = True
            try:
                self._preview_map = preview_for(self.engine.pipe.vae)  # one fit per VAE
            except Exception:
                log.warning("latent previews are off: fitting them failed", exc_info=True)
        return self._preview_map

    def _save(self, label: str, result: GenerationResult, warnings: list[str]) -> JobImage:
        """Into the gallery; the download bytes are read back from the saved file."""
        if self.gallery is not None:
            try:
                entry = self.gallery.save(result.image, result.record)
                return JobImage(label, result, entry, self.gallery.read_bytes(entry.id))
            except GalleryError as exc:
                warnings.append(f"not saved to the gallery: {exc}")
        png = png_bytes(result.image, result.record) if self._downloads else b""
        return JobImage(label, result, None, png)
