"""Time left from measured step times: a job's start-up is not counted as if every step cost it."""

from __future__ import annotations

import pytest

from nano_banana.generate.jobs import JobProgress
from nano_banana.studio.estimates import (
    SessionRates,
    StepClock,
    progress_text,
    seconds_left,
    steps_left,
)


def seen(step: int, elapsed: float, image: int = 1, images: int = 1, total: int = 20):
    # The worker's own estimate is deliberately absurd: the page must not show it.
    return JobProgress(image, images, step, total, elapsed, eta_s=999.0)


def test_the_estimate_comes_from_steps_measured_between_sightings():
    # 5 s of start-up, then 0.5 s a step: elapsed/steps would say 1.5 s a step at step 5.
    clock, session = StepClock("job-1"), SessionRates()
    clock.see(seen(5, 7.5))
    assert seconds_left(seen(5, 7.5), clock, session) is None  # no guess before a measurement
    assert "estimating time left" in progress_text(seen(5, 7.5), None)
    clock.see(seen(9, 9.5))
    assert clock.seconds_per_step() == pytest.approx(0.5)
    assert seconds_left(seen(9, 9.5), clock, session) == pytest.approx(0.5 * 11)
    assert progress_text(seen(9, 9.5), 5.5) == "Step 9 / 20 · about 6 s left"


def test_the_first_sighting_uses_the_sessions_last_jobs():
    session = SessionRates()
    for rate in (3.0, 0.5, 0.6, 0.55, 0.52):  # the first job after loading is slow: outvoted
        session.add(rate)
    clock = StepClock("job-2")
    clock.see(seen(2, 4.0))
    assert seconds_left(seen(2, 4.0), clock, session) == pytest.approx(0.55 * 18)
    for _ in range(10):
        session.add(1.0)
    assert len(session.rates) == 5 and session.typical() == 1.0


def test_several_images_count_every_step_left():
    progress = seen(5, 3.0, image=2, images=3, total=10)
    assert steps_left(progress) == 3 * 10 - (10 + 5)
    assert "image 2 of 3" in progress_text(progress, 75.0)
    assert progress_text(progress, 75.0).endswith("about 1 min 15 s left")


def test_a_job_seen_once_leaves_its_overall_rate():
    clock = StepClock("job-3")
    clock.see(seen(20, 2.0))
    assert clock.seconds_per_step() is None and clock.overall() == pytest.approx(0.1)
