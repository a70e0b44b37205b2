"""The worker pool on a tiny SDXL with two real worker processes: jobs spread over both,
the line's order and places, cancel, a killed worker's job reported and retried, LoRAs
loaded into every worker, a photo sent to a worker for image to image, and a model that
cannot load."""

from __future__ import annotations

import os
import signal
import time

import pytest
from PIL import Image

from image_metrics import pixels
from nano_banana.errors import GenerationError, InvalidSettingError, UnsafeFileError
from nano_banana.gallery.png import read_record
from nano_banana.gallery.store import Gallery
from nano_banana.generate.engine import Engine
from nano_banana.generate.jobs import JobStatus
from nano_banana.generate.launch import LocalLauncher
from nano_banana.generate.photo import photo_facts
from nano_banana.generate.pool import PoolConfig, WorkerPool
from nano_banana.generate.spec import EngineSpec
from nano_banana.settings import LoraWeight
from pool_helpers import SLOW, WAIT_S, request, started, wait_until


@pytest.fixture(scope="module")
def pool(tiny_sdxl_dir, tiny_lora, tmp_path_factory):
    spec = EngineSpec(base=str(tiny_sdxl_dir), loras=(f"{tiny_lora}:1.0",), device="cpu")
    gallery = Gallery.open(tmp_path_factory.mktemp("pool-gallery"))
    with WorkerPool(spec, gallery, PoolConfig(workers=2)) as p:
        yield p


def test_the_pool_knows_the_model_without_loading_it(pool, tiny_lora):
    assert pool.model.native_size == (64, 64)
    assert list(pool.loras()) == ["tiny_lora"] or len(pool.loras()) == 1
    lora = next(iter(pool.loras().values()))
    assert lora.path == tiny_lora and lora.tensors == {}  # facts only in the web process
    plan = pool.model.plan(request(prompt="a watch", preset="knolling"))
    assert "a watch" in plan.prompt and plan.prompt != "a watch"  # the preset's words added


def test_an_image_from_the_pool_equals_the_in_process_engine(pool, tiny_sdxl_dir, tiny_lora):
    job = pool.submit("generate", request())
    assert job.wait(WAIT_S) and job.status is JobStatus.DONE, job.error
    image = job.result.images[0]
    assert isinstance(job.preview, Image.Image)  # crossed as a JPEG, decoded here
    assert image.entry is not None and read_record(image.entry.path).request.seed == 5
    engine = Engine.load(str(tiny_sdxl_dir), loras=[f"{tiny_lora}:1.0"], device="cpu")
    direct = engine.generate(request())
    assert abs(pixels(image.result) - pixels(direct)).max() <= 2


def test_jobs_spread_over_both_workers_and_places_count_the_whole_line(pool):
    jobs = [pool.submit("generate", request(**SLOW, seed=i)) for i in range(4)]
    try:
        wait_until(lambda: started(jobs[0]) and started(jobs[1]))
        assert {pool.running_on(jobs[0]), pool.running_on(jobs[1])} == {0, 1}
        assert [job.position for job in jobs] == [0, 0, 1, 2]
        assert pool.waiting() == 2 and pool.busy()
    finally:
        for job in reversed(jobs):
            job.cancel()
    for job in jobs:
        assert job.wait(WAIT_S) and job.status is JobStatus.CANCELLED


def test_cancel_stops_a_running_job_at_its_next_step_and_a_waiting_one_never_runs(pool):
    running = [pool.submit("generate", request(**SLOW, seed=i)) for i in range(2)]
    waiting = pool.submit("generate", request(seed=9))
    wait_until(lambda: all(started(job) for job in running))
    assert waiting.cancel() and waiting.status is JobStatus.CANCELLED
    asked = time.monotonic()
    for job in running:
        assert job.cancel()
    for job in running:
        assert job.wait(WAIT_S) and job.status is JobStatus.CANCELLED
    assert time.monotonic() - asked < 5
    assert running[0].progress.step < running[0].progress.total
    assert waiting.progress is None
    after = pool.submit("generate", request(seed=10))  # the workers carry on
    assert after.wait(WAIT_S) and after.status is JobStatus.DONE


