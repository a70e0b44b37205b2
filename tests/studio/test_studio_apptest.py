"""The studio's pages through Streamlit's AppTest, on the tiny SDXL with a tiny LoRA.

The app runs in this process, so a test can also reach the shared ``Studio``
(the same object the pages use) to hold the queue or compare images.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from nano_banana.demo import render_object  # noqa: E402
from nano_banana.errors import UnsafeFileError  # noqa: E402
from nano_banana.gallery.png import read_png_text, read_record  # noqa: E402
from nano_banana.generate.jobs import JobStatus  # noqa: E402
from nano_banana.generate.photo import photo_facts  # noqa: E402
from nano_banana.generate.spec import EngineSpec  # noqa: E402
from nano_banana.parts.catalog import load_catalog  # noqa: E402
from nano_banana.settings import PHOTO_STRENGTH, GenerationRequest  # noqa: E402
from nano_banana.studio import APP_PATH  # noqa: E402
from nano_banana.studio.config import ENV_VAR, StudioConfig  # noqa: E402
from nano_banana.studio.ui_common import CLIENT_PARAM, _studio_for  # noqa: E402

RUN_TIMEOUT_S = 60
JOB_TIMEOUT_S = 90


def shown(markdown: str) -> str:
    """What a reader sees of the studio's escaped Markdown (ui_common.plain): the text itself."""
    return re.sub(r"\\(.)", r"\1", markdown)


@pytest.fixture(scope="module")
def config(tiny_sdxl_dir, tiny_lora, tmp_path_factory):
    """One studio (engine, queue, gallery) for the module, as `nano-banana studio` would pass it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core CI box: spinning BLAS threads cost 10x
    cfg = StudioConfig(
        engine=EngineSpec(base=str(tiny_sdxl_dir), loras=(str(tiny_lora),), device="cpu"),
        gallery=str(tmp_path_factory.mktemp("studio-gallery")),
        upload_dir=str(tmp_path_factory.mktemp("uploads")),
        workers=0,  # in this process: the tests hold and inspect the engine itself
    )
    old = os.environ.get(ENV_VAR)
    os.environ.update(cfg.to_env())
    yield cfg
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = old


@pytest.fixture(scope="module")
def studio(config):
    return _studio_for(config)


def new_app(**state) -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT_S)
    for key, value in {"f_steps": 3, **state}.items():
        at.session_state[key] = value
    return at.run()


def generate(at: AppTest, prompt: str = "a watch") -> AppTest:
    at.text_area(key="f_prompt").input(prompt)
    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    return at


def last_job(at: AppTest):
    """The (first) job of the session's last press."""
    return at.session_state["jobs"][0]


