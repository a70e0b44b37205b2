"""Pieces every studio page uses: the cached studio, form-state keeping, messages, settings,
and the widgets for a request's numeric settings (bounded as ``settings`` says)."""

from __future__ import annotations

import io
import logging
import re
import secrets

import streamlit as st
from PIL import Image

from ..errors import NanoBananaError
from ..gallery.record import GenerationRecord
from ..generate.reproduce import settings_rows
from ..settings import field_bounds, field_help
from .config import StudioConfig
from .form import FormValues, size_presets
from .service import Studio

log = logging.getLogger("nano_banana.studio")


# Every ASCII punctuation mark may be backslash-escaped in Markdown (CommonMark), and escaped
# it is shown as itself: no image fetched from a prompt's ![](url), no link, no :color[] or
# $math$ of Streamlit's own. User text and text read from files goes through this.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: object) -> str:
    """``text`` for Streamlit's Markdown, shown exactly as written."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


@st.cache_resource(show_spinner="Loading the model (once per studio process)…", max_entries=4)
def _studio_for(config: StudioConfig) -> Studio:
    return Studio.start(config, session_alive=_session_alive)


def _session_alive(session_id: str) -> bool:
    """Is this Streamlit session still connected? (The studio cancels what departed ones left.)"""
    from streamlit.runtime import Runtime

    if not Runtime.exists():  # AppTest runs pages without a server: nobody departs
        return True
    return Runtime.instance().is_active_session(session_id)


CLIENT_PARAM = "c"  # the browser tab's id in its address: a reload is the same client
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,32}")


def client_id() -> str:
    """This browser tab's id (made once, then kept in the address across reloads)."""
    given = st.query_params.get(CLIENT_PARAM)
    if isinstance(given, str) and _CLIENT_ID.fullmatch(given):
        return given
    made = secrets.token_urlsafe(12)
    st.query_params[CLIENT_PARAM] = made
    return made


def studio_or_stop() -> Studio:
    """The shared studio for this process's configuration; a clear message if it cannot load.

    Each page run also tells the studio which client (browser tab) and session it is."""
    try:
        studio = _studio_for(StudioConfig.from_env())
        studio.sessions.visit(client_id(), _session_id())
        return studio
    except NanoBananaError as exc:
        st.error(f"The studio could not start: {plain(exc)}")
    except Exception as exc:  # a broken model folder should still give a page, not a traceback
        log.exception("studio start failed")
        st.error(f"The studio could not load its model ({type(exc).__name__}: {plain(exc)}).")
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def _session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def keep_form_state() -> None:
    """Keep the Create form's values while another page is shown.

    Streamlit forgets a widget's state when a run does not draw it; writing the
    values back at the top of every run makes them plain state that survives.
    """
    kept = set(FormValues.field_names()) | {"g_query", "g_preset"}
    for key in list(st.session_state):
        if isinstance(key, str) and (key in kept or key.startswith("g_sel_")):
            st.session_state[key] = st.session_state[key]


def set_form(values: FormValues) -> None:
    """Put ``values`` into the Create form (call from a callback or before the form is drawn)."""
    for key, value in values.to_state().items():
        st.session_state[key] = value


def reuse_record(
    studio: Studio, record: GenerationRecord, source: str, notes: tuple[str, ...] = ()
) -> None:
    """Put ``record``'s settings into the Create form and say what that changed.

    ``source`` names the image ("gallery image #12"). The session's finished result is
    put away unless it holds that image: a result beside other settings reads as theirs.
    """
    sizes = size_presets(studio.native_size)
    before = FormValues.from_state(st.session_state)
    after = FormValues.from_record(record, sizes, list(studio.queue.loras()), before)
    set_form(after)
    st.session_state.pop("submit_error", None)  # about the settings just replaced
    st.session_state.pop("shown_entry", None)  # a history image shown instead of the result
    jobs = st.session_state.get("jobs", ())
    if jobs and all(j.status.finished for j in jobs) and not _made(jobs, record):
        st.session_state.pop("jobs")
    if record.init_image is not None and st.session_state.get("photo") is None:
        photo = record.init_image
        notes = (*notes, f"it started from a {photo.width}×{photo.height} photo: add it under "
                 "'Start from a photo' to redraw it, or it is drawn from noise")  # fmt: skip
    titles = {key: preset.title for key, preset in studio.presets.items()}
    said = after.changes(before, sizes, titles)
    message = f"Settings of {source} loaded: {', '.join(said)}."
    flash("success", " ".join([message, *(f"Note: {note}." for note in notes)]))


def _made(jobs, record: GenerationRecord) -> bool:
    """Whether the result of one of ``jobs`` holds the image ``record`` describes."""
    results = [job.result for job in jobs if job.result is not None]
    return any(i.result.record == record for result in results for i in result.images)


def flash(kind: str, text: str) -> None:
    """A message to show once on the next page drawn (on the Create page: under Generate)."""
    st.session_state["_flash"] = (kind, text)


def show_flash() -> None:
    kind, text = st.session_state.pop("_flash", (None, None))
    if kind == "success":
        st.success(plain(text))
    elif kind == "error":
        st.error(plain(text))
    elif kind:
        st.info(plain(text))


def show_settings(record: GenerationRecord) -> None:
    """The settings that made an image, as the library words them, and its final prompt."""
    rows = settings_rows(record)
    st.markdown("  \n".join(f"**{label}:** {plain(value)}" for label, value in rows.items()))
    st.markdown("**Prompt used:**")
    st.code(record.prompt_used or " ", language=None, wrap_lines=True)


def setting_slider(label: str, field: str, key: str, disabled: bool = False) -> None:
    """A slider over the setting's useful range (``settings`` says which), widened for a reused
    value outside it."""
    bounds = field_bounds(field)
    low, high = bounds.slider_range(st.session_state.get(key))
    st.slider(
        label, low, high, step=bounds.step, key=key, disabled=disabled, help=field_help(field)
    )


def setting_number(
    label: str, field: str, key: str, disabled: bool = False, on_change=None
) -> None:
    """A whole-number box bounded as ``settings`` validates the field."""
    bounds = field_bounds(field)
    st.number_input(
        label,
        min_value=int(bounds.low),
        max_value=int(bounds.high),
        step=int(bounds.step),
        key=key,
        disabled=disabled,
        on_change=on_change,
        help=field_help(field),
    )


@st.cache_data(max_entries=1024, show_spinner=False)
def thumbnail(path: str, sha256: str, side: int) -> bytes | None:
    """A small PNG of the image file at ``path`` (``sha256`` keys the cache to its bytes);
    None when it is gone or unreadable. Display only: downloads send the original file."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError):
        return None
    image.thumbnail((side, side))
    return png_data(image)


def download_saved(where, entry, data: bytes, key: str) -> None:
    """The Download button of a gallery image: the saved file's bytes under its own name."""
    where.download_button(
        "Download PNG",
        data,
        file_name=entry.path.name,
        mime="image/png",
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )


def png_data(image: Image.Image) -> bytes:
    """An image as PNG bytes, for a download button or a thumbnail (no metadata)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
