"""The Create page's action area: the seed lock, Generate, and everything a press makes appear.

It sits at the top of the output column, in view at 1400x900 without scrolling,
so a press shows its answer right under the button: a refusal (an empty prompt,
a bad setting), the queue place, progress with an estimate from measured step
times, the rough preview and Cancel. Generate and Cancel act in callbacks, which
run before the page is drawn: Generate is already disabled when the page shows
the job, and Cancel already says "Cancelling…".

A press queues one job per image (``FormValues.to_requests``); the session keeps
them as ``jobs``, and the studio's ledger keeps them for the browser, so a reload
shows them again. Progress names the image ("image 2 of 4") and Cancel stops all.
"""

from __future__ import annotations

import concurrent.futures

import streamlit as st

from ..errors import NanoBananaError
from ..generate.jobs import Job, JobStatus
from .estimates import SessionRates, StepClock, progress_text, seconds_left
from .form import SWEEP_SCALES, FormValues, new_seed, next_seed
from .service import Studio
from .ui_common import client_id, plain, setting_number, show_flash

POLL_S = 1.0  # how often a waiting page looks at its job. Not faster: at 0.5 s with two pages
# polling, fragment reruns outran themselves (each one interrupted and restarted), keeping
# the server busy enough that a 1 s job took over 90 s (measured with the two-users test).
PREVIEW_WIDTH = 256  # px: the rough preview is a hint of the picture, not the picture


def action_area(studio: Studio, sizes: dict[str, tuple[int, int]]) -> None:
    """Seed lock, Generate, then this session's messages and its running jobs."""
    _seed_lock()
    running = running_jobs()
    st.button(
        "Generating…" if running else "Generate",
        type="primary",
        disabled=bool(running),
        width="stretch",
        key="generate",
        on_click=_submit,
        args=(studio, sizes),  # no help tooltip: on a disabled button it doubles the button
    )
    show_flash()
    _submit_error()
    if running:
        _watch(running)


def session_jobs() -> tuple[Job, ...]:
    """The jobs of this session's last press (one per image), finished or not."""
    return tuple(st.session_state.get("jobs", ()))


def running_jobs() -> tuple[Job, ...]:
    """The last press's jobs while any of them is queued or running, else ()."""
    jobs = session_jobs()
    return jobs if any(not job.status.finished for job in jobs) else ()


# --- the seed lock ------------------------------------------------------------------------------


def _seed_lock() -> None:
    """Seed box, lock, vary and re-roll in one row: the seed is never hidden in a fold."""
    locked = st.session_state.f_seed_lock
    box, lock, vary, reroll = st.columns([4, 3, 2, 2], vertical_alignment="bottom")
    with box:
        setting_number("Seed", "seed", "f_seed", on_change=_lock_seed)
    lock.toggle(
        "Lock seed",
        key="f_seed_lock",
        help="Locked: every image uses this seed. Unlocked: every image draws a new one "
        "(shown here), so a good one can be locked afterwards.",
    )
    vary.button(
        "Vary",
        key="seed_vary",
        icon=":material/exposure_plus_1:",
        on_click=_set_seed,
        args=(next_seed,),
        help="The next seed, locked: another take on the same settings.",
        width="stretch",
    )
    reroll.button(
        "Re-roll",
        key="seed_reroll",
        icon=":material/casino:",
        on_click=_set_seed,
        args=(lambda _: new_seed(),),
        help="A new random seed, locked.",
        width="stretch",
    )
    st.caption(
        f"Locked: every image uses seed {st.session_state.f_seed}."
        if locked
        else "Unlocked: each image draws a new seed, shown here; lock it to keep it."
    )


def _lock_seed() -> None:
    st.session_state.f_seed_lock = True  # a seed typed in is a seed wanted


def _set_seed(change) -> None:
    state = st.session_state
    state.f_seed, state.f_seed_lock = change(state.f_seed), True


# --- submitting -------------------------------------------------------------------------------