def wait_for_jobs(at: AppTest):
    """Rerun the page (as its polling fragment does) until every job of the last press has
    finished."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    jobs = at.session_state["jobs"]
    while not all(job.status.finished for job in jobs):
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.1)
        at.run()
    return at.run(), jobs


def wait_for_job(at: AppTest):
    """``wait_for_jobs`` for a press of one image: the page and its job."""
    at, (job,) = wait_for_jobs(at)
    return at, job


def images(at: AppTest) -> list:
    return list(at.get("image"))


def test_create_page_starts_with_defaults_and_an_empty_state(config, studio):
    at = new_app()
    assert not at.exception
    assert at.selectbox(key="f_lora").value == "structure"  # the loaded LoRA is preselected
    assert at.slider(key="f_scale").value == pytest.approx(0.8)
    assert at.selectbox(key="f_size").value.endswith("64×64")  # the model's native size
    assert any("No image yet" in m.value for m in at.markdown)
    assert at.button(key="generate").disabled is False


def test_examples_fill_the_prompt_and_the_final_prompt_counts_tokens(config):
    at = new_app(f_preset="knolling")
    at.button(key="example_knolling_0").click().run()
    assert at.text_area(key="f_prompt").value == "a mechanical watch"
    final = at.code[0].value
    assert final.startswith("disassemble, knolling") and "a mechanical watch" in final
    assert any("tokens" in m.value for m in at.markdown)
    at.text_area(key="f_prompt").input(" ".join(["watch"] * 90)).run()
    assert any("CLIP reads" in w.value for w in at.warning)


def test_generate_shows_the_image_and_saves_it_with_metadata(config, studio):
    before = studio.gallery.count()
    at, job = wait_for_job(generate(new_app(f_seed_lock=True, f_seed=123)))
    assert job.status is JobStatus.DONE, job.error
    assert len(images(at)) == 1
    assert [d.label for d in at.get("download_button")] == ["Download PNG"]
    (image,) = job.result.images
    assert studio.gallery.count() == before + 1
    assert image.png == image.entry.path.read_bytes()  # the download is the saved file
    record = read_record(image.entry.path)
    assert record.request.seed == 123 and record.request.prompt == "a watch"
    assert [u.name for u in record.loras] == ["structure"]
    # Reuse puts the settings back, seed fixed.
    at.button(key=f"reuse_{job.id}").click().run()
    assert at.session_state["f_seed"] == 123 and at.session_state["f_seed_lock"] is True


def test_layout_tools_analyze_and_annotate_the_result(config):
    at, job = wait_for_job(generate(new_app()))
    key = f"{job.id}_0"
    at.button(key=f"analyze_{key}").click().run()
    assert any("Layout score" in m.value for m in at.markdown)
    at.button(key=f"callouts_{key}").click().run()
    assert not at.exception
    assert len(images(at)) == 2  # the result and its annotated copy


@pytest.mark.parametrize("mode, count", [("compare", 2), ("sweep", 3)])
def test_compare_and_sweep_show_captioned_images_side_by_side(config, mode, count):
    at, job = wait_for_job(generate(new_app(f_mode=mode)))
    assert job.status is JobStatus.DONE, job.error
    assert len(images(at)) == count + (mode == "compare")  # a comparison's before/after view
    labels = [d.label for d in at.get("download_button")]
    assert labels == ["Download PNG"] * count + ["Download side-by-side sheet"]
    seeds = {i.result.record.request.seed for i in job.result.images}
    assert len(seeds) == 1
    if mode == "compare":
        assert job.result.images[0].label.startswith("base model")


def test_bad_settings_are_messages_and_the_app_keeps_working(config):
    at = new_app(f_size="Custom", f_width=100, f_height=64)
    generate(at)
    assert any("multiple of 8" in e.value for e in at.error)
    assert "jobs" not in at.session_state
    at.session_state["f_mode"] = "compare"
    at.session_state["f_lora"] = "none"
    at.session_state["f_width"] = 64
    at.button(key="generate").click().run()
    assert any("choose a LoRA" in e.value for e in at.error)
    at.session_state["f_mode"] = "generate"
    at.button(key="generate").click().run()
    at, job = wait_for_job(at)
    assert job.status is JobStatus.DONE and not at.error


def test_a_waiting_session_sees_its_place_and_can_cancel(config, studio, monkeypatch):
    opened, started = threading.Event(), threading.Event()
    real = studio.engine.generate

    def held(req, progress=None, cancel=None, **kwargs):
        started.set()
        assert opened.wait(JOB_TIMEOUT_S)
        return real(req, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(studio.engine, "generate", held)
    other_user = studio.queue.submit(
        "generate", GenerationRequest(prompt="x", steps=3, width=64, height=64, preset="none")
    )
    try:
        assert started.wait(JOB_TIMEOUT_S)
        at = generate(new_app())
        job = last_job(at)
        assert job.position == 1
        progress = at.get("progress")
        assert progress and "Waiting in the queue: #1" in progress[0].proto.text
        at.button(key="cancel").click().run()
        at.run()
        assert job.status is JobStatus.CANCELLED
        assert any("Cancelled" in i.value for i in at.info)
    finally:
        opened.set()
    assert other_user.wait(JOB_TIMEOUT_S) and other_user.status is JobStatus.DONE


def test_two_sessions_generating_at_once_get_their_own_images(config, studio):
    first = generate(new_app(f_seed_lock=True, f_seed=7, f_scale=1.0), "a camera")
    second = generate(new_app(f_seed_lock=True, f_seed=8, f_scale=0.6), "a sneaker")
    (_, job_a), (_, job_b) = wait_for_job(first), wait_for_job(second)
    for job, seed, prompt in ((job_a, 7, "a camera"), (job_b, 8, "a sneaker")):
        image = job.result.images[0]
        assert image.result.record.request.seed == seed
        assert image.result.record.request.prompt == prompt
        again = studio.engine.generate(image.result.record.request)
        assert np.array_equal(np.asarray(again.image), np.asarray(image.result.image))


def test_gallery_lists_opens_reuses_and_deletes(config, studio):
    at, job = wait_for_job(generate(new_app(f_seed_lock=True, f_seed=99), "a gallery watch"))
    entry = job.result.images[0].entry
    at.switch_page("pages/gallery.py").run()
    assert not at.exception
    assert at.button(key=f"g_open_{entry.id}")
    at.text_input(key="g_query").input("gallery watch").run()
    opens = [b.key for b in at.button if b.key and b.key.startswith("g_open_")]
    assert opens == [f"g_open_{entry.id}"]
    at.checkbox(key=f"g_sel_{entry.id}").check().run()
    assert at.get("download_button")[0].label == "Download 1 selected (.zip)"
    at.button(key=f"g_open_{entry.id}").click().run()
    assert at.json[0].value  # all metadata
    assert any("Steps: 3" in c.value for c in at.code)  # the A1111 parameters chunk
    at.button(key=f"g_reuse_{entry.id}").click().run()
    assert at.session_state["f_prompt"] == "a gallery watch" and at.session_state["f_seed"] == 99
    assert any("loaded" in s.value for s in at.success)  # back on the Create page
    at.switch_page("pages/gallery.py").run()
    at.button(key=f"g_del_{entry.id}").click().run()
    assert any("for good" in w.value for w in at.warning)
    count = studio.gallery.count()
    at.button(key=f"g_del_yes_{entry.id}").click().run()
    assert studio.gallery.count() == count - 1 and not entry.path.exists()
    assert any(f"Deleted image #{entry.id}" in shown(s.value) for s in at.success)


def test_uploaded_loras_go_through_the_safe_loader(config, studio, tiny_lora_b):
    with pytest.raises(UnsafeFileError, match="'evil.safetensors'") as refused:
        studio.add_uploaded_lora("evil.safetensors", b"\x80\x04\x95pickle")
    assert str(studio.upload_dir) not in str(refused.value)  # no server paths in messages
    assert not list(studio.upload_dir.iterdir())  # a refused upload is not kept
    lora = studio.add_uploaded_lora("../../My Other.safetensors", tiny_lora_b.read_bytes())
    assert lora.name == "my_other" and lora.path.parent == studio.upload_dir
    assert studio.add_uploaded_lora("copy.safetensors", tiny_lora_b.read_bytes()) is lora
    assert "my_other" in [c.key for c in studio.lora_choices()]


def test_a_model_that_cannot_load_is_a_message(config, monkeypatch, tmp_path):
    broken = StudioConfig(
        engine=EngineSpec(base=str(tmp_path / "no-such-model"), device="cpu"),
        gallery=str(tmp_path / "g"),
    )  # the default: a worker process, whose failure to load must reach the page
    monkeypatch.setenv(ENV_VAR, broken.to_env()[ENV_VAR])
    at = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT_S).run()
    assert not at.exception
    assert any("could not start" in e.value for e in at.error)


# --- parts-first boards ------------------------------------------------------------------------


def parts_table(at: AppTest):
    (table,) = [t for t in at.data_editor if t.key.startswith("parts_table_")]  # not callouts
    return table


def edit_table(at: AppTest, added=(), deleted=(), edited=None) -> AppTest:
    """Edits as the browser's table sends them (rows by position, new rows by column)."""
    at.session_state[parts_table(at).key] = {
        "edited_rows": edited or {}, "added_rows": list(added), "deleted_rows": list(deleted)
    }  # fmt: skip
    return at.run()


