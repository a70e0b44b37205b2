"""How weights move: AdamW, the learning-rate schedule, one optimiser step, and the EMA of weights.

Pure functions and one small object with explicit arguments, shared by the LoRA
trainer (``training.loop``) and the demo build's from-scratch training
(``demo.build``); where the two differ, the difference is an argument, never a
second copy. Each parameter group keeps its peak learning rate as ``base_lr``;
``set_lr`` scales it by the schedule's factor every step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator

import torch

from .config import Schedule


def adamw(
    groups: list[dict], *, weight_decay: float, eight_bit: bool = False
) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Alg. 2) with
    the usual betas (0.9, 0.999) and eps 1e-8; bitsandbytes' 8-bit version when ``eight_bit``.

    Each group is ``{"params": [...], "base_lr": peak}``; it starts at its peak lr.
    """
    for group in groups:
        group["lr"] = group["base_lr"]
    kwargs = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": weight_decay}
    if eight_bit:
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


def lr_factor(
    step: int,
    *,
    warmup: int,
    total: int,
    decay: Schedule = Schedule.CONSTANT,
    floor: float = 0.0,
    warmup_offset: int = 1,
) -> float:
    """Multiplier of the peak learning rate at ``step`` (nanoGPT's ``get_lr``, as a factor).

    The trainer counts steps from 0 with ``warmup_offset=1``, so its first step is never
    at lr 0; the demo build counts from 1 with ``warmup_offset=0`` and decays to a 10%
    ``floor``. Both reach the peak at ``step == warmup``.
    """
    # 1) linear warm-up
    if step < warmup:
        return (step + warmup_offset) / (warmup + warmup_offset)
    progress = (step - warmup) / max(1, total - warmup)
    # 2) cosine decay to the floor (Loshchilov & Hutter 2017, SGDR, eq. 5, without restarts)
    if decay == Schedule.COSINE:
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    # 3) linear decay to the floor
    if decay == Schedule.LINEAR:
        return floor + (1.0 - floor) * max(0.0, 1.0 - progress)
    # 4) constant at the peak
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Put every parameter group at its peak lr (``base_lr``) times ``factor``."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    params: list[torch.Tensor],
    *,
    max_grad_norm: float,
    clip: Callable[..., object] = torch.nn.utils.clip_grad_norm_,
) -> None:
    """Clip the gradients' global norm to ``max_grad_norm`` (0: no clipping), step, clear them.

    ``clip`` is accelerate's ``clip_grad_norm_`` in the trainer (it unscales fp16 gradients
    and reduces across processes) and torch's elsewhere.
    """
    if max_grad_norm > 0:
        clip(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """True when no value is NaN/Inf (one device sync for all of them, not one per tensor)."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors]
    return bool(torch.stack(flags).all().item()) if flags else True


# --- exponential moving average of the weights ----------------------------------------


def ema_decay(step: int, decay: float) -> float:
    """The decay of the EMA update at ``step``: ``min(decay, (1 + step) / (10 + step))``.

    The warm-up of TensorFlow's ``ExponentialMovingAverage`` (its ``num_updates``): early
    averages follow the weights instead of remembering their random start.
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(
    averages: Iterable[torch.Tensor], params: Iterable[torch.Tensor], decay: float
) -> None:
    """``average <- decay * average + (1 - decay) * param`` for each pair, in place
    (Polyak averaging as an exponential moving average; the averages keep their dtype)."""
    for average, param in zip(averages, params, strict=True):
        average.lerp_(param.detach().to(average.dtype), 1.0 - decay)


class AdapterEMA:
    """An fp32 EMA of named weights (the trainer's adapters), which can stand in for them."""

    def __init__(self, params: dict[str, torch.nn.Parameter], decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().clone().float() for n, p in params.items()}

    def update(self, params: dict[str, torch.nn.Parameter], step: int) -> None:
        """Fold the weights after optimiser step ``step`` into the averages (warmed-up decay)."""
        averages = [self.shadow[name] for name in params]
        ema_update(averages, params.values(), ema_decay(step, self.decay))

    @contextlib.contextmanager
    def swapped_in(self, params: dict[str, torch.nn.Parameter]) -> Iterator[None]:
        """Temporarily load the averaged weights (to save or render), then restore."""
        backup = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(self.shadow[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in params.items():
                    param.copy_(backup[name])
