"""The Create page's action area: the seed lock, Generate, and everything a press makes appear.

It sits at the top of the output column, in view at 1400x900 without scrolling,
so a press shows its answer right under the button: a refusal (an empty prompt,
a bad setting), the queue place, progress with an estimate from measured step
times, the rough preview and Cancel. Generate and Cancel act in callbacks, which
run before the page is drawn: Generate is already disabled when the page shows
the job, and Cancel already says "Cancelling…".
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
    """Seed lock, Generate, then this session's messages and its running job."""
    _seed_lock()
    running = active_job()
    st.button(
        "Generating…" if running else "Generate",
        type="primary",
        disabled=running is not None,
        width="stretch",
        key="generate",
        on_click=_submit,
        args=(studio, sizes),  # no help tooltip: on a disabled button it doubles the button
    )
    show_flash()
    _submit_error()
    if running is not None:
        _watch(running)


def active_job() -> Job | None:
    """This session's job while it is queued or running."""
    job = st.session_state.get("job")
    return job if job is not None and not job.status.finished else None


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
    """Generate's callback: check the form, queue the job, show the seed it drew."""
    state = st.session_state
    state.pop("submit_error", None)
    state.pop("cancelling", None)
    form = FormValues.from_state(state)
    if form.f_compose and "parts_error" in state:  # the parts table's own message
        state.submit_error = (state.parts_error, form)
        return
    try:
        lora = studio.resolve_lora(form.f_lora, client_id())
        request = form.to_request(sizes, lora)
        if request.compose:  # the board's layout and parts, checked now rather than in the queue
            studio.config.engine.check_request(request)
        job = studio.submit(form.kind, request, SWEEP_SCALES, client=client_id())
    except NanoBananaError as exc:
        state.submit_error = (str(exc), form)
        return
    except concurrent.futures.TimeoutError:
        state.submit_error = ("loading the LoRA timed out; try again", form)
        return
    state.job = job
    state.f_seed = job.request.seed  # unlocked: the seed just drawn, ready to lock


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
def _watch(job: Job) -> None:
    """Queue place or progress with a preview, redrawn until the job ends."""
    if job.status.finished:
        remember_speed(job)
        st.rerun()
    cancelling = st.session_state.get("cancelling") == job.id
    progress = job.progress
    if cancelling:
        st.progress(progress.fraction if progress else 0.0, text="Cancelling…")
    elif job.status is JobStatus.QUEUED or progress is None:
        position = job.position
        ahead = f"{position - 1} job(s) ahead of yours" if position and position > 1 else "next"
        text = f"Waiting in the queue: #{position} ({ahead})" if position else "Starting…"
        st.progress(0.0, text=text)
    else:
        clock = _clock(job)
        clock.see(progress)
        left = seconds_left(progress, clock, _rates())
        st.progress(progress.fraction, text=progress_text(progress, left))
    preview = job.preview
    if preview is not None:
        st.image(preview, caption="Rough preview", width=PREVIEW_WIDTH)
    st.button(
        "Cancelling…" if cancelling else "Cancel",
        key="cancel",
        on_click=_cancel,
        args=(job,),
        disabled=cancelling,
        icon=":material/stop_circle:",
    )


def _cancel(job: Job) -> None:
    st.session_state.cancelling = job.id  # said at once; the job stops at its next step
    job.cancel()


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