def watch_parts(tmp_path_factory) -> list[str]:
    catalog = load_catalog(user_dir=tmp_path_factory.mktemp("no-user-catalog"))
    return [p.name for p in catalog["watch"].parts]


def test_board_mode_sends_compose_and_the_tables_parts(config, studio, tmp_path_factory):
    # 4 steps: the unifying pass (30% of the steps) must run at least one
    at = new_app(f_steps=4, f_compose=True, f_preset="knolling")
    at.text_area(key="f_prompt").input("a mechanical watch").run()
    assert list(parts_table(at).value["part"]) == watch_parts(tmp_path_factory)
    assert list(parts_table(at).value["count"]) == [1] * 7
    assert "f_explode" not in [s.key for s in at.slider]  # knolling: nothing to explode
    at.button(key="generate").click().run()
    job = last_job(at)
    assert job.request.compose and job.request.parts is None  # the catalog's list as it is
    at, _ = wait_for_job(at)  # random weights draw no clean part: the job fails, saying so
    assert any("could not draw the part" in e.value for e in at.error)

    edit_table(at, added=[{"part": "screw", "count": 4}], deleted=[0, 3, 4, 5, 6])
    assert list(parts_table(at).value["part"]) == ["dial", "case", "screw"]  # starts again
    assert at.session_state["f_parts"] == "dial, case, screw x4"
    at.button(key="generate").click().run()
    request = last_job(at).request
    assert request.compose and request.parts == "dial, case, screw x4"
    assert request.strength is None  # the board's own unifying strength
    wait_for_job(at)
    # Another object in the prompt starts from its own catalog list.
    at.text_area(key="f_prompt").input("a professional camera").run()
    assert at.session_state["f_parts"] == "" and "lens" in " ".join(parts_table(at).value["part"])


