"""Shared by the worker-pool tests (local processes and Ray actors): small and slow
requests on the tiny model, and waiting for a condition."""

from __future__ import annotations

import time

from nano_banana.settings import GenerationRequest

SMALL = dict(prompt="a watch", seed=5, width=64, height=64, steps=3, preset="none")
SLOW = dict(width=128, height=128, steps=150)  # ~10 s here: long enough to act on while it runs
WAIT_S = 120


def request(**changes) -> GenerationRequest:
    return GenerationRequest(**{**SMALL, **changes})


def wait_until(condition, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def started(job) -> bool:
    return job.progress is not None
