"""The Create page: the form on the left; Generate, its feedback and the result on the right.

Widgets only fill ``FormValues``; the action area (``ui_job``) at the top of the
right column holds the seed lock and Generate, and shows right under them what
a press did: a refusal, the queue place, progress and preview, Cancel. The
result follows below it (a grid when a press made several images), then this
browser's earlier images (``ui_history``, which also brings the page back after
a reload). With the demo model, the page says which objects it can draw and
offers only examples it can draw.
"""

from __future__ import annotations

import concurrent.futures

import streamlit as st

from ..errors import NanoBananaError
from ..gallery.record import GenerationRecord
from ..generate.jobs import Job, JobImage, JobKind, JobStatus
from ..generate.spec import EngineSpec
from ..settings import GenerationRequest, Sampler, draw_seed, field_help
from .demo_limits import DemoObjects, demo_objects_for, unknown_object_note
from .form import (
    CUSTOM_SIZE,
    MAX_IMAGES_PER_CLICK,
    MODES,
    SCALE_HINT,
    SWEEP_SCALES,
    FormValues,
    size_presets,
)
from .service import NO_LORA, Studio
from .ui_board import board_controls, board_panel
from .ui_common import (
    client_id,
    plain,
    png_data,
    reuse_record,
    setting_number,
    setting_slider,
    show_settings,
    studio_or_stop,
)
from .ui_history import history_strip, restore_session, shown_image
from .ui_job import action_area, session_jobs
from .ui_photo import photo_controls
from .ui_tools import render_tools

GRID_COLUMNS = 4  # a press's images per row: 8 (the most) make two rows


def render() -> None:
    studio = studio_or_stop()
    sizes = size_presets(studio.native_size)
    restore_session(studio)
    _init_form(studio, sizes)
    st.markdown("### Create")
    st.caption(
        "Turn a product or garment into an exploded view or a knolling flat lay. "
        f"Model: **{studio.model_name}**."
    )
    left, right = st.columns([5, 7], gap="large")
    with left:
        _form(studio, sizes)
    with right:
        action_area(studio, sizes)
        if not shown_image(studio):
            _output(studio)
        history_strip(studio)


def _init_form(studio: Studio, sizes: dict[str, tuple[int, int]]) -> None:
    """Defaults for widgets that have no value yet (and repairs for stale ones)."""
    state = st.session_state
    defaults = FormValues.starting_from(studio.request_defaults)
    choices = [c.key for c in studio.lora_choices(client_id())]
    state.setdefault("f_lora", choices[0])  # the first loaded LoRA, if any
    state.setdefault("f_seed", draw_seed())  # shown from the start, so it can be locked
    for key, value in defaults.to_state().items():
        state.setdefault(key, value)
    if state.f_size not in sizes and state.f_size != CUSTOM_SIZE:
        state.f_size = next(iter(sizes))
        state.f_width, state.f_height = sizes[state.f_size]
    if state.f_lora not in choices:
        state.f_lora = choices[0]
    if state.f_preset not in studio.presets:
        state.f_preset = next(iter(studio.presets))


# --- the form ---------------------------------------------------------------------


def _form(studio: Studio, sizes: dict[str, tuple[int, int]]) -> None:
    demo = _demo_objects(studio.config.engine)
    _scenario(studio, demo)
    st.text_area(
        "What to take apart",
        key="f_prompt",
        height=90,
        placeholder="e.g. a mechanical watch",
        help=field_help("prompt"),
    )
    if demo is not None:
        _demo_note(demo)
    form = FormValues.from_state(st.session_state)
    _final_prompt(studio, form)
    st.segmented_control(
        "Output",
        list(m.value for m in MODES),
        key="f_mode",
        required=True,
        format_func=lambda v: MODES[JobKind(v)],
    )
    if form.kind is JobKind.SWEEP:
        st.caption(
            "One image per LoRA scale "
            + " · ".join(f"{s:g}" for s in SWEEP_SCALES)
            + ", same seed."
        )
    elif form.kind is JobKind.COMPARE:
        st.caption("The base model alone beside base + LoRA, same seed.")
    single = form.kind is JobKind.GENERATE
    st.number_input(
        "Images",
        min_value=1,
        max_value=MAX_IMAGES_PER_CLICK,
        step=1,
        key="f_count",
        disabled=not single,
        help="Images one press makes, each with its own seed: counting up from a locked "
        "seed, drawn anew when unlocked."
        + ("" if single else " A comparison or a sweep is one set per press."),
    )
    board_controls(studio)
    _lora_controls(studio)
    photo_controls()
    with st.expander("Sampling and size", expanded=False):
        _sampling_controls(studio, sizes)


@st.cache_resource(show_spinner=False, max_entries=4)
def _demo_objects(spec: EngineSpec) -> DemoObjects | None:
    return demo_objects_for(spec)