def test_a_prompt_not_in_the_catalog_asks_for_its_parts(config):
    at = new_app(f_steps=4, f_compose=True)  # 4 steps: the unifying pass runs one
    at.text_area(key="f_prompt").input("a hooded sweatshirt").run()
    note = "not in the parts catalog: list its parts in the table"
    assert any(note in shown(i.value) for i in at.info)
    assert parts_table(at).value.empty
    at.button(key="generate").click().run()
    assert any(note in shown(e.value) for e in at.error) and "jobs" not in at.session_state

    edit_table(at, added=[{"part": "hood"}, {"part": "sleeve", "count": 2}])
    edit_table(at, edited={1: {"count": 30}})  # past what a board holds of one part
    assert any("row 2 (sleeve)" in shown(e.value) for e in at.error)
    edit_table(at, edited={1: {"count": 2}})
    assert [e.value for e in at.error] == []
    at.button(key="generate").click().run()
    assert last_job(at).request.parts == "hood, sleeve x2"
    wait_for_job(at)


def test_board_options_follow_the_scenario(config):
    watch = "a mechanical watch"  # the prompt a parts list was made for (as Reuse sets it)
    # 5 steps: a unifying pass at strength 0.2 runs one
    at = new_app(f_steps=5, f_compose=True, f_preset="exploded-view", f_prompt=watch,
                 f_parts="case, strap x2", f_parts_prompt=watch)  # fmt: skip
    assert at.slider(key="f_explode").value == pytest.approx(1.0)
    assert at.number_input(key="f_strength").value is None
    at.slider(key="f_explode").set_value(0.4)
    at.number_input(key="f_strength").set_value(0.2)
    at.button(key="generate").click().run()
    request = last_job(at).request
    assert (request.parts, request.explode, request.strength) == ("case, strap x2", 0.4, 0.2)
    wait_for_job(at)
    at.selectbox(key="f_preset").set_value("none").run()
    assert any("has no board layout" in w.value for w in at.warning)
    at.button(key="generate").click().run()
    assert any("has no board layout" in e.value for e in at.error)
    at.checkbox(key="f_compose").uncheck().run()  # board mode off: a plain request again
    assert not at.data_editor
    at.button(key="generate").click().run()
    request = last_job(at).request
    assert not request.compose and request.parts is None and request.strength is None
    wait_for_job(at)


@pytest.fixture
def demo_studio(config, monkeypatch, tmp_path_factory):
    """A studio on the demo model, whose base draws parts the board can cut out."""
    cfg = StudioConfig(
        engine=EngineSpec(device="cpu"),
        gallery=str(tmp_path_factory.mktemp("demo-gallery")),
        upload_dir=str(tmp_path_factory.mktemp("demo-uploads")),
        workers=0,
    )
    monkeypatch.setenv(ENV_VAR, cfg.to_env()[ENV_VAR])
    return _studio_for(cfg)


