"""Many prompts in one run: a prompts file in, images into the gallery (or a folder), resumable.

The input is a text file (one prompt per line; blank lines and ``#`` comments
skipped) or a JSONL file of request objects (``{"prompt": ..., "preset": ...,
"seed": ...}``, any ``GenerationRequest`` field). Every job gets a fixed seed
up front (its own, or ``base_seed + line index``), so a rerun asks for exactly
the same images, and a job whose key is already in the manifest is skipped.
A request with ``compose`` (``--compose`` for a text file, ``"compose": true``
on a JSONL line, with its ``"parts"``, ``"explode"`` ...) makes a parts-first
board like any other image.

Under ``accelerate launch`` each process takes every N-th job and loads its own
pipeline on its own device; each writes its own manifest shard, so no two
processes append to one file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InvalidSettingError, PresetError
from ..settings import GenerationRequest, parse_seed

MANIFEST_PREFIX = "batch-manifest"


@dataclass(frozen=True)
class BatchJob:
    index: int  # line number in the input (1-based), for messages
    request: GenerationRequest  # seed fixed

    @property
    def key(self) -> str:
        """Identity of the image this job makes: the same request gives the same key."""
        canonical = json.dumps(self.request.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]


@dataclass
class BatchReport:
    done: list[tuple[BatchJob, Path]]
    skipped: list[BatchJob]
    failed: list[tuple[BatchJob, str]]


def read_jobs(
    path: Path,
    defaults: GenerationRequest,
    base_seed: int = 0,
    check: Callable[[GenerationRequest], GenerationRequest] = GenerationRequest.validated,
) -> list[BatchJob]:
    """Parse a prompts file into jobs with fixed seeds; every bad line is named with its number.

    ``check`` returns a line's request validated, or raises; the CLI passes
    ``EngineSpec.check_request``, which also finds its preset and a board's layout and parts
    before any model loads.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidSettingError(f"prompts file '{path}' does not exist")
    text = _read_prompts(path)
    parse = _jsonl_request if path.suffix.lower() in (".jsonl", ".ndjson") else _text_request
    jobs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        request = parse(line, defaults, f"{path}:{number}")
        if request.seed is None:
            request = replace(request, seed=(base_seed + number) % 2**32)
        try:
            jobs.append(BatchJob(number, check(request)))
        except (InvalidSettingError, PresetError) as exc:  # a board's catalog errors too
            raise type(exc)(f"{path}:{number}: {exc}") from None
    if not jobs:
        raise InvalidSettingError(f"prompts file '{path}' has no prompts")
    return jobs


def _read_prompts(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSettingError(
            f"prompts file '{path}' is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise InvalidSettingError(f"cannot read prompts file '{path}': {exc.strerror}") from None


def _text_request(line: str, defaults: GenerationRequest, where: str) -> GenerationRequest:
    return replace(defaults, prompt=line.strip())


def _jsonl_request(line: str, defaults: GenerationRequest, where: str) -> GenerationRequest:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidSettingError(f"{where}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits, deep nesting
        raise InvalidSettingError(f"{where}: unreadable JSON ({_first_words(exc)})") from None
    if not isinstance(data, dict) or "prompt" not in data:
        raise InvalidSettingError(f"{where}: each line must be an object with a 'prompt'")
    if data.get("seed") is not None:
        data["seed"] = parse_seed(data["seed"])
    if isinstance(data.get("plan"), dict):  # a board plan may come as an object, not as text
        data["plan"] = json.dumps(data["plan"], ensure_ascii=False)
    try:
        return GenerationRequest.from_dict({**defaults.to_dict(), **data})
    except InvalidSettingError as exc:
        raise InvalidSettingError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise InvalidSettingError(f"{where}: {exc}") from None


def _first_words(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# --- manifest -----------------------------------------------------------------


def finished_keys(folder: Path) -> dict[str, Path]:
    """Keys of jobs whose image exists, from every process's manifest shard."""
    done: dict[str, Path] = {}
    for shard in sorted(folder.glob(f"{MANIFEST_PREFIX}*.jsonl")):
        for line in shard.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash; that job simply runs again
            path = Path(entry.get("path", ""))
            if path.is_file():
                done[entry["key"]] = path
    return done


def record_finished(folder: Path, rank: int, job: BatchJob, path: Path) -> None:
    """Append one finished job to this process's shard, durably, before the next job starts."""
    folder.mkdir(parents=True, exist_ok=True)
    shard = folder / f"{MANIFEST_PREFIX}.rank{rank}.jsonl"
    line = json.dumps({"key": job.key, "line": job.index, "path": str(path)}, ensure_ascii=False)
    with shard.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- running ------------------------------------------------------------------


def run_batch(
    engine,
    jobs: list[BatchJob],
    save: Callable,
    manifest_dir: Path,
    rank: int = 0,
    world_size: int = 1,
    on_job: Callable | None = None,
) -> BatchReport:
    """Run this process's share of ``jobs`` (every ``world_size``-th), skipping finished ones.

    ``save(result) -> Path`` stores an image; a job that fails with a user error
    is reported and the batch goes on.
    """
    from ..errors import NanoBananaError

    done = finished_keys(manifest_dir)
    report = BatchReport([], [], [])
    for job in jobs[rank::world_size]:
        if job.key in done:
            report.skipped.append(job)
            continue
        try:
            result = engine.generate(job.request)
        except NanoBananaError as exc:
            report.failed.append((job, str(exc)))
            continue
        path = save(result)
        record_finished(manifest_dir, rank, job, path)
        report.done.append((job, path))
        if on_job is not None:
            on_job(job, path)
    return report
