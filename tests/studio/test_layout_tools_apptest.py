"""The layout tools through Streamlit's AppTest, on the demo model: the callout editor on a
result, on a board (from its plan) and on a gallery image, and a comparison's before/after
slider.

The app runs in this process, so a test reads what the editor drew from the session's
drawings and spies on the before/after view the slider asks for.
"""

from __future__ import annotations

import os
import time

import pytest
import torch

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from nano_banana.generate.jobs import JobStatus  # noqa: E402
from nano_banana.generate.spec import EngineSpec  # noqa: E402
from nano_banana.studio import APP_PATH, ui_tools  # noqa: E402
from nano_banana.studio.config import ENV_VAR, StudioConfig  # noqa: E402
from nano_banana.studio.ui_common import _studio_for  # noqa: E402

RUN_TIMEOUT_S = 60
JOB_TIMEOUT_S = 180
KNOLLING_WATCH = {"f_preset": "knolling", "f_prompt": "a mechanical watch", "f_seed_lock": True}


@pytest.fixture(scope="module")
def demo_studio(tmp_path_factory):
    """One studio on the demo model for the module (its base draws parts apart)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core box: spinning BLAS threads cost 10x
    cfg = StudioConfig(
        engine=EngineSpec(device="cpu"),
        gallery=str(tmp_path_factory.mktemp("layout-tools-gallery")),
        upload_dir=str(tmp_path_factory.mktemp("layout-tools-uploads")),
        workers=0,  # in this process: the tests read the session's state
    )
    old = os.environ.get(ENV_VAR)
    os.environ.update(cfg.to_env())
    yield _studio_for(cfg)
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = old


def new_app(**state) -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT_S)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def session_job(at: AppTest):
    """The session's (first) job of its last press."""
    state = at.session_state
    return state["jobs"][0] if "jobs" in state else state["job"]


def generated(at: AppTest):
    """Press Generate, then rerun (as the page's polling does) until the job has finished."""
    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    job = session_job(at)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not job.status.finished:
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.1)
        at.run()
    assert job.status is JobStatus.DONE, job.error
    return at.run(), job


def editor(at: AppTest, key: str):
    (table,) = [t for t in at.data_editor if t.key == f"callout_table_{key}"]
    return table


def edit(at: AppTest, key: str, edited: dict) -> AppTest:
    """Edits as the browser's table sends them (rows by position)."""
    at.session_state[f"callout_table_{key}"] = {
        "edited_rows": edited, "added_rows": [], "deleted_rows": []
    }  # fmt: skip
    return at.run()


def drawn(at: AppTest, key: str) -> list[tuple[int, str]]:
    """(number, name) of the callouts drawn last for the editor ``key``."""
    drawings = at.session_state["callout_drawings"]
    latest = [a for (k, _), a in drawings.items() if k == key][-1]
    return [(c.number, c.name) for c in latest.callouts]


def labels(at: AppTest) -> list[str]:
    return [d.label for d in at.get("download_button")]


def test_callouts_on_a_result_are_part_n_until_renamed_and_follow_the_table(demo_studio):
    at, job = generated(new_app(**KNOLLING_WATCH, f_seed=3))
    key = f"{job.id}_0"
    at.button(key=f"callouts_{key}").click().run()
    table = editor(at, key).value
    count = len(table)
    assert count >= 3
    assert list(table["name"]) == [f"part {n}" for n in range(1, count + 1)]  # never guessed
    assert list(table["order"]) == list(range(1, count + 1)) and all(table["show"])
    assert len(at.get("image")) == 2  # the result and its callouts
    assert labels(at)[-3:] == [
        "Download parts list (CSV)", "Download parts list (JSON)", "Download callouts PNG"
    ]  # fmt: skip

    # Rename the first part and move it last, hide the second: the drawing follows.
    at = edit(at, key, {0: {"name": "case", "order": count + 1}, 1: {"show": False}})
    assert not at.exception
    expected = [f"part {n}" for n in range(3, count + 1)] + ["case"]
    assert drawn(at, key) == list(enumerate(expected, start=1))

    # A shown part with no name is refused in words, and naming it again draws again.
    at = edit(at, key, {0: {"name": ""}})
    assert any("callout row 1 has no name" in e.value for e in at.error)
    at = edit(at, key, {0: {"name": "bezel"}})
    assert not at.error and drawn(at, key)[0] == (1, "bezel")