def test_a_board_shows_its_check_parts_list_callouts_and_csv_and_reuses(demo_studio):
    steps = demo_studio.request_defaults.steps
    at = new_app(f_compose=True, f_preset="exploded-view", f_prompt="a mechanical watch",
                 f_parts="case, dial", f_parts_prompt="a watch", f_explode=0.5, f_steps=steps,
                 f_seed_lock=True, f_seed=5)  # fmt: skip
    at, job = wait_for_job(generate(at, "a mechanical watch"))
    assert job.status is JobStatus.DONE, job.error
    (image,) = job.result.images
    board = image.result.record.board
    assert board["plan"]["explode"] == 0.5 and [p["name"] for p in board["plan"]["parts"]] == [
        "case", "dial"
    ]  # fmt: skip
    check = [m.value for m in (*at.success, *at.warning) if "Board check" in m.value]
    assert check == [
        "Board check passed: all 2 parts found where planned "
        f"(layout score {board['check']['score']})."
        if board["accepted"]
        else "Board check failed: " + "; ".join(board["check"]["problems"]) + "."
    ]
    assert any(m.value.startswith("1. case") and "\n2. dial" in m.value for m in at.markdown)
    assert len(images(at)) == 2  # the board and its callouts from the plan
    labels = [d.label for d in at.get("download_button")]
    assert labels == ["Download PNG", "Download parts list (CSV)", "Download parts list (JSON)",
                      "Download callouts PNG"]  # fmt: skip
    assert "names_" + f"{job.id}_0" not in [t.key for t in at.text_input]  # names: the plan's

    # The gallery's Reuse brings the board settings back to the Create form.
    at.switch_page("pages/gallery.py").run()
    at.button(key=f"g_open_{image.entry.id}").click().run()
    assert any("Board check" in m.value for m in (*at.success, *at.warning))
    at.button(key=f"g_reuse_{image.entry.id}").click().run()
    state = at.session_state
    assert (state["f_compose"], state["f_parts"], state["f_explode"]) == (True, "case, dial", 0.5)
    assert state["f_preset"] == "exploded-view" and state["f_seed"] == 5
    assert list(parts_table(at).value["part"]) == ["case", "dial"]


# --- the Create page's frictions (issue 14) ------------------------------------------------------


@dataclass
class Hold:
    started: threading.Event  # the engine has the job
    gate: threading.Event  # set: the engine goes on


