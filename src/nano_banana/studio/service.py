"""The studio's shared state: one job queue, one gallery for every browser session.

The queue is a ``WorkerPool`` whose worker processes hold the engines, so browsers
watching their jobs never compete with generation for this process's GIL;
``engine`` is then the pool's view of the model (presets, prompt plans, size).
With ``workers=0`` the engine runs in this process under a ``JobQueue`` instead.

Nothing here imports Streamlit: the app caches one ``Studio`` per configuration
and every page calls these methods, so tests can drive the same logic directly.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..atomic import write_bytes
from ..errors import LoraError, NanoBananaError
from ..gallery.store import Gallery
from ..generate.jobs import Job, JobQueue
from ..generate.launch import launcher_for
from ..generate.pool import PoolConfig, WorkerPool
from ..generate.sheets import LORA_STRENGTHS
from ..lora.load import LoraFile, adapter_name_for
from ..prompt.presets import Preset
from ..settings import GenerationRequest
from .config import StudioConfig
from .sessions import Ledger

NO_LORA = "none"  # the LoRA choice "base model only"
FILE_PREFIX = "file:"  # a LoRA choice naming a file of the LoRA folder not loaded yet
_SAFE_STEM = re.compile(r"[^A-Za-z0-9_.-]+")
SWEEP_S = 5.0  # how often departed browsers are looked for
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraChoice:
    key: str  # NO_LORA, a loaded adapter name, or FILE_PREFIX + file name
    label: str


class Studio:
    """Engine + queue + gallery, built once per process (the app caches it)."""

    def __init__(
        self,
        config: StudioConfig,
        engine,
        queue: JobQueue | WorkerPool,
        gallery: Gallery,
        upload_dir: Path,
        session_alive: Callable[[str], bool] | None = None,
        own_upload_dir: bool = False,
    ) -> None:
        self.config = config
        self.engine = engine
        self.queue = queue
        self.gallery = gallery
        self.upload_dir = upload_dir
        self.sessions = Ledger(session_alive)
        self._own_upload_dir = own_upload_dir  # a temp folder made for us: removed on close
        self._closed = threading.Event()
        threading.Thread(target=self._sweep_departed, name="studio-janitor", daemon=True).start()

    @classmethod
    def start(
        cls, config: StudioConfig, session_alive: Callable[[str], bool] | None = None
    ) -> Studio:
        """Open the gallery, start the workers (they load the model and its LoRAs)."""
        gallery = Gallery.open(config.gallery)
        if config.workers == 0:
            from ..model.load import quiet_libraries

            quiet_libraries()  # the page shows progress; the server log need not carry it
            engine = config.engine.load()
            queue = JobQueue(engine, gallery, previews=config.previews)
        else:
            queue = WorkerPool(
                config.engine,
                gallery,
                PoolConfig(workers=config.workers, previews=config.previews),
                launcher_for(config.ray),
            )
            engine = queue.model
        upload_dir = Path(config.upload_dir or tempfile.mkdtemp(prefix="nano-banana-uploads-"))
        upload_dir.mkdir(parents=True, exist_ok=True)
        studio = cls(
            config, engine, queue, gallery, upload_dir, session_alive, config.upload_dir is None
        )
        atexit.register(studio.close)  # the server's Ctrl+C: stop workers, remove temp uploads
        return studio

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.queue.close()
        if self._own_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)

    # --- jobs and sessions ---------------------------------------------------------

    def submit(self, kind, request, sweep_values=(), client: str | None = None, init_image=None):
        """Queue a job for ``client`` (a browser): cancelled if the client leaves for good."""
        return self.submit_batch(kind, [request], sweep_values, client, init_image)[0]

    def submit_batch(
        self,
        kind,
        requests: Sequence[GenerationRequest],
        sweep_values=(),
        client: str | None = None,
        init_image: Image.Image | None = None,
    ) -> tuple[Job, ...]:
        """Queue one Generate's jobs for ``client``, all or none (a refusal cancels the ones
        already queued); every job redraws ``init_image`` if given (image to image)."""
        sweep = sweep_values or LORA_STRENGTHS
        jobs: list[Job] = []
        try:
            for request in requests:
                jobs.append(self.queue.submit(kind, request, sweep, init_image=init_image))
        except BaseException:
            for job in reversed(jobs):
                job.cancel()
            raise
        self.sessions.own_batch(client, jobs)
        for lora in {lw.name for request in requests for lw in request.loras or ()}:
            self.sessions.touch(lora)
        return tuple(jobs)

    def _sweep_departed(self) -> None:
        """Every few seconds: cancel the jobs and unload the uploads of clients that left."""
        while not self._closed.wait(SWEEP_S):
            self.sweep_once()

    def sweep_once(self) -> None:
        jobs, uploads = self.sessions.departed()
        for job in jobs:
            log.info("cancelling %s: its browser left", job.id)
            job.cancel()
        self._unload(uploads)

    def _unload(self, uploads) -> None:
        busy = self.sessions.in_use()
        for upload in uploads:
            if upload.name in busy:
                continue
            with contextlib.suppress(NanoBananaError):  # already gone
                self.queue.remove_lora(upload.name)
            self.sessions.forget_upload(upload.name)
            upload.path.unlink(missing_ok=True)

    # --- model facts ------------------------------------------------------------

    @property
    def request_defaults(self):
        """The form's starting settings: the demo model's own, or SDXL's defaults."""
        return self.config.engine.request_defaults()

    @property
    def native_size(self) -> tuple[int, int]:
        """The size the base model was trained at (SDXL: 1024x1024)."""
        return tuple(self.engine.native_size)

    @property
    def presets(self) -> dict[str, Preset]:
        return self.engine.presets

    @property
    def model_name(self) -> str:
        return Path(self.engine.base_name).name or self.engine.base_name

    # --- LoRAs ---------------------------------------------------------------------

    def lora_choices(self, client: str | None = None) -> list[LoraChoice]:
        """Loaded LoRAs first (not other clients' uploads), then the LoRA folder's files not
        loaded yet, then 'none'."""
        hidden = self.sessions.hidden_from(client)
        loaded = {n: lora for n, lora in self.queue.loras().items() if n not in hidden}
        choices = [
            LoraChoice(name, f"{name}  ·  {lora.path.name}") for name, lora in loaded.items()
        ]
        paths = {lora.path.resolve() for lora in loaded.values()}
        for path in self.folder_loras():
            if path.resolve() not in paths:
                choices.append(LoraChoice(FILE_PREFIX + path.name, f"{path.name}  ·  from folder"))
        choices.append(LoraChoice(NO_LORA, "No LoRA (base model only)"))
        return choices

    def folder_loras(self) -> list[Path]:
        folder = self.config.lora_folder()
        if folder is None or not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.safetensors") if p.is_file())

    def resolve_lora(self, choice: str, client: str | None = None) -> str | None:
        """The adapter name for a LoRA choice, loading a folder file first; None for no LoRA."""
        if choice == NO_LORA:
            return None
        if choice.startswith(FILE_PREFIX):
            name = choice[len(FILE_PREFIX) :]
            matches = [p for p in self.folder_loras() if p.name == name]
            if not matches:
                raise LoraError(f"LoRA file '{name}' is no longer in the LoRA folder")
            return self.queue.add_lora(matches[0], name=self._free_name(matches[0].stem)).name
        if choice not in self.queue.loras() or choice in self.sessions.hidden_from(client):
            raise LoraError(f"LoRA '{choice}' is not loaded (any more); pick or upload it again")
        return choice

    def add_uploaded_lora(self, filename: str, data: bytes, client: str | None = None) -> LoraFile:
        """Keep an uploaded file under a safe name and load it with the safe loader.

        The upload's own name only suggests the adapter name; the bytes decide what
        it is (a pickle or an HTML page named .safetensors is refused). It is private to
        ``client``; beyond ``max_uploaded_loras`` the least recently used one is unloaded.
        """
        limit = self.config.max_lora_mb * 1024 * 1024
        if len(data) > limit:
            raise LoraError(
                f"'{filename}' is {len(data) / 2**20:.0f} MB; LoRA uploads are limited to "
                f"{self.config.max_lora_mb} MB"
            )
        if not data:
            raise LoraError(f"'{filename}' is empty; upload the LoRA's .safetensors file")
        stem = _SAFE_STEM.sub("_", Path(filename).stem)[:48].strip("._") or "lora"
        digest = hashlib.sha256(data).hexdigest()
        path = self.upload_dir / f"{digest[:12]}-{stem}.safetensors"
        if not path.exists():
            write_bytes(path, data)
        try:
            lora = self.queue.add_lora(path, name=self._free_name(stem))
        except NanoBananaError as exc:
            path.unlink(missing_ok=True)  # a refused upload is not kept
            # Name the user's file, not the server's copy of it.
            message = str(exc).replace(str(path), filename).replace(path.name, filename)
            raise type(exc)(message) from None
        except Exception:
            path.unlink(missing_ok=True)
            raise
        if lora.path == path:  # an upload, not a folder or start-up file with the same bytes
            self.sessions.own_upload(client, lora.name, path)
            self._unload(self.sessions.over_cap(self.config.max_uploaded_loras, [lora.name]))
        return lora

    def _free_name(self, stem: str) -> str:
        base = adapter_name_for(Path(stem + ".safetensors"))
        taken = set(self.queue.loras())
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        return name
