"""One worker process of a ``WorkerPool``: an engine that runs the jobs it is sent.

Started by the pool as ``python -m nano_banana.generate.worker ADDRESS`` with the
connection's key on stdin (not in argv or the environment, where other programs of
the same user could read it). It connects back, receives its settings, loads the
engine, reports the model's facts, then runs jobs and LoRA requests one at a time.

A reader thread takes every incoming message: a cancel is applied at once (the
engine reads the flag between steps), everything else waits in line for the main
thread. When the web process goes away the connection ends, and so does the worker.
"""

from __future__ import annotations

import io
import logging
import queue
import signal
import sys
import threading
from dataclasses import dataclass, replace
from multiprocessing.connection import Client
from typing import Any

from ..errors import GenerationError, NanoBananaError
from ..gallery.store import Gallery
from ..lora.load import LoraFile
from ..prompt.presets import Preset
from .jobs import JobRunner

log = logging.getLogger(__name__)
STOP = ("stop",)


@dataclass(frozen=True)
class ModelFacts:
    """What the web process needs of the model a worker runs, sent once when it is ready."""

    base_name: str
    native_size: tuple[int, int]
    presets: dict[str, Preset]
    device: str
    tokenizers: tuple[Any, Any]  # copies of the pipeline's, for prompt plans


class _CancelState:
    """The number of the job the web process asked to stop (0: none)."""

    def __init__(self) -> None:
        self.job_no = 0


class _CancelFlag:
    """The engine's cancel check for one job: has this job's number been named?"""

    def __init__(self, state: _CancelState, job_no: int) -> None:
        self._state, self._no = state, job_no

    def is_set(self) -> bool:
        return self._state.job_no == self._no


class Outbox:
    """Everything the worker sends, from one sender thread, so the engine never waits on the
    socket: a web process busy with its pages reads late, and a blocking send would stall
    the denoising loop mid-step (measured: ~0.4 s an image with three pages watching).

    Progress and previews only matter at their latest: each job's pending ones are merged,
    and stale ones dropped. Everything else (status, results, answers) is sent in order,
    after the progress that came before it.
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._cond = threading.Condition()
        self._ordered: list[tuple] = []
        self._latest: dict[int, dict[str, Any]] = {}  # job number -> merged progress changes
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="worker-outbox", daemon=True)
        self._thread.start()

    def send(self, message: tuple) -> None:
        with self._cond:
            self._ordered.append(message)
            self._cond.notify()

    def post_progress(self, job_no: int, changes: dict[str, Any]) -> None:
        with self._cond:
            self._latest.setdefault(job_no, {}).update(changes)
            self._cond.notify()

    def close(self) -> None:
        """Send what is pending, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._ordered or self._latest or self._closed):
                    self._cond.wait()
                latest, self._latest = self._latest, {}
                ordered, self._ordered = self._ordered, []
                closing = self._closed
            try:
                for job_no, changes in latest.items():
                    self._conn.send(("set", job_no, changes))
                for message in ordered:
                    self._conn.send(message)
            except (OSError, EOFError):
                return  # the web process is gone; the main loop ends on its own
            if closing:
                return


PREVIEW_JPEG_QUALITY = 85  # ~10 KB for a 256 px preview, where raw pixels pickle to ~200 KB


class _RemoteJob:
    """The worker's stand-in for a ``Job``: what the runner sets goes out through the outbox."""

    def __init__(self, outbox: Outbox, message: tuple, cancel: _CancelState) -> None:
        _, self._no, self.id, self.kind, self.request, self.sweep_values, self.init_image = message
        self._outbox = outbox
        self._cancel = _CancelFlag(cancel, self._no)

    def _set(self, **changes: Any) -> None:
        if "status" in changes:
            self._outbox.send(("set", self._no, changes))
            return
        if changes.get("preview") is not None:
            changes["preview"] = encode_preview(changes["preview"])
        self._outbox.post_progress(self._no, changes)


def encode_preview(image) -> bytes:
    """A preview as JPEG bytes: what crosses to the web process (``decode_preview`` there)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=PREVIEW_JPEG_QUALITY)
    return buffer.getvalue()


def decode_preview(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def light(lora: LoraFile) -> LoraFile:
    """``lora`` without its tensors: what the web process needs to list and match it."""
    return replace(lora, state_dict={}, tensors={}, module_alphas={})


def _facts(engine) -> ModelFacts:
    return ModelFacts(
        base_name=engine.base_name,
        native_size=tuple(engine.native_size),
        presets=engine.presets,
        device=str(engine.device),
        tokenizers=engine._plan_tokenizers,
    )


def _load(settings: tuple):
    """The engine and gallery the pool's settings describe."""
    from ..model.load import quiet_libraries

    _, spec, gallery_root, config, added = settings
    quiet_libraries()  # the studio shows progress; the server log need not carry library noise
    engine = spec.load()
    for path, name in added:
        engine.add_lora(path, name=name)
    gallery = Gallery.open(gallery_root) if gallery_root is not None else None
    return JobRunner(engine, gallery, previews=config.previews, downloads=config.downloads)


def _answer(engine, message: tuple) -> tuple[bool, Any]:
    """Run a LoRA request on this worker's engine: (True, value) or (False, the error)."""
    try:
        if message[0] == "add_lora":
            return True, light(engine.add_lora(message[2], name=message[3]))
        if message[0] == "remove_lora":
            engine.remove_lora(message[2])
            return True, None
        return False, GenerationError(f"unknown request {message[0]!r}")
    except NanoBananaError as exc:
        return False, exc
    except Exception as exc:
        log.exception("worker request %s failed", message[0])
        return False, GenerationError(f"{message[0]} failed: {type(exc).__name__}: {exc}")


def _receive(conn: Any, inbox: queue.Queue, cancel: _CancelState) -> None:
    """The reader thread: cancels take effect now, the rest waits for the main thread."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            inbox.put(STOP)  # the web process is gone
            return
        if message[0] == "cancel":
            cancel.job_no = message[1]
        else:
            inbox.put(message)


def serve(conn: Any) -> None:
    """Load, report, then run what arrives until told to stop."""
    try:
        runner = _load(conn.recv())
    except NanoBananaError as exc:
        conn.send(("failed", f"the model could not be loaded: {exc}"))
        return
    except Exception as exc:
        log.exception("worker could not load the model")
        conn.send(("failed", f"the model could not be loaded: {type(exc).__name__}: {exc}"))
        return
    engine = runner.engine
    conn.send(("ready", _facts(engine), {n: light(f) for n, f in engine.loras.items()}))
    outbox = Outbox(conn)
    inbox: queue.Queue = queue.Queue()
    cancel = _CancelState()
    threading.Thread(target=_receive, args=(conn, inbox, cancel), daemon=True).start()
    while (message := inbox.get()) != STOP:
        if message[0] == "job":
            runner.run(_RemoteJob(outbox, message, cancel))
        else:
            outbox.send(("answer", message[1], *_answer(engine, message)))
    outbox.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the web process's to handle
    logging.basicConfig(level=logging.WARNING, format="worker %(process)d: %(message)s")
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    conn = Client(argv[1], authkey=authkey)
    try:
        serve(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy, so that what the worker pickles
    # (ModelFacts, ...) names nano_banana.generate.worker, which the web process can load.
    from nano_banana.generate import worker

    sys.exit(worker.main(sys.argv))