@pytest.fixture
def held_engine(studio, monkeypatch):
    """The engine waits before each image until the test opens the gate: a job stays running."""
    hold = Hold(threading.Event(), threading.Event())
    real = studio.engine.generate

    def held(req, progress=None, cancel=None, **kwargs):
        hold.started.set()
        assert hold.gate.wait(JOB_TIMEOUT_S)
        return real(req, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(studio.engine, "generate", held)
    yield hold
    hold.gate.set()


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def test_generate_is_disabled_while_the_sessions_job_runs(config, studio, held_engine):
    at = generate(new_app())
    assert held_engine.started.wait(JOB_TIMEOUT_S)
    button = at.button(key="generate")
    assert button.disabled and button.label == "Generating…"  # in the same run as the press
    assert studio.queue.waiting() == 0  # one job, nothing queued behind it
    held_engine.gate.set()
    at, job = wait_for_job(at)
    assert job.status is JobStatus.DONE
    button = at.button(key="generate")
    assert not button.disabled and button.label == "Generate"


def test_a_blank_prompt_is_refused_with_a_message(config):
    at = new_app()
    generate(at, "   ")
    assert any("the prompt is empty" in e for e in errors(at))
    assert "jobs" not in at.session_state
    generate(at, "a watch")  # typing one clears the refusal and generates
    assert "jobs" in at.session_state and not errors(at)
    wait_for_job(at)


def test_a_corrected_setting_clears_its_error_before_the_next_press(config):
    at = new_app(f_size="Custom", f_width=100, f_height=64)
    generate(at)
    assert any("multiple of 8" in e for e in errors(at))
    at.number_input(key="f_width").set_value(64).run()
    assert not errors(at)  # the error was about 100, not about 64
    assert "jobs" not in at.session_state


def test_the_seed_lock_keeps_or_draws_seeds_and_vary_and_reroll_lock_it(config):
    at = new_app()
    assert at.toggle(key="f_seed_lock").value is False
    at, first = wait_for_job(generate(at))
    assert at.session_state["f_seed"] == first.request.seed  # the drawn seed, shown
    at.button(key="generate").click().run()
    at, second = wait_for_job(at)
    assert second.request.seed != first.request.seed  # unlocked: a new one each time

    at.toggle(key="f_seed_lock").set_value(True).run()
    at.button(key="generate").click().run()
    at, third = wait_for_job(at)
    at.button(key="generate").click().run()
    at, fourth = wait_for_job(at)
    assert third.request.seed == fourth.request.seed == second.request.seed

    at.toggle(key="f_seed_lock").set_value(False).run()
    at.number_input(key="f_seed").set_value(77).run()
    assert at.session_state["f_seed_lock"] is True  # a seed typed in is locked
    at.session_state["f_seed"] = second.request.seed
    at.button(key="seed_vary").click().run()
    assert at.session_state["f_seed"] == second.request.seed + 1
    at.toggle(key="f_seed_lock").set_value(False).run()
    at.button(key="seed_reroll").click().run()
    assert at.session_state["f_seed_lock"] is True
    assert at.session_state["f_seed"] != second.request.seed + 1
    assert any("every image uses seed" in c.value for c in at.caption)


def test_reuse_says_what_it_changed_and_resets_the_output(config, studio):
    at, job = wait_for_job(generate(new_app(f_steps=3)))
    (image,) = job.result.images
    at.session_state["f_steps"] = 5
    at.session_state["f_mode"] = "sweep"
    at.button(key=f"reuse_{job.id}").click().run()
    seed = image.result.record.request.seed
    (message,) = [shown(s.value) for s in at.success if "loaded" in s.value]
    assert message.startswith(f"Settings of image #{image.entry.id} loaded: seed {seed} locked")
    assert "output single image" in message and "3 steps" in message
    assert at.session_state["f_mode"] == "generate" and at.session_state["f_seed_lock"] is True
    assert len(images(at)) == 1  # the image reused stays: it is the one the settings made

    # Another image reused from the gallery: this session's result is put away.
    at.session_state["f_prompt"] = "a camera"
    at.button(key="generate").click().run()
    at, other = wait_for_job(at)
    at.switch_page("pages/gallery.py").run()
    at.button(key=f"g_open_{image.entry.id}").click().run()
    at.button(key=f"g_reuse_{image.entry.id}").click().run()
    assert "jobs" not in at.session_state and not images(at)
    assert any(f"gallery image #{image.entry.id} loaded" in shown(s.value) for s in at.success)
    assert any("prompt 'a watch'" in shown(s.value) for s in at.success)


def test_cancel_says_cancelling_at_once(config, held_engine):
    at = generate(new_app())
    assert held_engine.started.wait(JOB_TIMEOUT_S)  # running: the engine has it
    at.button(key="cancel").click().run()
    assert "Cancelling…" in at.get("progress")[0].proto.text  # before the job has stopped
    assert at.button(key="cancel").disabled
    held_engine.gate.set()
    at, job = wait_for_job(at)  # the engine stops at its first step
    assert job.status is JobStatus.CANCELLED
    assert any("Cancelled" in i.value for i in at.info)


# --- the demo model's limits ------------------------------------------------------------------


def test_the_demo_shows_what_it_draws_and_offers_no_example_it_cannot(demo_studio):
    at = new_app(f_preset="fashion-flat-lay")
    labels = [b.label for b in at.button if b.key and b.key.startswith("example_")]
    assert labels == ["a denim jacket", "a sneaker"]  # not "a hooded sweatshirt"
    assert any("The demo model draws: a mechanical watch" in shown(c.value) for c in at.caption)
    assert not at.warning

    at.text_area(key="f_prompt").input("a hooded sweatshirt").run()
    (note,) = [shown(w.value) for w in at.warning]
    assert "does not know 'a hooded sweatshirt'" in note and "generic shapes" in note
    at.checkbox(key="f_compose").check().run()
    assert any("parts come from the parts list" in shown(w.value) for w in at.warning)
    at.text_area(key="f_prompt").input("a vintage wristwatch").run()
    assert not any("does not know" in shown(w.value) for w in at.warning)


def test_a_studio_on_another_model_shows_no_demo_notes(config):
    at = new_app(f_preset="fashion-flat-lay")
    labels = [b.label for b in at.button if b.key and b.key.startswith("example_")]
    assert "a hooded sweatshirt" in labels
    assert not any("demo model" in c.value for c in at.caption)


# --- several images per press, a reload, a photo to start from (issue 14) ---------------------------


def captions(at: AppTest) -> list[str]:
    return [image.proto.imgs[0].caption for image in images(at)]


def reloaded(client: str) -> AppTest:
    """The page a reload of the tab ``client`` gets: a new session, the id in the address."""
    at = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT_S)
    at.query_params[CLIENT_PARAM] = client
    return at.run()