def _demo_note(demo: DemoObjects) -> None:
    """The objects the demo model draws, and a note when the prompt names none of them."""
    state = st.session_state
    if state.f_prompt.strip() and demo.named_in(state.f_prompt) is None:
        st.warning(plain(unknown_object_note(state.f_prompt, bool(state.f_compose))))
    st.caption("The demo model draws: " + plain(" · ".join(demo.phrases)) + ".")


def _scenario(studio: Studio, demo: DemoObjects | None) -> None:
    presets = studio.presets
    ids = sorted(presets, key=lambda i: (i == "none", presets[i].title))
    st.selectbox("Scenario", ids, key="f_preset", format_func=lambda i: presets[i].title)
    preset = presets[st.session_state.f_preset]
    st.caption(plain(preset.description))
    # The demo model draws only its world's objects: offer no example it cannot draw.
    examples = preset.examples if demo is None else demo.drawable(preset.examples)
    if examples:
        with st.container(horizontal=True, gap="small"):
            for i, example in enumerate(examples):
                st.button(
                    example,
                    key=f"example_{preset.id}_{i}",
                    type="tertiary",
                    on_click=_set_prompt,
                    args=(example,),
                    help="Use this example prompt",
                )


def _set_prompt(text: str) -> None:
    st.session_state.f_prompt = text


def _final_prompt(studio: Studio, form: FormValues) -> None:
    try:
        plan = studio.engine.plan(
            GenerationRequest(
                prompt=form.f_prompt, preset=form.f_preset, negative_prompt=form.f_negative or None
            )
        )
    except NanoBananaError as exc:
        st.error(plain(exc))
        return
    st.markdown(f"**Final prompt** &nbsp; :gray[{plan.tokens} / {plan.limit} tokens]")
    st.code(plan.prompt or " ", language=None, wrap_lines=True)
    if plan.warning():
        st.warning(f"Too long: {plain(plan.warning())}")


def _lora_controls(studio: Studio) -> None:
    choices = studio.lora_choices(client_id())
    labels = {c.key: c.label for c in choices}
    st.selectbox(
        "LoRA",
        list(labels),
        key="f_lora",
        format_func=labels.get,
        help="Structure LoRAs from the studio's LoRA folder, loaded ones, or your upload.",
    )
    off = st.session_state.f_lora == NO_LORA
    setting_slider("LoRA scale", "lora_scale", "f_scale", disabled=off)
    st.caption(SCALE_HINT)
    with st.expander("Upload a LoRA", expanded=False):
        st.file_uploader(
            f"LoRA file (.safetensors, up to {studio.config.max_lora_mb} MB)",
            type=["safetensors"],
            key="lora_upload",
            on_change=_on_upload,
            args=(studio,),
            max_upload_size=studio.config.max_lora_mb,
        )
        kind, text = st.session_state.get("lora_message", (None, None))
        if kind == "error":
            st.error(plain(text))
        elif kind == "success":
            st.success(plain(text))


def _on_upload(studio: Studio) -> None:
    """Check and load an uploaded LoRA with the safe loader; select it if it is good."""
    upload = st.session_state.get("lora_upload")
    if upload is None:
        st.session_state.pop("lora_message", None)
        return
    try:
        lora = studio.add_uploaded_lora(upload.name, upload.getvalue(), client_id())
    except NanoBananaError as exc:
        st.session_state.lora_message = ("error", f"LoRA refused: {exc}")
        return
    except concurrent.futures.TimeoutError:
        st.session_state.lora_message = ("error", "loading the LoRA timed out; try again")
        return
    st.session_state.f_lora = lora.name
    words = f" Trigger words: {', '.join(lora.trigger_words)}." if lora.trigger_words else ""
    st.session_state.lora_message = (
        "success",
        f"Loaded '{lora.name}' (rank {lora.rank}, {sum(lora.targets.values())} modules).{words}",
    )


def _sampling_controls(studio: Studio, sizes: dict[str, tuple[int, int]]) -> None:
    preset = studio.presets[st.session_state.f_preset]
    st.text_area(
        "Negative prompt",
        key="f_negative",
        height=70,
        placeholder=preset.negative or "nothing to avoid",
        help="Empty: the scenario's own negative prompt (shown greyed).",
    )
    c1, c2 = st.columns(2)
    with c1:
        setting_slider("CFG", "cfg", "f_cfg")
    with c2:
        setting_slider("Steps", "steps", "f_steps")
    options = [*sizes, CUSTOM_SIZE]
    st.selectbox("Size", options, key="f_size", help="Aspect ratios at the model's native size.")
    if st.session_state.f_size == CUSTOM_SIZE:
        w, h = st.columns(2)
        with w:
            setting_number("Width", "width", "f_width")
        with h:
            setting_number("Height", "height", "f_height")
    st.selectbox("Sampler", [s.value for s in Sampler], key="f_sampler", help=field_help("sampler"))


# --- the output --------------------------------------------------------------------------


