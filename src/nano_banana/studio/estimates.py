"""Time-left estimates from measured step times, as the page watching a job sees them.

A job's own ``elapsed_s / steps done`` counts its start-up (the prompt, a LoRA
switch, the first step's warm-up) as if every step cost that much, so early
estimates ran up to 10x long. A ``StepClock`` instead measures between two
sightings of the same job: seconds per step over the steps done in between.
Until it has two sightings it uses the seconds per step the last jobs of this
session measured, and says nothing rather than guess when there are none.
No Streamlit here, so tests drive it with made-up progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..generate.jobs import JobProgress

KEPT_RATES = 5  # the last jobs' seconds per step that a session remembers


def steps_done(progress: JobProgress) -> int:
    """Steps finished over all of a job's images."""
    return (progress.image - 1) * progress.total + progress.step


def steps_left(progress: JobProgress) -> int:
    return max(0, progress.images * progress.total - steps_done(progress))


@dataclass
class StepClock:
    """Seconds per step of one job, measured between the page's sightings of its progress."""

    job_id: str
    first: tuple[float, int] | None = None  # (elapsed_s, steps done) when first seen running
    last: tuple[float, int] | None = None

    def see(self, progress: JobProgress) -> None:
        sighting = (progress.elapsed_s, steps_done(progress))
        if self.first is None:
            self.first = sighting
        self.last = sighting

    def seconds_per_step(self) -> float | None:
        """Measured over the steps between the first and the last sighting; None before two."""
        if self.first is None or self.last is None or self.last[1] <= self.first[1]:
            return None
        return (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])

    def overall(self) -> float | None:
        """The job's seconds per step counting its start-up: what a finished job leaves behind
        when the page saw it only once (a fast job)."""
        if self.last is None or self.last[1] == 0:
            return None
        return self.last[0] / self.last[1]


@dataclass
class SessionRates:
    """Seconds per step of this session's last jobs, newest last."""

    rates: list[float] = field(default_factory=list)

    def add(self, rate: float | None) -> None:
        if rate is not None and rate > 0:
            self.rates = [*self.rates, rate][-KEPT_RATES:]

    def typical(self) -> float | None:
        """The median of the kept rates (one slow job, e.g. the first after loading, is outvoted)."""
        if not self.rates:
            return None
        ordered = sorted(self.rates)
        return ordered[len(ordered) // 2]


def seconds_left(
    progress: JobProgress, clock: StepClock, session: SessionRates, queued_steps: int = 0
) -> float | None:
    """Seconds until the last step, from this job's measured step time or else the session's;
    ``queued_steps``: the steps of the jobs after it (the other images of one press)."""
    rate = clock.seconds_per_step() or session.typical()
    return None if rate is None else rate * (steps_left(progress) + queued_steps)


def progress_text(progress: JobProgress, left_s: float | None) -> str:
    """'Step 5 / 20 · image 1 of 2 · about 12 s left'."""
    parts = [f"Step {progress.step} / {progress.total}"]
    if progress.images > 1:
        parts.append(f"image {progress.image} of {progress.images}")
    parts.append("estimating time left…" if left_s is None else f"about {_duration(left_s)} left")
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
