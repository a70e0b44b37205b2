"""Three-way comparisons on the demo model: base, base + LoRA and the composed board of one seed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.gallery.store import Gallery
from nano_banana.generate.jobs import JobKind, JobQueue, JobStatus
from nano_banana.generate.sheets import compare, compare_images
from nano_banana.parts.plan import BoardPlan
from nano_banana.settings import GenerationRequest

WATCH = GenerationRequest(prompt="a mechanical watch", preset="knolling", seed=4, steps=20,
                          cfg=1.5, lora_scale=1.0)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "images"),
    [({}, 2), ({"compose": True}, 3), ({"compose": True, "parts": "case, strap x2"}, 3)],
)
def test_compare_makes_a_board_only_when_asked(changes, images):
    assert compare_images(replace(WATCH, **changes)) == images


def test_compare_keeps_two_panels_and_adds_the_board_with_compose(demo_engine):
    two = compare(demo_engine, WATCH)
    assert [p.label for p in two.panels] == ["base model (LoRA off)", "base + LoRA (scale 1)"]
    asked = WATCH.sized(*demo_engine.native_size).validated()
    assert [p.result.record.request for p in two.panels] == [replace(asked, lora_scale=0.0), asked]
    assert all(p.result.record.board is None for p in two.panels)

    three = compare(demo_engine, replace(WATCH, compose=True, parts="case, dial, strap x2"))
    base, lora, board = (p.result for p in three.panels)
    assert three.panels[2].label == "composed board (4 parts)"
    # the plain panels are the two-panel sheet's images: the board options draw nothing there
    for plain, before in zip((base, lora), two.panels, strict=True):
        assert plain.image.tobytes() == before.result.image.tobytes()
        assert plain.record.board is None and not plain.record.request.compose
    plan = BoardPlan.from_dict(board.record.board["plan"])
    assert [p.name for p in plan.parts].count("strap") == 2 and len(plan.parts) == 4
    assert board.record.request == replace(asked, compose=True, parts="case, dial, strap x2")
    assert {p.result.record.request.seed for p in three.panels} == {WATCH.seed}
    assert three.sheet.width > 3 * board.image.width  # three panels side by side
    assert three.sheet.width > two.sheet.width


def test_a_board_compare_cannot_plan_fails_before_the_first_image(demo_engine, monkeypatch):
    made = []
    monkeypatch.setattr(demo_engine, "generate", lambda *a, **k: made.append(a))
    with pytest.raises(InvalidSettingError, match="has no board layout"):
        compare(demo_engine, replace(WATCH, preset="none", compose=True))
    assert made == []


def test_a_compare_job_with_compose_saves_three_panels_and_counts_three_images(
    demo_engine, tmp_path
):
    queue = JobQueue(demo_engine, Gallery.open(tmp_path / "gallery"))
    try:
        job = queue.submit(JobKind.COMPARE, replace(WATCH, compose=True, parts="case, strap x2"))
        assert job.wait(120) and job.status is JobStatus.DONE, job.error
    finally:
        queue.close()
    labels = [image.label for image in job.result.images]
    assert labels[2] == "composed board (3 parts)" and len(labels) == 3
    assert job.result.images[2].entry is not None and job.result.sheet is not None
    assert job.progress.images == 3 and job.progress.image == 3
