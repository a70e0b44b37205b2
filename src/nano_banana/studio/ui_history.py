"""The Create page across a reload: the last press, the form, and this browser's earlier images.

A reload starts a new Streamlit session with empty state. The browser keeps its
id in the address (``ui_common.client_id``), and the studio's ledger keeps, for
that id, the jobs of the last press, the form they were made with and the images
of the presses before (``studio.sessions``). ``restore_session`` puts the first two
back once per session; ``history_strip`` shows the earlier images as thumbnails
from the gallery, each of which can be shown in place of the result and reused.
"""

from __future__ import annotations

import streamlit as st

from ..errors import GalleryError
from .form import FormValues
from .service import Studio
from .ui_common import (
    client_id,
    download_saved,
    plain,
    reuse_record,
    show_settings,
    thumbnail,
)

THUMB_SIDE = 160  # px: a thumbnail's longer side (six to a row in the output column)
PER_ROW = 6


def restore_session(studio: Studio) -> None:
    """Once per session, before the form is drawn: the client's last form, if this session's
    form is untouched, and its last press's jobs, running or finished."""
    state = st.session_state
    if state.get("_restored"):
        return
    state._restored = True
    client = client_id()
    saved = studio.sessions.last_form(client)
    names = FormValues.field_names()
    if saved and not any(name in state for name in names):
        for name in names:
            if name in saved:
                state[name] = saved[name]
    if "jobs" not in state and (batch := studio.sessions.last_batch(client)):
        state.jobs = batch


# --- earlier images ------------------------------------------------------------------------


def history_strip(studio: Studio) -> None:
    """Thumbnails of this browser's earlier images, newest first; each one can be shown."""
    past = studio.sessions.history(client_id())
    if not past:
        return
    st.markdown("**This session's images**")
    st.caption("Earlier images of this browser tab, newest first; every one is in the Gallery.")
    for start in range(0, len(past), PER_ROW):
        row = past[start : start + PER_ROW]
        for column, item in zip(st.columns(PER_ROW), row, strict=False):
            entry = item.entry
            with column:
                thumb = thumbnail(str(entry.path), entry.sha256, THUMB_SIDE)
                if thumb is None:  # deleted from the gallery since
                    st.caption(f"#{entry.id} deleted")
                    continue
                st.image(thumb, width="stretch")
                st.button(
                    f"Seed {entry.seed}",
                    key=f"hist_{entry.id}",
                    on_click=_show,
                    args=(entry.id,),
                    type="tertiary",  # no help tooltip: Streamlit then draws the button twice
                )


def _show(entry_id: int) -> None:
    st.session_state.shown_entry = entry_id


def shown_image(studio: Studio) -> bool:
    """An earlier image the user picked from the strip, in place of the result; False if none
    (or it has left the gallery since)."""
    entry_id = st.session_state.get("shown_entry")
    if entry_id is None:
        return False
    try:
        entry = studio.gallery.get(entry_id)
        data = studio.gallery.read_bytes(entry_id)
    except GalleryError:
        st.session_state.pop("shown_entry")
        st.info(f"Image #{entry_id} is no longer in the gallery.")
        return False
    st.image(data, caption=f"Image #{entry.id} · seed {entry.seed}", width="stretch")
    record = entry.generation_record()
    download, reuse, back = st.columns(3)
    download_saved(download, entry, data, f"hist_download_{entry.id}")
    reuse.button(
        "Reuse these settings",
        key=f"hist_reuse_{entry.id}",
        on_click=reuse_record,
        args=(studio, record, f"image #{entry.id}"),
    )
    back.button("Back to the latest result", key="hist_back", on_click=_back)
    with st.expander("Settings", expanded=False):
        show_settings(record)
    st.caption(f"Prompt: {plain(entry.prompt)}")
    return True


def _back() -> None:
    st.session_state.pop("shown_entry", None)
