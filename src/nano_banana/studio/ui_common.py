"""Pieces every studio page uses: the cached studio, form-state keeping, messages, settings,
and the widgets for a request's numeric settings (bounded as ``settings`` says)."""

from __future__ import annotations

import io
import logging
import re

import streamlit as st
from PIL import Image

from ..errors import NanoBananaError
from ..gallery.record import GenerationRecord
from ..generate.reproduce import settings_rows
from ..settings import field_bounds, field_help
from .config import StudioConfig
from .form import FormValues
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
    return Studio.start(config)


def studio_or_stop() -> Studio:
    """The shared studio for this process's configuration; a clear message if it cannot load."""
    try:
        return _studio_for(StudioConfig.from_env())
    except NanoBananaError as exc:
        st.error(f"The studio could not start: {plain(exc)}")
    except Exception as exc:  # a broken model folder should still give a page, not a traceback
        log.exception("studio start failed")
        st.error(f"The studio could not load its model ({type(exc).__name__}: {plain(exc)}).")
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


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


def flash(kind: str, text: str) -> None:
    """A message to show once at the top of the next page drawn."""
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


def setting_number(label: str, field: str, key: str, disabled: bool = False) -> None:
    """A whole-number box bounded as ``settings`` validates the field."""
    bounds = field_bounds(field)
    st.number_input(
        label,
        min_value=int(bounds.low),
        max_value=int(bounds.high),
        step=int(bounds.step),
        key=key,
        disabled=disabled,
    )


def png_data(image: Image.Image) -> bytes:
    """An image as PNG bytes, for a download button or a thumbnail (no metadata)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