def test_analyze_layout_reports_the_score_and_its_doubts(demo_studio):
    at, job = generated(new_app(**KNOLLING_WATCH, f_seed=3))
    at.button(key=f"analyze_{job.id}_0").click().run()
    report = at.session_state[f"result_analysis_{job.id}_0"]
    assert any(f"Layout score {report.score} / 100" in m.value for m in at.markdown)
    merged = [w.value for w in at.warning if "may be merged" in w.value]
    assert len(merged) == len(report.merged)  # each doubt said where the user looks


def test_a_comparison_has_a_before_after_slider_beside_the_side_by_side(demo_studio, monkeypatch):
    splits = []
    real = ui_tools.before_after

    def spy(before, after, split, labels):
        splits.append((split, labels))
        return real(before, after, split, labels)

    monkeypatch.setattr(ui_tools, "before_after", spy)
    at, job = generated(new_app(**KNOLLING_WATCH, f_seed=4, f_mode="compare"))
    base, with_lora = job.result.images
    assert len(at.get("image")) == 3  # the two side by side, and the slider's view
    slider = at.slider(key=f"split_{job.id}")
    assert slider.value == 50 and splits[-1] == (0.5, (base.label, with_lora.label))
    slider.set_value(20).run()
    assert splits[-1][0] == pytest.approx(0.2)


def test_a_gallery_image_gets_the_same_layout_tools(demo_studio):
    at, job = generated(new_app(**KNOLLING_WATCH, f_seed=5))
    entry = job.result.images[0].entry
    at.switch_page("pages/gallery.py").run()
    at.button(key=f"g_open_{entry.id}").click().run()
    key = f"g_{entry.id}"
    at.button(key=f"analyze_{key}").click().run()
    assert any("Layout score" in m.value for m in at.markdown)
    at.button(key=f"callouts_{key}").click().run()
    names = list(editor(at, key).value["name"])
    assert names[0] == "part 1"
    at = edit(at, key, {0: {"name": "dial"}})
    assert drawn(at, key)[0] == (1, "dial")
    assert {"Download parts list (CSV)", "Download parts list (JSON)",
            "Download callouts PNG"} <= set(labels(at))  # fmt: skip
    assert entry.path.read_bytes() == job.result.images[0].png  # the saved file is untouched


def test_a_boards_callouts_come_from_its_plan_on_the_create_page_and_in_the_gallery(demo_studio):
    watch = "a mechanical watch"
    at = new_app(f_compose=True, f_preset="exploded-view", f_prompt=watch, f_parts="case, dial",
                 f_parts_prompt=watch, f_seed_lock=True, f_seed=5)  # fmt: skip
    at, job = generated(at)
    key = f"board_{job.id}_0"
    assert list(editor(at, key).value["name"]) == ["case", "dial"]  # the catalog's names
    assert f"callouts_{job.id}_0" not in [b.key for b in at.button]  # no guessing on a board
    at = edit(at, key, {0: {"order": 3}, 1: {"name": "watch face"}})
    assert drawn(at, key) == [(1, "watch face"), (2, "case")]

    entry = job.result.images[0].entry
    at.switch_page("pages/gallery.py").run()
    at.button(key=f"g_open_{entry.id}").click().run()
    gallery_key = f"board_g_{entry.id}"
    assert list(editor(at, gallery_key).value["name"]) == ["case", "dial"]
    assert drawn(at, gallery_key) == [(1, "case"), (2, "dial")]
    assert f"callouts_g_{entry.id}" not in [b.key for b in at.button]
    at.button(key=f"analyze_g_{entry.id}").click().run()
    assert any("Layout score" in m.value for m in at.markdown)