def _submit(studio: Studio, sizes: dict[str, tuple[int, int]]) -> None:
    """Generate's callback: check the form, queue a job per image, show the first seed drawn."""
    state = st.session_state
    state.pop("submit_error", None)
    state.pop("cancelling", None)
    form = FormValues.from_state(state)
    if form.f_compose and "parts_error" in state:  # the parts table's own message
        state.submit_error = (state.parts_error, form)
        return
    photo = state.get("photo")
    try:
        lora = studio.resolve_lora(form.f_lora, client_id())
        requests = form.to_requests(sizes, lora, photo=photo is not None)
        if requests[0].compose:  # the board's layout and parts, checked now, not in the queue
            studio.config.engine.check_request(requests[0])
        jobs = studio.submit_batch(form.kind, requests, SWEEP_SCALES, client_id(), photo)
    except NanoBananaError as exc:
        state.submit_error = (str(exc), form)
        return
    except concurrent.futures.TimeoutError:
        state.submit_error = ("loading the LoRA timed out; try again", form)
        return
    state.jobs = jobs
    state.pop("shown_entry", None)  # the new result, not an earlier image, is shown next
    state.f_seed = jobs[0].request.seed  # unlocked: the seed just drawn, ready to lock
    studio.sessions.remember_form(client_id(), FormValues.from_state(state).to_state())


def _submit_error() -> None:
    """The last refusal, while the form is as it was refused; a corrected form clears it."""
    refused = st.session_state.get("submit_error")
    if refused is None:
        return
    message, form = refused
    if form == FormValues.from_state(st.session_state):
        st.error(plain(message))
    else:
        st.session_state.pop("submit_error")


# --- watching ---------------------------------------------------------------------------------


@st.fragment(run_every=POLL_S)
def _watch(jobs: tuple[Job, ...]) -> None:
    """Queue place or progress of the press's first unfinished job, with a preview, redrawn
    until every job has ended ("image k of n" when the press made several)."""
    _remember_finished(jobs)
    unfinished = [job for job in jobs if not job.status.finished]
    if not unfinished:
        st.rerun()
    job = unfinished[0]
    done, count = len(jobs) - len(unfinished), len(jobs)
    which = f"Image {done + 1} of {count} · " if count > 1 else ""
    cancelling = st.session_state.get("cancelling") == jobs[0].id
    progress = job.progress
    if cancelling:
        fraction = (done + (progress.fraction if progress else 0.0)) / count
        st.progress(fraction, text="Cancelling…")
    elif job.status is JobStatus.QUEUED or progress is None:
        position = job.position
        ahead = f"{position - 1} job(s) ahead of yours" if position and position > 1 else "next"
        text = f"Waiting in the queue: #{position} ({ahead})" if position else "Starting…"
        st.progress(done / count, text=which + text)
    else:
        clock = _clock(job)
        clock.see(progress)
        queued = len(unfinished) - 1  # images after this one, as many steps each
        left = seconds_left(progress, clock, _rates(), queued * progress.images * progress.total)
        text = which + progress_text(progress, left)
        st.progress((done + progress.fraction) / count, text=text)
    preview = job.preview
    if preview is not None:
        st.image(preview, caption="Rough preview", width=PREVIEW_WIDTH)
    st.button(
        "Cancelling…" if cancelling else ("Cancel all" if count > 1 else "Cancel"),
        key="cancel",
        on_click=_cancel,
        args=(jobs,),
        disabled=cancelling,
        icon=":material/stop_circle:",
    )


def _cancel(jobs: tuple[Job, ...]) -> None:
    """Cancel every job of the press: the waiting ones first, so that none starts as the
    running one stops."""
    st.session_state.cancelling = jobs[0].id  # said at once; a job stops at its next step
    for job in reversed(jobs):
        job.cancel()


def _remember_finished(jobs: tuple[Job, ...]) -> None:
    """The step time of the job the page last watched, once it has finished."""
    clock = st.session_state.get("step_clock")
    if clock is None:
        return
    watched = next((job for job in jobs if job.id == clock.job_id), None)
    if watched is not None and watched.status.finished:
        remember_speed(watched)


def _clock(job: Job) -> StepClock:
    clock = st.session_state.get("step_clock")
    if clock is None or clock.job_id != job.id:
        clock = st.session_state.step_clock = StepClock(job.id)
    return clock


def _rates() -> SessionRates:
    return st.session_state.setdefault("step_rates", SessionRates())


def remember_speed(job: Job) -> None:
    """Keep a finished job's measured seconds per step for the next job's first estimate
    (a job too fast to be seen running leaves its overall rate, start-up included)."""
    clock = st.session_state.pop("step_clock", None)
    if job.status is not JobStatus.DONE or job.progress is None:
        return
    if clock is None or clock.job_id != job.id:
        clock = StepClock(job.id)
    clock.see(job.progress)
    _rates().add(clock.seconds_per_step() or clock.overall())