def test_a_press_of_several_images_shows_a_grid_with_consecutive_or_fresh_seeds(config, studio):
    at, jobs = wait_for_jobs(generate(new_app(f_seed_lock=True, f_seed=40, f_count=3)))
    assert [job.status for job in jobs] == [JobStatus.DONE] * 3
    assert [job.request.seed for job in jobs] == [40, 41, 42]  # locked: counting up
    assert captions(at) == ["Seed 40", "Seed 41", "Seed 42"]
    assert [d.label for d in at.get("download_button")] == ["Download PNG"] * 3
    saved = [job.result.images[0] for job in jobs]
    assert len({image.entry.id for image in saved}) == 3
    assert all(image.png == image.entry.path.read_bytes() for image in saved)
    pixels_of = [np.asarray(image.result.image) for image in saved]
    assert not np.array_equal(pixels_of[0], pixels_of[1])  # three seeds, three pictures
    assert at.selectbox(key=f"batch_pick_{jobs[0].id}").value == 0  # details of the first

    at.toggle(key="f_seed_lock").set_value(False).run()
    at.button(key="generate").click().run()
    at, jobs = wait_for_jobs(at)
    seeds = [job.request.seed for job in jobs]
    assert len(set(seeds)) == 3 and seeds != list(range(seeds[0], seeds[0] + 3))  # drawn anew
    assert at.session_state["f_seed"] == seeds[0]  # shown, ready to lock

    at.session_state["f_mode"] = "compare"  # a comparison is one job whatever the count
    at.run()
    assert at.number_input(key="f_count").disabled
    at.button(key="generate").click().run()
    assert len(at.session_state["jobs"]) == 1
    wait_for_jobs(at)


def test_a_batch_says_which_image_runs_keeps_generate_disabled_and_cancels_all(config, studio,
                                                                               monkeypatch):  # fmt: skip
    second, gate = threading.Event(), threading.Event()
    real, calls = studio.engine.generate, []

    def hold_the_second(req, progress=None, cancel=None, **kwargs):
        calls.append(req.seed)
        if len(calls) == 2:  # the first image goes through; the second waits for the test
            second.set()
            assert gate.wait(JOB_TIMEOUT_S)
        return real(req, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(studio.engine, "generate", hold_the_second)
    try:
        at = generate(new_app(f_count=3))
        jobs = at.session_state["jobs"]
        assert second.wait(JOB_TIMEOUT_S)
        at.run()
        assert jobs[0].status is JobStatus.DONE and jobs[2].status is JobStatus.QUEUED
        assert "Image 2 of 3" in at.get("progress")[0].proto.text
        button = at.button(key="generate")
        assert button.disabled and button.label == "Generating…"
        at.button(key="cancel").click().run()
        assert jobs[2].status is JobStatus.CANCELLED  # the waiting one at once
    finally:
        gate.set()
    at, jobs = wait_for_jobs(at)
    assert [job.status for job in jobs] == [JobStatus.DONE] + [JobStatus.CANCELLED] * 2
    assert any("2 of 3 images cancelled" in i.value for i in at.info)
    assert captions(at) == [f"Seed {jobs[0].request.seed}"]  # the one that finished
    assert not at.button(key="generate").disabled


def test_a_reload_brings_back_the_result_the_form_and_the_earlier_images(config, studio):
    client = "reload-test-tab-1"
    at = reloaded(client)
    at.session_state["f_steps"] = 3
    at.session_state["f_seed_lock"] = True
    at.session_state["f_seed"] = 11
    at, first = wait_for_job(generate(at, "a watch"))
    at.session_state["f_count"] = 2
    at.session_state["f_seed"] = 20
    at, batch = wait_for_jobs(generate(at, "a camera"))

    at = reloaded(client)  # a new session of the same tab: nothing in its state yet
    assert not at.exception
    state = at.session_state
    assert (state["f_prompt"], state["f_count"], state["f_seed"]) == ("a camera", 2, 20)
    assert state["f_steps"] == 3 and state["f_seed_lock"] is True
    assert [job.id for job in state["jobs"]] == [job.id for job in batch]
    assert captions(at)[:2] == ["Seed 20", "Seed 21"]  # the last press, shown again
    assert any("This session's images" in m.value for m in at.markdown)
    entry = first.result.images[0].entry
    assert [b.key for b in at.button if b.key and b.key.startswith("hist_")] == [
        f"hist_{entry.id}"
    ]  # the earlier press, not the one shown above it

    at.button(key=f"hist_{entry.id}").click().run()
    assert captions(at)[0] == f"Image #{entry.id} · seed 11"
    assert at.get("download_button")[0].label == "Download PNG"
    at.button(key=f"hist_reuse_{entry.id}").click().run()
    assert at.session_state["f_prompt"] == "a watch" and at.session_state["f_seed"] == 11
    assert at.session_state["f_count"] == 2  # a record holds no count: the form's stays
    assert any("image #" in shown(s.value) and "loaded" in s.value for s in at.success)

    other = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT_S)
    other.query_params[CLIENT_PARAM] = client
    other.session_state["f_prompt"] = "my own"  # a session that set its form itself
    other.run()
    assert other.session_state["f_prompt"] == "my own"  # is not overwritten
    assert reloaded("a-fresh-tab-9999").session_state["f_prompt"] == ""  # another tab: its own


