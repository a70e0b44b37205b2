"""The job queue on a tiny SDXL: order, queue positions, progress and previews, cancel, saving,
error isolation, concurrent callers and LoRA loading on the worker."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from nano_banana.errors import GenerationError, NanoBananaError, UnsafeFileError
from nano_banana.gallery.png import read_record
from nano_banana.gallery.store import Gallery
from nano_banana.generate.engine import Engine
from nano_banana.generate.jobs import INTERNAL_ERROR, JobKind, JobQueue, JobStatus
from nano_banana.settings import GenerationRequest, LoraWeight

SMALL = dict(prompt="a watch", seed=5, width=64, height=64, steps=3, preset="none")
WAIT_S = 60


def request(**changes) -> GenerationRequest:
    return GenerationRequest(**{**SMALL, **changes})


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def engine(tiny_sdxl_dir, tiny_lora):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared CI cores: spinning BLAS threads make tiny jobs 10x slower
    eng = Engine.load(str(tiny_sdxl_dir), device="cpu")
    eng.add_lora(tiny_lora, name="structure")
    yield eng
    torch.set_num_threads(threads)


@pytest.fixture
def gallery(tmp_path) -> Gallery:
    return Gallery.open(tmp_path / "gallery")


@pytest.fixture
def queue(engine, gallery):
    q = JobQueue(engine, gallery)
    yield q
    q.close()


@pytest.fixture
def gate(engine, monkeypatch):
    """Hold every generation until the test opens the gate; records the prompts in run order."""
    opened, started, order = threading.Event(), threading.Event(), []
    real = engine.generate

    def held(req, progress=None, cancel=None, **kwargs):  # kwargs: init_image
        order.append(req.prompt)
        started.set()
        assert opened.wait(WAIT_S)
        return real(req, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(engine, "generate", held)
    return opened, started, order


def test_a_job_makes_the_engines_image_and_saves_it_with_its_bytes(queue, engine, gallery):
    job = queue.submit(JobKind.GENERATE, request())
    assert job.wait(WAIT_S) and job.status is JobStatus.DONE, job.error
    (image,) = job.result.images
    assert np.array_equal(pixels(image.result.image), pixels(engine.generate(request()).image))
    assert image.entry is not None and gallery.count() == 1
    assert image.png == image.entry.path.read_bytes()  # the saved file, not a re-encoding
    assert read_record(image.entry.path).request.seed == 5
    assert job.position is None and job.error is None


def test_progress_counts_steps_and_previews_are_images(queue):
    job = queue.submit("generate", request(steps=4))
    assert job.wait(WAIT_S)
    progress = job.progress
    assert (progress.step, progress.total, progress.image, progress.images) == (4, 4, 1, 1)
    assert progress.fraction == 1.0 and progress.eta_s == 0
    assert job.preview is not None and min(job.preview.size) >= 256


def test_random_seed_is_drawn_at_submit_and_recorded(queue):
    job = queue.submit(JobKind.GENERATE, request(seed=None))
    assert isinstance(job.request.seed, int)
    assert job.wait(WAIT_S)
    assert job.result.images[0].result.record.request.seed == job.request.seed


def test_jobs_run_in_order_and_report_their_place_in_line(queue, gate):
    opened, started, order = gate
    first = queue.submit(JobKind.GENERATE, request(prompt="one"))
    assert started.wait(WAIT_S)
    second = queue.submit(JobKind.GENERATE, request(prompt="two"))
    third = queue.submit(JobKind.GENERATE, request(prompt="three"))
    assert (first.position, second.position, third.position) == (0, 1, 2)
    assert first.status is JobStatus.RUNNING and second.status is JobStatus.QUEUED
    assert queue.waiting() == 2 and queue.busy()
    opened.set()
    assert third.wait(WAIT_S)
    assert order == ["one", "two", "three"]
    assert all(j.status is JobStatus.DONE for j in (first, second, third))


def test_cancelling_a_queued_job_removes_it_and_spares_the_others(queue, gate):
    opened, started, order = gate
    first = queue.submit(JobKind.GENERATE, request(prompt="one"))
    assert started.wait(WAIT_S)
    second = queue.submit(JobKind.GENERATE, request(prompt="two"))
    third = queue.submit(JobKind.GENERATE, request(prompt="three"))
    assert second.cancel()
    assert second.status is JobStatus.CANCELLED and third.position == 1
    opened.set()
    assert third.wait(WAIT_S) and first.wait(WAIT_S)
    assert order == ["one", "three"]
    assert first.status is third.status is JobStatus.DONE
    assert not second.cancel()  # already finished


def test_cancelling_a_running_job_stops_it_and_the_next_job_runs(queue, gallery):
    stop_at = threading.Event()
    job = queue.submit(JobKind.GENERATE, request(steps=40))
    after = queue.submit(JobKind.GENERATE, request(seed=6))

    def watch():
        while not job.wait(0.01):
            progress = job.progress
            if progress is not None and progress.step >= 2:
                job.cancel()
                stop_at.set()
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert job.wait(WAIT_S) and after.wait(WAIT_S)
    watcher.join()
    assert stop_at.is_set() and job.status is JobStatus.CANCELLED
    assert job.progress.step < 40
    assert after.status is JobStatus.DONE
    assert gallery.count() == 1  # only the finished job's image


def test_errors_stay_with_their_job(queue, engine, monkeypatch, caplog):
    real = engine.generate

    def flaky(req, progress=None, cancel=None, **kwargs):
        if req.prompt == "user problem":
            raise GenerationError("the VAE decode gave NaN; use another VAE")
        if req.prompt == "bug":
            raise RuntimeError("index 3 is out of bounds")
        if req.prompt == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(req, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(engine, "generate", flaky)
    jobs = [
        queue.submit(JobKind.GENERATE, request(prompt=p))
        for p in ("user problem", "bug", "oom", "fine")
    ]
    with caplog.at_level(logging.ERROR, logger="nano_banana.generate.jobs"):
        assert jobs[-1].wait(WAIT_S)
    assert [j.status for j in jobs] == [JobStatus.FAILED] * 3 + [JobStatus.DONE]
    assert jobs[0].error == "the VAE decode gave NaN; use another VAE"
    assert jobs[1].error == INTERNAL_ERROR and "out of bounds" in caplog.text
    assert "out of memory" in jobs[2].error
    assert jobs[3].result.images[0].entry is not None


@pytest.mark.parametrize(
    "kind, changes, message",
    [
        (JobKind.GENERATE, dict(width=100), "multiple of 8"),
        (JobKind.GENERATE, dict(lora_scale=5.0), "lora scale 5.0 is out of range"),
        (JobKind.GENERATE, dict(preset="no-such"), "unknown preset"),
        (JobKind.GENERATE, dict(loras=(LoraWeight("ghost"),)), "LoRA 'ghost' is not loaded"),
        (JobKind.COMPARE, dict(loras=()), "choose a LoRA"),
        (JobKind.COMPARE, dict(lora_scale=0.0), "scale above 0"),
    ],
)
def test_bad_requests_are_refused_at_submit_and_nothing_is_queued(queue, kind, changes, message):
    with pytest.raises(NanoBananaError, match=message):
        queue.submit(kind, request(**changes))
    assert queue.waiting() == 0 and not queue.busy()


def test_compare_and_sweep_jobs_save_every_panel_with_one_seed(queue, gallery):
    cmp = queue.submit(JobKind.COMPARE, request(lora_scale=0.8))
    swp = queue.submit(JobKind.SWEEP, request(), sweep_values=(0.6, 0.8, 1.0))
    assert swp.wait(WAIT_S) and cmp.status is JobStatus.DONE and swp.status is JobStatus.DONE
    assert [i.label for i in cmp.result.images] == [
        "base model (LoRA off)",
        "base + LoRA (scale 0.8)",
    ]
    assert [i.result.record.request.lora_scale for i in swp.result.images] == [0.6, 0.8, 1.0]
    assert cmp.result.sheet is not None and swp.result.sheet.width > swp.result.sheet.height
    seeds = {i.result.record.request.seed for j in (cmp, swp) for i in j.result.images}
    assert seeds == {5}
    off, on = (pixels(i.result.image) for i in cmp.result.images)
    assert np.abs(off - on).mean() > 1.0  # the LoRA changes the picture
    assert gallery.count() == 5
    assert swp.progress.images == 3 and swp.progress.image == 3


def test_a_sweep_job_without_values_sweeps_the_three_lora_strengths(queue):
    job = queue.submit(JobKind.SWEEP, request())
    assert job.sweep_values == (0.6, 0.8, 1.0)  # the studio's "Base vs LoRA" shows scale 0
    assert job.wait(WAIT_S) and job.status is JobStatus.DONE, job.error


def test_concurrent_callers_each_get_their_own_image(queue, engine):
    wanted = [request(seed=40 + i, lora_scale=s) for i, s in enumerate((0.0, 0.8, 1.0, 0.6))]
    expected = [pixels(engine.generate(r).image) for r in wanted]
    jobs: list = [None] * len(wanted)

    def submit(i):
        jobs[i] = queue.submit(JobKind.GENERATE, wanted[i])

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(wanted))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job, want in zip(jobs, expected, strict=True):
        assert job.wait(WAIT_S) and job.status is JobStatus.DONE
        assert np.array_equal(pixels(job.result.images[0].result.image), want)


def test_loras_are_loaded_on_the_worker_safely(engine, gallery, tiny_lora, tiny_lora_b, tmp_path):
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(b"\x80\x04\x95 pickle pretending to be safetensors")
    queue = JobQueue(engine, gallery, previews=False)
    try:
        with pytest.raises(UnsafeFileError):
            queue.add_lora(bad)
        assert queue.add_lora(tiny_lora).name == "structure"  # same file: the loaded entry
        lora = queue.add_lora(tiny_lora_b, name="second")
        assert set(queue.loras()) == {"structure", "second"}
        job = queue.submit(JobKind.GENERATE, request(loras=(LoraWeight("second"),)))
        assert job.wait(WAIT_S) and job.status is JobStatus.DONE
        assert [u.sha256 for u in job.result.images[0].result.record.loras] == [lora.sha256]
        assert job.preview is None  # previews were switched off
    finally:
        queue.close()
        engine.remove_lora("second")


def test_closing_cancels_waiting_jobs(engine, gallery, gate):
    opened, started, _ = gate
    queue = JobQueue(engine, gallery)
    first = queue.submit(JobKind.GENERATE, request())
    assert started.wait(WAIT_S)
    second = queue.submit(JobKind.GENERATE, replace(request(), seed=9))
    threading.Timer(0.2, opened.set).start()
    queue.close()
    assert second.status is JobStatus.CANCELLED
    assert first.wait(WAIT_S) and first.status in (JobStatus.CANCELLED, JobStatus.DONE)
    with pytest.raises(GenerationError, match="shut down"):
        queue.submit(JobKind.GENERATE, request())