def _output(studio: Studio) -> None:
    """The last press's result or its end; running jobs are shown by the action area."""
    jobs = session_jobs()
    if not jobs:
        _empty_state()
    elif not all(job.status.finished for job in jobs):
        return
    elif len(jobs) > 1:
        _batch(studio, jobs)
    elif jobs[0].status is JobStatus.DONE:
        _result(studio, jobs[0])
    elif jobs[0].status is JobStatus.CANCELLED:
        st.info("Cancelled. Change the settings or press Generate again.")
    else:
        st.error(f"Generation failed: {plain(jobs[0].error)}")


def _empty_state() -> None:
    with st.container(border=True):
        st.markdown("**No image yet**")
        st.caption(
            "Pick a scenario, click an example or describe an object, and press Generate. "
            "Progress and a rough preview appear under the button; every image is saved to "
            "the Gallery."
        )


# --- the result ---------------------------------------------------------------------------


def _batch(studio: Studio, jobs: tuple[Job, ...]) -> None:
    """A press's images as a grid, each with its seed and download; what did not finish is
    said; then the details (settings, reuse, tools) of the image picked below the grid."""
    done = [job for job in jobs if job.status is JobStatus.DONE]
    cancelled = sum(job.status is JobStatus.CANCELLED for job in jobs)
    failed = [job for job in jobs if job.status is JobStatus.FAILED]
    if cancelled:
        st.info(f"{cancelled} of {len(jobs)} images cancelled.")
    if failed:
        st.error(f"{len(failed)} of {len(jobs)} images failed: {plain(failed[0].error)}")
    for warning in dict.fromkeys(w for job in done for w in job.result.warnings):
        st.warning(plain(warning))
    for start in range(0, len(done), GRID_COLUMNS):
        row = done[start : start + GRID_COLUMNS]
        for column, job in zip(st.columns(GRID_COLUMNS), row, strict=False):
            with column:
                _image_card(job, 0, job.result.images[0], _seed_caption(job))
    if not done:
        return
    picked = st.selectbox(
        "Settings and tools of",
        range(len(done)),
        format_func=lambda i: _seed_caption(done[i]),
        key=f"batch_pick_{jobs[0].id}",
    )
    _details(studio, done[picked])


def _seed_caption(job: Job) -> str:
    return f"Seed {job.result.images[0].result.record.request.seed}"


def _result(studio: Studio, job: Job) -> None:
    result = job.result
    for warning in result.warnings:
        st.warning(plain(warning))
    images = result.images
    if len(images) == 1:
        _image_card(job, 0, images[0], _seed_caption(job))
    else:
        for i, (col, image) in enumerate(zip(st.columns(len(images)), images, strict=True)):
            with col:
                _image_card(job, i, image, image.label)
        st.download_button(
            "Download side-by-side sheet",
            png_data(result.sheet),
            file_name=f"nano-banana-{job.kind.value}-{job.request.seed}.png",
            mime="image/png",
            key=f"sheet_{job.id}",
            on_click="ignore",
            icon=":material/download:",
        )
    _details(studio, job)


def _details(studio: Studio, job: Job) -> None:
    """Below a job's images: its boards, settings, Reuse and the layout tools."""
    images = job.result.images
    _boards(job, images)
    last = images[-1]
    record = last.result.record
    _settings(record)
    st.button(
        "Reuse these settings",
        key=f"reuse_{job.id}",
        on_click=_reuse,
        args=(studio, record, f"image #{last.entry.id}" if last.entry else "this image"),
        help="Put this image's settings into the form, its seed locked.",
    )
    render_tools(job, images)


def _image_card(job: Job, index: int, image: JobImage, caption: str) -> None:
    if image.result.record.init_image is not None:
        caption += " · from the photo"
    st.image(image.result.image, caption=caption, width="stretch")
    name = _file_name(job, index, image)
    st.download_button(
        "Download PNG",
        image.png,
        file_name=name,
        mime="image/png",
        key=f"download_{job.id}_{index}",
        on_click="ignore",
        icon=":material/download:",
    )


def _file_name(job: Job, index: int, image: JobImage) -> str:
    return image.entry.path.name if image.entry else f"nano-banana-{job.id}-{index}.png"


def _boards(job: Job, images: tuple[JobImage, ...]) -> None:
    """Each board's check, parts list, callouts and CSV (one expander each beside others)."""
    for index, image in enumerate(images):
        if image.result.record.board is None:
            continue
        panel = st.container() if len(images) == 1 else st.expander(f"Board: {image.label}")
        with panel:
            stem = _file_name(job, index, image).removesuffix(".png")
            board_panel(image.result.record, image.result.image, f"{job.id}_{index}", stem)


def _settings(record: GenerationRecord) -> None:
    with st.expander("Settings", expanded=False):
        show_settings(record)
        if record.negative_used:
            st.markdown("**Negative prompt used:**")
            st.code(record.negative_used, language=None, wrap_lines=True)


def _reuse(studio: Studio, record: GenerationRecord, source: str) -> None:
    reuse_record(studio, record, source)
    st.toast("Settings loaded: see the message under Generate.", icon=":material/replay:")
