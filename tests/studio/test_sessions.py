"""Who owns what in a shared studio: private LoRA uploads, a cap with least-recently-used
unloading, and the jobs and uploads of browsers that left (studio.sessions + Studio)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from nano_banana.generate.jobs import JobStatus
from nano_banana.generate.spec import EngineSpec
from nano_banana.settings import GenerationRequest, LoraWeight
from nano_banana.studio.config import StudioConfig
from nano_banana.studio.service import Studio
from nano_banana.studio.sessions import HISTORY_CAP, Ledger

WAIT_S = 120


@dataclass
class FakeJob:
    request: GenerationRequest
    status: JobStatus = JobStatus.RUNNING
    id: str = "job"
    result: object = None


def test_a_reload_is_the_same_client_and_a_closed_tab_departs_after_the_grace():
    live = {"s1"}
    ledger = Ledger(lambda s: s in live, grace_s=0)
    ledger.visit("tab", "s1")
    job = FakeJob(GenerationRequest(prompt="x"))
    ledger.own_job("tab", job)
    live.discard("s1")
    ledger.visit("tab", "s2")  # the reload's new session
    live.add("s2")
    assert ledger.departed() == ([], [])
    live.clear()
    jobs, uploads = ledger.departed()
    assert jobs == [job] and uploads == []
    assert ledger.departed() == ([], [])  # forgotten once reported


def test_a_finished_job_is_not_cancelled_and_the_grace_time_holds():
    ledger = Ledger(lambda s: False, grace_s=60)
    ledger.visit("tab", "s1")
    ledger.own_job("tab", FakeJob(GenerationRequest(prompt="x"), JobStatus.DONE))
    assert ledger.departed() == ([], [])  # still within the grace time
    ledger = Ledger(lambda s: False, grace_s=0)
    ledger.visit("tab", "s1")
    ledger.own_job("tab", FakeJob(GenerationRequest(prompt="x"), JobStatus.DONE))
    assert ledger.departed() == ([], [])


def test_uploads_are_private_shared_bytes_stay_until_every_owner_left(tmp_path):
    live = {"a1", "b1"}
    ledger = Ledger(lambda s: s in live, grace_s=0)
    ledger.visit("a", "a1")
    ledger.visit("b", "b1")
    ledger.own_upload("a", "mine", tmp_path / "mine.safetensors")
    ledger.own_upload("a", "both", tmp_path / "both.safetensors")
    ledger.own_upload("b", "both", tmp_path / "both.safetensors")
    assert ledger.hidden_from("b") == {"mine"} and ledger.hidden_from("a") == set()
    live.discard("a1")
    _, uploads = ledger.departed()
    assert [u.name for u in uploads] == ["mine"]  # "both" is still b's
    assert ledger.hidden_from("b") == {"mine"}


def finished_job(job_id: str, *entry_ids: int | None, status=JobStatus.DONE) -> FakeJob:
    """A finished job whose images were saved as ``entry_ids`` (None: not in the gallery)."""
    images = tuple(
        SimpleNamespace(entry=None if i is None else SimpleNamespace(id=i), label="image")
        for i in entry_ids
    )
    result = SimpleNamespace(images=images) if status is JobStatus.DONE else None
    return FakeJob(GenerationRequest(prompt="x"), status, job_id, result)


def history_ids(ledger: Ledger, client: str) -> list[int]:
    return [item.entry.id for item in ledger.history(client)]


def test_the_last_press_is_kept_and_earlier_presses_become_the_history_newest_first():
    ledger = Ledger(None)
    first, second = finished_job("j1", 1), finished_job("j2", 2)
    ledger.own_batch("tab", [first, second])
    assert ledger.last_batch("tab") == (first, second) and ledger.history("tab") == []
    running = FakeJob(GenerationRequest(prompt="x"), JobStatus.RUNNING, "j3")
    ledger.own_batch("tab", [running])
    assert ledger.last_batch("tab") == (running,)
    assert history_ids(ledger, "tab") == [2, 1]
    ledger.own_job("tab", finished_job("j4", 4))
    assert history_ids(ledger, "tab") == [2, 1]  # j3 joins the history when it has finished
    running.status, running.result = JobStatus.DONE, finished_job("j3", 3).result
    assert history_ids(ledger, "tab") == [3, 2, 1]
    assert ledger.history("other tab") == [] and ledger.last_batch("other tab") == ()


def test_the_history_leaves_out_failed_cancelled_and_unsaved_images_and_is_capped():
    ledger = Ledger(None)
    ledger.own_batch("tab", [finished_job("bad", 1, status=JobStatus.FAILED),
                             finished_job("off", 2, status=JobStatus.CANCELLED),
                             finished_job("unsaved", None, 3)])  # fmt: skip
    for n in range(HISTORY_CAP + 5):
        ledger.own_job("tab", finished_job(f"j{n}", 100 + n))
    ids = history_ids(ledger, "tab")
    assert len(ids) == HISTORY_CAP and ids[0] == 100 + HISTORY_CAP + 3  # the one before last
    assert 3 not in ids and 1 not in ids and 2 not in ids  # rolled out, or never in


def test_the_form_of_the_last_press_is_kept_per_client_and_forgotten_when_it_departs():
    live = {"s1"}
    ledger = Ledger(lambda s: s in live, grace_s=0)
    ledger.visit("tab", "s1")
    form = {"f_prompt": "a watch", "f_count": 4}
    ledger.remember_form("tab", form)
    form["f_count"] = 1  # the caller's dict is not the ledger's
    assert ledger.last_form("tab") == {"f_prompt": "a watch", "f_count": 4}
    assert ledger.last_form("other tab") is None
    ledger.remember_form(None, form)  # no client (a script): nothing kept
    live.clear()
    ledger.departed()
    assert ledger.last_form("tab") is None and ledger.history("tab") == []


def test_over_cap_picks_the_least_recently_used_not_in_use(tmp_path):
    ledger = Ledger(None)
    for name in ("old", "mid", "new"):
        ledger.own_upload("a", name, tmp_path / name)
        time.sleep(0.01)
    ledger.touch("old")  # just used: now the most recent
    assert [u.name for u in ledger.over_cap(2, in_use=[])] == ["mid"]
    assert [u.name for u in ledger.over_cap(2, in_use=["mid"])] == ["new"]  # mid is busy
    assert [u.name for u in ledger.over_cap(1, in_use=["mid"])] == ["new", "old"]
    assert ledger.over_cap(3, in_use=[]) == []


@pytest.fixture
def studio(tiny_sdxl_dir, tmp_path):
    config = StudioConfig(
        engine=EngineSpec(base=str(tiny_sdxl_dir), device="cpu"),
        gallery=str(tmp_path / "gallery"),
        workers=0,
        max_uploaded_loras=1,
    )
    live: set[str] = set()
    s = Studio.start(config, session_alive=lambda sid: sid in live)
    s.sessions._grace_s = 0
    s.live = live
    yield s
    s.close()
    assert not s.upload_dir.exists()  # the temp upload folder goes with the studio


def test_the_studio_hides_other_browsers_uploads_and_caps_them(studio, tiny_lora, tiny_lora_b):
    studio.live |= {"a1", "b1"}
    studio.sessions.visit("a", "a1")
    studio.sessions.visit("b", "b1")
    a = studio.add_uploaded_lora("a.safetensors", tiny_lora.read_bytes(), client="a")
    assert a.name in [c.key for c in studio.lora_choices("a")]
    assert a.name not in [c.key for c in studio.lora_choices("b")]
    with pytest.raises(Exception, match="not loaded"):
        studio.resolve_lora(a.name, client="b")
    b = studio.add_uploaded_lora("b.safetensors", tiny_lora_b.read_bytes(), client="b")
    assert set(studio.queue.loras()) == {b.name}  # the cap of 1 unloaded a's
    assert not a.path.exists() and b.path.exists()


def test_a_departed_browsers_running_job_is_cancelled_and_its_upload_unloaded(studio, tiny_lora):
    studio.live.add("a1")
    studio.sessions.visit("a", "a1")
    lora = studio.add_uploaded_lora("a.safetensors", tiny_lora.read_bytes(), client="a")
    slow = GenerationRequest(prompt="x", width=128, height=128, steps=150, preset="none",
                             loras=(LoraWeight(lora.name, 1.0),))  # fmt: skip
    job = studio.submit("generate", slow, client="a")
    deadline = time.monotonic() + WAIT_S
    while job.progress is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    studio.live.clear()  # the tab closed
    studio.sweep_once()
    assert job.wait(WAIT_S) and job.status is JobStatus.CANCELLED
    studio.sweep_once()  # the upload was in use by that job; now it is free
    assert lora.name not in studio.queue.loras() and not lora.path.exists()
