"""Atomic, resumable training checkpoints.

A checkpoint is a folder ``checkpoint-0001234`` holding ``state.safetensors``
(every tensor: adapter weights, optimizer moments, EMA, RNG states) and
``state.json`` (everything else: step, optimizer settings, the config). It is
written into a hidden temporary folder, a ``COMPLETE`` marker with the files'
sizes and hashes goes in last, and only then is the folder renamed into place.
Older checkpoints are removed only after the new one is complete, so a crash at
any moment leaves the previous checkpoint usable; ``find_latest`` skips anything
without a valid marker. A state holding NaN/Inf values (a diverged run) is never
written, and one written before that rule is skipped and refused. No pickle is
written or read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..atomic import fsync_dir, fsync_file
from ..errors import NanoBananaError
from ..safefile import file_sha256

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
TENSORS = "state.safetensors"
STATE = "state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(NanoBananaError):
    """A checkpoint is missing, incomplete or damaged."""


class NonFiniteStateError(CheckpointError):
    """A state to save or resume holds NaN/Inf values: the run that made it had diverged."""


def checkpoint_root(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoints"


# --- nested state <-> (tensors, JSON) -----------------------------------------


def pack_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Replace every tensor in a nested dict/list by a reference; collect tensors under ``prefix``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}#{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [pack_state(k, tensors, prefix), pack_state(v, tensors, prefix)]
                for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [pack_state(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [pack_state(v, tensors, prefix) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def unpack_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``pack_state``."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__tuple__" in tree:
            return tuple(unpack_state(v, tensors) for v in tree["__tuple__"])
        return {unpack_state(k, tensors): unpack_state(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [unpack_state(v, tensors) for v in tree]
    return tree


# --- writing ----------------------------------------------------------------


def save_checkpoint(out_dir: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` (nested dicts of tensors and plain values) atomically as step ``step``."""
    root = checkpoint_root(out_dir)
    final = root / f"checkpoint-{step:07d}"
    tensors: dict[str, torch.Tensor] = {}
    tree = pack_state(state, tensors, "t")
    check_finite(tensors, f"checkpoint of step {step} not written")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-checkpoint-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(tensors, str(tmp / TENSORS))
    (tmp / STATE).write_text(json.dumps({"step": step, "state": tree}), encoding="utf-8")
    _write_marker(tmp, step)
    _swap_into_place(tmp, final)
    prune_checkpoints(out_dir, keep)
    return final


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse (``NonFiniteStateError``) floating-point state holding NaN/Inf: resuming from
    it would only continue a run that has already diverged."""
    for tensor in tensors.values():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteStateError(f"{what}: it holds NaN/Inf values (the run had diverged)")


def _write_marker(folder: Path, step: int) -> None:
    """The completeness marker: written (and flushed) only after every file is on disk."""
    files = {}
    for name in (TENSORS, STATE):
        fsync_file(folder / name)
        files[name] = {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
    marker = folder / MARKER
    marker.write_text(json.dumps({"step": step, "files": files}), encoding="utf-8")
    fsync_file(marker)


def _swap_into_place(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():  # same step saved again (e.g. Ctrl-C right after a checkpoint)
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        final.rename(old)
    tmp.rename(final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prune_checkpoints(out_dir: Path, keep: int) -> None:
    """Remove complete checkpoints beyond the newest ``keep``, and leftovers of crashed saves."""
    root = checkpoint_root(out_dir)
    complete = list_checkpoints(out_dir)
    for _, path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    mine = str(os.getpid())
    for path in root.glob(".tmp-checkpoint-*"):
        if not path.name.endswith(mine):  # another process's crash leftover
            shutil.rmtree(path, ignore_errors=True)


# --- reading ----------------------------------------------------------------


def verify_checkpoint(path: Path, check_hashes: bool = True) -> int:
    """The step of a complete, intact checkpoint; raise ``CheckpointError`` otherwise."""
    path = Path(path)
    marker = path / MARKER
    if not marker.is_file():
        raise CheckpointError(
            f"checkpoint '{path}' is incomplete (no {MARKER} marker): it was never finished"
        )
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        files, step = info["files"], int(info["step"])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint '{path}' has a damaged {MARKER} marker") from None
    for name, expected in files.items():
        file = path / name
        if not file.is_file() or file.stat().st_size != expected["size"]:
            raise CheckpointError(f"checkpoint '{path}': {name} is missing or has the wrong size")
        if check_hashes and file_sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint '{path}': {name} does not match its recorded hash")
    return step


def _check_file_finite(path: Path) -> None:
    """``check_finite`` on a checkpoint's tensors, read one at a time (a large state is not
    loaded whole just to be looked at)."""
    with safe_open(str(path / TENSORS), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open, not a dict)
            check_finite({key: f.get_tensor(key)}, f"checkpoint '{path}'")


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of checkpoints that carry a marker, oldest first (hashes not checked)."""
    root = checkpoint_root(out_dir)
    found = []
    for path in root.glob("checkpoint-*") if root.is_dir() else ():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / MARKER).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def find_latest(out_dir: Path) -> Path | None:
    """The newest intact checkpoint with finite values; others are skipped with a warning."""
    root = checkpoint_root(out_dir)
    candidates = sorted(
        (p for p in (root.glob("checkpoint-*") if root.is_dir() else ()) if _NAME.match(p.name)),
        key=lambda p: int(_NAME.match(p.name).group(1)),
        reverse=True,
    )
    for path in candidates:
        try:
            verify_checkpoint(path)
            _check_file_finite(path)
        except CheckpointError as exc:
            log.warning("skipping %s", exc)
            continue
        return path
    return None


def load_checkpoint(path: Path) -> tuple[int, dict[str, Any]]:
    """(step, state) of a verified checkpoint."""
    step = verify_checkpoint(path)
    try:
        tensors = load_file(str(Path(path) / TENSORS))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint '{path}': cannot read {TENSORS} ({exc})") from None
    check_finite(tensors, f"checkpoint '{path}' cannot be resumed")
    data = json.loads((Path(path) / STATE).read_text(encoding="utf-8"))
    return step, unpack_state(data["state"], tensors)


def resolve_resume(out_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint folder ``--resume`` names: 'latest' (None if there is none yet) or a path."""
    if not resume:
        return None
    if resume == "latest":
        return find_latest(out_dir)
    path = Path(resume)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder '{path}' does not exist; use --resume latest")
    verify_checkpoint(path)
    return path
