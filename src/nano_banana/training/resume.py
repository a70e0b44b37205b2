"""Stopping and resuming a run: its counters, what a checkpoint holds, what may not change, Ctrl-C.

``checkpoint.py`` stores a checkpoint atomically on disk; this module decides what
goes into one (adapters, optimizer, EMA, counters, config) and how a fresh run is
put back into that state. Randomness and the lr follow from the step, so a resumed
run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CancelledError, NanoBananaError
from .checkpoint import load_checkpoint
from .config import Schedule, TrainConfig, flatten_settings
from .optim import AdapterEMA
from .validation import ValidationState

# Settings a checkpoint cannot be resumed under when changed (samples may change; max_steps may grow
# under a constant schedule, while a cosine/linear decay is tied to it).
RESUME_FIXED = (
    "rank",
    "alpha",
    "targets",
    "train_text_encoder",
    "batch_size",
    "grad_accum",
    "seed",
    "resolution",
    "upscale",
    "flip",
    "shuffle_captions",
    "caption_dropout",
    "trigger",
    "base",
    "lr",
    "warmup_steps",
    "schedule",
    "optimizer",
    "ema_decay",
    "val_split",  # which items train
)


class TrainingError(NanoBananaError):
    """Training had to stop (NaN/Inf loss, a checkpoint that does not fit the config)."""


class TrainingInterrupted(CancelledError):
    """Ctrl-C or SIGTERM: a checkpoint was saved; ``--resume latest`` continues."""


@dataclass
class RunState:
    """The loop's counters; stored in every checkpoint."""

    step: int = 0
    first_loss: float | None = None
    recent: list[float] = field(default_factory=list)  # last losses, for the final mean
    checkpoint: Path | None = None
    validation: ValidationState = field(default_factory=ValidationState)  # best step, plateau


def checkpoint_state(
    config: TrainConfig, params, optimizer, ema: AdapterEMA | None, state: RunState
) -> dict[str, Any]:
    """Everything a checkpoint holds: adapters, optimizer moments, EMA, counters, the config."""
    return {
        "adapters": {n: p.detach() for n, p in params.items()},
        "optimizer": optimizer.state_dict(),
        "ema": ema.shadow if ema is not None else None,
        "run": {
            "step": state.step,
            "first_loss": state.first_loss,
            "recent": state.recent,
            "validation": state.validation.to_dict(),
        },
        "config": config.to_dict(),
    }


def restore(
    path: Path, config: TrainConfig, params, optimizer, ema: AdapterEMA | None, state: RunState
) -> None:
    """Load a checkpoint into the fresh adapters/optimizer; refuse one made with other settings."""
    step, saved = load_checkpoint(path)
    changed = changed_settings(flatten_settings(saved["config"]), config)
    if changed:
        raise TrainingError(
            f"checkpoint '{path}' was made with different {', '.join(changed)}; resume with the "
            f"same settings (see {path.parent.parent / 'train_config.toml'}) or start a new --out folder"
        )
    missing = set(params) ^ set(saved["adapters"])
    if missing:
        raise TrainingError(
            f"checkpoint '{path}' does not match the adapters (e.g. {sorted(missing)[0]})"
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved["adapters"][name])
    optimizer.load_state_dict(saved["optimizer"])
    if ema is not None and saved["ema"] is not None:
        ema.shadow = {n: t.to(params[n].device).float() for n, t in saved["ema"].items()}
    state.step = step
    state.first_loss = saved["run"]["first_loss"]
    state.recent = list(saved["run"]["recent"])
    state.validation = ValidationState.from_dict(saved["run"].get("validation"))
    state.checkpoint = path


def changed_settings(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """The settings in ``RESUME_FIXED`` (and max_steps under a decaying schedule) whose saved
    value (``saved``: flat names, as checkpoints of any format flatten to) differs from now."""
    fixed = RESUME_FIXED
    if config.optim.schedule != Schedule.CONSTANT:
        fixed = (*fixed, "max_steps")
    now = config.flat_dict()
    # a setting newer than the checkpoint was at its default then
    default = TrainConfig().flat_dict()
    return [name for name in fixed if saved.get(name, default[name]) != now.get(name)]


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; a scheduler's or `kill`'s polite stop


class StopRequest:
    """First Ctrl-C or SIGTERM: finish the current step, save a checkpoint, stop. Second: stop
    at once. (A job scheduler sends SIGTERM before it kills a job: the work since the last
    checkpoint is saved in that grace time.)"""

    def __init__(self, notify: Callable[[str], None]):
        self.requested = False
        self._notify = notify
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self._notify(f"{name}: stopping after this step and saving a checkpoint (again to abort)")

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            if previous is not None:  # None: a handler not set from Python, nothing to put back
                signal.signal(sig, previous)
        self._previous = {}


def any_process(accelerator, flag: bool) -> bool:
    """True if any process saw Ctrl-C (all must stop at the same step)."""
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return accelerator.reduce(value, reduction="sum").item() > 0
