"""Who owns what in a shared studio: each browser's jobs, images, form and uploaded LoRAs.

A browser is a *client*: an id kept in its page address, so a reload (a new
Streamlit session) is still the same client. The ledger remembers which sessions
each client has had, which jobs it submitted and which LoRAs it uploaded.

It answers these questions for ``Studio`` and the Create page:
- which uploaded LoRAs a client may see (its own; uploads are private),
- which clients have left (no live session for ``grace_s``): their waiting and
  running jobs are cancelled and their uploads unloaded, so a closed tab no
  longer holds the queue or the workers' memory,
- which uploads to unload when there are more than the cap (least recently used),
- what a reloaded page shows again: the jobs of the client's last Generate
  (``last_batch``), its earlier images (``history``) and its form (``last_form``).

Nothing here imports Streamlit: whether a session is live is a callable the app
hands in, so tests can drive the ledger directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gallery.store import GalleryEntry

DEPARTED_GRACE_S = 20.0  # a reload takes a second or two; a closed tab does not come back
# Earlier images a client's page lists after a reload: enough to find this sitting's work
# again at a glance (older ones are in the Gallery), few enough to draw as thumbnails.
HISTORY_CAP = 50


@dataclass(frozen=True)
class PastImage:
    """One finished image of a client's earlier jobs, as the gallery keeps it.

    Only the gallery entry is kept (a path and the record), not the job's pixels: a
    client's history costs kilobytes, and the page reads the images from the gallery.
    """

    entry: GalleryEntry
    job_id: str
    label: str  # the job's caption of the image: "image", or a compare / sweep panel's


@dataclass
class Upload:
    name: str  # adapter name in the engines
    path: Path
    owners: set[str | None]  # the clients that uploaded this file (the same bytes: one copy)
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class _Client:
    sessions: set[str] = field(default_factory=set)
    jobs: list = field(default_factory=list)  # Job objects, unfinished ones matter
    last_seen: float = field(default_factory=time.monotonic)
    batch: tuple = ()  # the jobs of the last Generate: what a reloaded page shows again
    earlier: list = field(default_factory=list)  # earlier batches' jobs, not yet finished
    past: list[PastImage] = field(default_factory=list)  # their images, oldest first
    form: dict[str, Any] | None = None  # the form of the last Generate, as session state


class Ledger:
    def __init__(
        self,
        session_alive: Callable[[str], bool] | None = None,
        grace_s: float = DEPARTED_GRACE_S,
    ) -> None:
        self._alive = session_alive
        self._grace_s = grace_s
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self._uploads: dict[str, Upload] = {}

    # --- recording --------------------------------------------------------------------

    def visit(self, client: str, session: str | None) -> None:
        """A page run of ``client`` in ``session``: it is here now."""
        with self._lock:
            entry = self._clients.setdefault(client, _Client())
            entry.last_seen = time.monotonic()
            if session is not None:
                entry.sessions.add(session)

    def own_job(self, client: str | None, job) -> None:
        self.own_batch(client, (job,))

    def own_batch(self, client: str | None, jobs: Sequence) -> None:
        """The jobs of one Generate of ``client``: its new last batch; the one before it
        goes to the history."""
        if client is None:
            return
        with self._lock:
            entry = self._clients.setdefault(client, _Client())
            entry.jobs = [j for j in entry.jobs if not j.status.finished] + list(jobs)
            entry.earlier += entry.batch
            entry.batch = tuple(jobs)
            _settle(entry)

    def remember_form(self, client: str | None, values: Mapping[str, Any]) -> None:
        """The form (session-state keys and values) ``client`` last generated with."""
        if client is None:
            return
        with self._lock:
            self._clients.setdefault(client, _Client()).form = dict(values)

    def own_upload(self, client: str | None, name: str, path: Path) -> None:
        with self._lock:
            self._uploads.setdefault(name, Upload(name, path, set())).owners.add(client)

    def touch(self, name: str) -> None:
        """``name`` was just chosen for a job: it is the last to be unloaded."""
        with self._lock:
            if name in self._uploads:
                self._uploads[name].last_used = time.monotonic()

    def forget_upload(self, name: str) -> Upload | None:
        with self._lock:
            return self._uploads.pop(name, None)

    # --- answering ---------------------------------------------------------------------

    def last_batch(self, client: str) -> tuple:
        """The jobs of ``client``'s last Generate (running or finished), or ()."""
        with self._lock:
            entry = self._clients.get(client)
            return () if entry is None else entry.batch

    def history(self, client: str) -> list[PastImage]:
        """``client``'s finished images before its last batch, newest first (at most
        ``HISTORY_CAP``); failed and cancelled jobs, and images not in the gallery, leave none."""
        with self._lock:
            entry = self._clients.get(client)
            if entry is None:
                return []
            _settle(entry)
            return entry.past[::-1]

    def last_form(self, client: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._clients.get(client)
            return None if entry is None or entry.form is None else dict(entry.form)

    def in_use(self) -> set[str]:
        """LoRAs the unfinished jobs name (a job naming none uses every loaded one)."""
        with self._lock:
            jobs = [j for c in self._clients.values() for j in c.jobs if not j.status.finished]
            every = set(self._uploads)
        used: set[str] = set()
        for job in jobs:
            chosen = job.request.loras
            used |= every if chosen is None else {lw.name for lw in chosen}
        return used

    def hidden_from(self, client: str | None) -> set[str]:
        """Adapter names of the uploads other clients made."""
        with self._lock:
            return {u.name for u in self._uploads.values() if client not in u.owners}

    def over_cap(self, cap: int, in_use: Iterable[str]) -> list[Upload]:
        """The least recently used uploads beyond ``cap`` that no unfinished job uses."""
        busy = set(in_use)
        with self._lock:
            ordered = sorted(self._uploads.values(), key=lambda u: u.last_used)
        extra = len(ordered) - cap
        return [u for u in ordered if u.name not in busy][: max(0, extra)]

    def departed(self) -> tuple[list, list[Upload]]:
        """Clients gone for longer than the grace time: their unfinished jobs, and the uploads
        no remaining client owns. They are forgotten here; the caller cancels and unloads.
        """
        now = time.monotonic()
        jobs, uploads = [], []
        with self._lock:
            for client, entry in list(self._clients.items()):
                if self._here(entry) or now - entry.last_seen < self._grace_s:
                    continue
                jobs += [j for j in entry.jobs if not j.status.finished]
                for upload in self._uploads.values():
                    upload.owners.discard(client)
                    if not upload.owners:
                        uploads.append(upload)
                del self._clients[client]
        return jobs, uploads

    def _here(self, entry: _Client) -> bool:
        """True while any of the client's sessions is live (refreshing last_seen)."""
        if self._alive is None:
            return True  # no way to tell: nobody ever departs
        entry.sessions = {s for s in entry.sessions if self._alive(s)}
        if entry.sessions:
            entry.last_seen = time.monotonic()
        return bool(entry.sessions)


def _settle(entry: _Client) -> None:
    """Earlier jobs that have finished become their images in the capped history."""
    waiting = []
    for job in entry.earlier:
        if not job.status.finished:
            waiting.append(job)
        elif job.result is not None:
            entry.past += [
                PastImage(i.entry, job.id, i.label) for i in job.result.images if i.entry
            ]
    entry.earlier = waiting
    del entry.past[:-HISTORY_CAP]
