"""The worker pool backed by Ray actors, on a local Ray cluster with two workers (CPU):
jobs spread across both actors, cancel works, and a killed actor's job is reported, the
actor is replaced and the job can be retried. Skipped where the `ray` extra is missing."""

from __future__ import annotations

import os
import signal

import pytest

from nano_banana.generate.jobs import JobStatus
from nano_banana.generate.pool import PoolConfig, WorkerPool
from nano_banana.generate.spec import EngineSpec
from pool_helpers import SLOW, WAIT_S, request, started, wait_until

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray cluster and two actors loading the model


@pytest.fixture(scope="module")
def pool(tiny_sdxl_dir):
    from nano_banana.generate.launch import RayLauncher

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # a local cluster
    try:
        launcher = RayLauncher(address=None)  # joins the cluster just started
        spec = EngineSpec(base=str(tiny_sdxl_dir), device="cpu")
        with WorkerPool(spec, None, PoolConfig(workers=2, previews=False), launcher) as p:
            yield p
    finally:
        ray.shutdown()


def test_jobs_spread_across_both_actors_in_line_order(pool):
    jobs = [pool.submit("generate", request(**SLOW, seed=i)) for i in range(3)]
    try:
        wait_until(lambda: started(jobs[0]) and started(jobs[1]))
        assert {pool.running_on(jobs[0]), pool.running_on(jobs[1])} == {0, 1}
        assert jobs[2].position == 1
        pids = pool.worker_pids()
        assert len(set(pids)) == 2 and os.getpid() not in pids  # two actor processes
    finally:
        for job in jobs:
            job.cancel()
    for job in jobs:
        assert job.wait(WAIT_S) and job.status is JobStatus.CANCELLED


def test_a_killed_actor_fails_its_job_is_replaced_and_the_job_can_be_retried(pool):
    victim = pool.submit("generate", request(**SLOW, seed=41))
    wait_until(lambda: started(victim))
    slot = pool.running_on(victim)
    old_pid = pool.worker_pids()[slot]
    os.kill(old_pid, signal.SIGKILL)
    assert victim.wait(WAIT_S) and victim.status is JobStatus.FAILED
    assert "stopped unexpectedly" in victim.error
    wait_until(lambda: pool.worker_pids()[slot] not in (None, old_pid))
    retry = pool.submit(victim.kind, victim.request)
    assert retry.wait(WAIT_S) and retry.status is JobStatus.DONE, retry.error