def png_of(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_photo_that_cannot_be_used_is_refused_with_a_message(config, studio):
    at = new_app()
    uploader = at.file_uploader(key="photo_upload")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    uploader.set_value(("product.png", gif.getvalue(), "image/png")).run()
    assert any("Photo refused: 'product.png' is a GIF image" in shown(e.value) for e in at.error)
    assert "photo" not in at.session_state
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, format="PNG")
    at.file_uploader(key="photo_upload").set_value(("huge.png", bomb.getvalue(), "image/png"))
    at.run()
    assert any("too many pixels" in shown(e.value) for e in at.error)

    good = png_of(Image.new("RGB", (80, 60), "orange"))
    at.file_uploader(key="photo_upload").set_value(("shoe.png", good, "image/png")).run()
    assert not at.error and at.session_state["photo"].size == (80, 60)
    assert at.slider(key="f_photo_strength").value == pytest.approx(PHOTO_STRENGTH)
    at.text_area(key="f_prompt").input("a mechanical watch")  # the parts catalog knows it
    at.checkbox(key="f_compose").check().run()
    assert any("parts-first board is drawn from its parts" in w.value for w in at.warning)
    at.button(key="generate").click().run()
    assert any("not from a photo" in e for e in errors(at)), errors(at)
    assert "jobs" not in at.session_state
    at.button(key="photo_remove").click().run()
    assert "photo" not in at.session_state


def test_a_photo_upload_starts_every_image_from_it_on_the_demo(demo_studio):
    """A world render as the designer's product photo, redrawn with the preset and the LoRA: the
    image differs from text to image at the same seed and is closer to the photo than it."""
    steps = demo_studio.request_defaults.steps
    render = render_object("camera", "assembled", seed=4).image
    at = new_app(f_steps=steps, f_seed_lock=True, f_seed=2, f_preset="knolling")
    at.file_uploader(key="photo_upload").set_value(("camera.png", png_of(render), "image/png"))
    at.run()
    photo = at.session_state["photo"]
    at, from_photo = wait_for_job(generate(at, "a professional camera"))
    assert from_photo.status is JobStatus.DONE, from_photo.error
    assert any(c.endswith("· from the photo") for c in captions(at))
    image = from_photo.result.images[0]
    record = read_record(image.entry.path)
    assert record.init_image == photo_facts(photo) and record.request.strength == PHOTO_STRENGTH
    assert [u.name for u in record.loras] == [at.session_state["f_lora"]]  # the LoRA was on
    assert (
        f"Denoising strength: {PHOTO_STRENGTH:g}" in read_png_text(image.entry.path)["parameters"]
    )

    at.button(key="photo_remove").click().run()
    at.button(key="generate").click().run()
    at, from_noise = wait_for_job(at)
    assert (
        from_noise.request.seed == 2
        and from_noise.result.images[0].result.record.init_image is None
    )

    def distance(a, b) -> float:
        return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())

    made, plain = image.result.image, from_noise.result.images[0].result.image
    target = photo.resize(made.size)
    assert distance(made, plain) > 5  # not the text-to-image picture
    assert distance(made, target) < 0.5 * distance(plain, target)  # it kept the photo