def test_a_killed_worker_fails_its_job_alone_restarts_and_the_job_can_be_retried(pool):
    victim = pool.submit("generate", request(**SLOW, seed=21))
    wait_until(lambda: started(victim))
    slot = pool.running_on(victim)
    other = pool.submit("generate", request(seed=22))  # runs on the other worker
    old_pid = pool.worker_pids()[slot]
    os.kill(old_pid, signal.SIGKILL)
    assert victim.wait(WAIT_S) and victim.status is JobStatus.FAILED
    assert "stopped unexpectedly" in victim.error and "submit the job again" in victim.error
    assert other.wait(WAIT_S) and other.status is JobStatus.DONE
    wait_until(lambda: pool.worker_pids()[slot] not in (None, old_pid))
    retry = pool.submit(victim.kind, victim.request)
    assert retry.wait(WAIT_S) and retry.status is JobStatus.DONE, retry.error
    assert retry.result.images[0].result.record.request.seed == 21


def test_a_lora_added_at_run_time_reaches_every_worker_and_survives_a_restart(
    pool, tiny_lora_b, tmp_path
):
    lora = pool.add_lora(tiny_lora_b, name="other")
    assert "other" in pool.loras()
    assert pool.add_lora(tiny_lora_b) is lora  # same file, not loaded twice
    use = request(loras=(LoraWeight("other", 1.0),))
    jobs = [pool.submit("generate", request(**SLOW, seed=30)), pool.submit("generate", use)]
    assert jobs[1].wait(WAIT_S) and jobs[1].status is JobStatus.DONE, jobs[1].error
    jobs[0].cancel()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04K\x01.")  # a pickle, not a safetensors file
    with pytest.raises(UnsafeFileError):
        pool.add_lora(bad)
    pool.remove_lora("other")
    assert "other" not in pool.loras()


def test_a_model_that_cannot_load_is_one_message(tmp_path):
    spec = EngineSpec(base=str(tmp_path / "no-such-model"), device="cpu")
    with pytest.raises(GenerationError, match="could not be loaded.*no-such-model"):
        WorkerPool(spec, None, PoolConfig(workers=1))


def test_local_workers_one_per_gpu_or_one_on_the_cpu():
    local = LocalLauncher()
    assert local.devices("cpu", None) == [None]
    assert local.devices("cpu", 3) == [None, None, None]
    with pytest.raises(GenerationError, match="at least 1"):
        local.devices("cpu", 0)


def test_a_photo_reaches_the_worker_and_its_image_starts_from_it(pool, tiny_sdxl_dir, tiny_lora):
    """The job's photo is pickled to the worker: the image equals the in-process engine's image
    to image of that photo, differs from text to image at the same seed, and records the photo."""
    photo = Image.radial_gradient("L").convert("RGB").resize((48, 40))
    img2img = request(steps=4, strength=0.75)
    job = pool.submit("generate", img2img, init_image=photo)
    plain = pool.submit("generate", img2img)
    for done in (job, plain):
        assert done.wait(WAIT_S) and done.status is JobStatus.DONE, done.error
    image = job.result.images[0]
    assert image.result.record.init_image == photo_facts(photo)
    assert read_record(image.entry.path).init_image == photo_facts(photo)
    assert plain.result.images[0].result.record.init_image is None
    engine = Engine.load(str(tiny_sdxl_dir), loras=[f"{tiny_lora}:1.0"], device="cpu")
    direct = engine.generate(img2img, init_image=photo)
    assert abs(pixels(image.result) - pixels(direct)).max() <= 2
    assert abs(pixels(image.result) - pixels(plain.result.images[0].result)).max() > 10
    assert job.init_image is None  # a finished job lets its photo go


def test_a_photo_for_a_comparison_is_refused_before_it_is_queued(pool):
    with pytest.raises(InvalidSettingError, match="single image only"):
        pool.submit("compare", request(strength=0.5), init_image=Image.new("RGB", (8, 8)))
    assert pool.waiting() == 0
