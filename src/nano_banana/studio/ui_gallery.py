"""The Gallery page: the same persistent gallery as the CLI, newest first.

Search by prompt, filter by scenario, open an image for all its metadata, the
layout tools a Create page result has (analysis, the callout editor; a board's
check and parts list from its plan), download the saved file's own bytes, reuse
its settings, delete it (after a confirmation), or download a selection as a zip.
"""

from __future__ import annotations

import io

import streamlit as st
from PIL import Image

from ..errors import NanoBananaError
from ..gallery.png import read_png_text
from ..gallery.store import Gallery, GalleryEntry
from ..generate.reproduce import model_differences
from .service import Studio
from .ui_board import board_panel
from .ui_common import (
    download_saved,
    flash,
    plain,
    png_data,
    reuse_record,
    show_flash,
    show_settings,
    studio_or_stop,
)
from .ui_tools import image_tools

PAGE_SIZE = 24
COLUMNS = 4
THUMB_SIDE = 320


def render() -> None:
    studio = studio_or_stop()
    gallery = studio.gallery
    st.markdown("### Gallery")
    show_flash()
    opened = st.session_state.get("g_open")
    if opened is not None:
        _detail(studio, opened)
        return
    _browse(gallery)


# --- browsing -------------------------------------------------------------------------


def _browse(gallery: Gallery) -> None:
    total_all = gallery.count()
    st.caption(f"{total_all} image(s), newest first · stored in `{gallery.root}`")
    if total_all == 0:
        with st.container(border=True):
            st.markdown("**The gallery is empty**")
            st.caption("Every image you generate is saved here, with its settings inside the PNG.")
            st.page_link("pages/create.py", label="Create your first image", icon=":material/add:")
        return
    c1, c2 = st.columns([3, 1])
    query = c1.text_input("Search prompts", key="g_query", placeholder="watch, jacket, camera …")
    presets = ["", *gallery.presets()]
    preset = c2.selectbox(
        "Scenario", presets, key="g_preset", format_func=lambda p: p or "All scenarios"
    )
    limit = st.session_state.setdefault("g_limit", PAGE_SIZE)
    total = gallery.count(query or None, preset or None)
    entries = gallery.list(query or None, preset or None, limit=limit)
    _selection_bar(gallery)
    if not entries:
        st.info("No image matches this search.")
        return
    for start in range(0, len(entries), COLUMNS):
        for col, entry in zip(st.columns(COLUMNS), entries[start : start + COLUMNS], strict=False):
            with col:
                _card(entry)
    if len(entries) < total:
        st.button(f"Show more ({total - len(entries)} left)", key="g_more", on_click=_more)


def _more() -> None:
    st.session_state.g_limit = st.session_state.get("g_limit", PAGE_SIZE) + PAGE_SIZE


def _card(entry: GalleryEntry) -> None:
    with st.container(border=True):
        thumb = _thumbnail(str(entry.path), entry.sha256)
        if thumb is not None:
            st.image(thumb, width="stretch")
        else:
            st.caption("(image file missing)")
        prompt = entry.prompt.strip() or "(empty prompt)"
        st.markdown(f"**{plain(_short(prompt, 60))}**")
        st.caption(
            f"#{entry.id} · {plain(entry.preset)} · seed {entry.seed} · {entry.created[:16]}"
        )
        with st.container(horizontal=True, vertical_alignment="center"):
            st.checkbox("Select", key=f"g_sel_{entry.id}")
            st.button("Open", key=f"g_open_{entry.id}", on_click=_open, args=(entry.id,))


@st.cache_data(max_entries=1024, show_spinner=False)
def _thumbnail(path: str, sha256: str) -> bytes | None:
    """A small PNG for the grid (display only; downloads send the original file)."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError):
        return None
    if max(image.size) > THUMB_SIDE:
        image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return png_data(image)


def _selected() -> list[int]:
    return sorted(
        int(k[6:])
        for k, v in st.session_state.items()
        if isinstance(k, str) and k.startswith("g_sel_") and v
    )


def _selection_bar(gallery: Gallery) -> None:
    chosen = _selected()
    c1, c2 = st.columns([2, 5])
    c1.download_button(
        f"Download {len(chosen)} selected (.zip)" if chosen else "Download selected (.zip)",
        data=lambda: gallery.zip_bytes(chosen),
        file_name="nano-banana-images.zip",
        mime="application/zip",
        disabled=not chosen,
        key="g_zip",
        on_click="ignore",
        icon=":material/folder_zip:",
    )
    if chosen:
        c2.button("Clear selection", key="g_clear", on_click=_clear_selection, type="tertiary")


def _clear_selection() -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith("g_sel_")]:
        st.session_state[key] = False


def _open(entry_id: int) -> None:
    st.session_state.g_open = entry_id
    st.session_state.pop("g_confirm_delete", None)


def _close() -> None:
    st.session_state.pop("g_open", None)
    st.session_state.pop("g_confirm_delete", None)


# --- one image ------------------------------------------------------------------------


def _detail(studio: Studio, entry_id: int) -> None:
    gallery = studio.gallery
    st.button("Back to gallery", key="g_back", on_click=_close, icon=":material/arrow_back:")
    try:
        entry = gallery.get(entry_id)
        data = gallery.read_bytes(entry_id)
    except NanoBananaError as exc:
        st.error(plain(exc))
        return
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.image(data, width="stretch")
        _layout_tools(entry, data)
    with right:
        st.markdown(f"**{plain(entry.prompt.strip() or '(empty prompt)')}**")
        st.caption(
            f"#{entry.id} · saved {entry.saved[:19].replace('T', ' ')} · `{entry.path.name}`"
        )
        _facts(entry)
        download_saved(st, entry, data, f"g_dl_{entry.id}")
        if st.button(
            "Reuse settings",
            key=f"g_reuse_{entry.id}",
            icon=":material/replay:",
            help="Open the Create page with this image's settings and seed.",
        ):
            _reuse(studio, entry)
        _delete_controls(gallery, entry)
    with st.expander("All metadata", expanded=False):
        st.json(entry.record, expanded=True)
        try:
            chunks = read_png_text(entry.path)
        except NanoBananaError as exc:
            st.error(plain(exc))
            chunks = {}
        for key, text in chunks.items():
            if key != "nano_banana":
                st.markdown(f"PNG text chunk `{key}`")
                st.code(text, language=None, wrap_lines=True)


def _facts(entry: GalleryEntry) -> None:
    try:
        record = entry.generation_record()
    except (NanoBananaError, KeyError, TypeError, ValueError) as exc:
        st.caption(f"Its settings cannot be read ({exc}); see All metadata.")
        return
    show_settings(record)


def _layout_tools(entry: GalleryEntry, data: bytes) -> None:
    """A parts-first board's check, parts list and callout editor (from its saved plan), then
    the layout tools of a Create page result, on the saved image itself."""
    try:
        record = entry.generation_record()
    except (NanoBananaError, KeyError, TypeError, ValueError):
        record = None  # _facts says why; the pixels can still be analysed
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError):
        return  # the picture above already shows what the browser makes of it
    key = f"g_{entry.id}"
    if record is not None and record.board is not None:
        board_panel(record, image, key, entry.path.stem)
    st.markdown("**Layout tools**")
    image_tools(image, record, key, entry.path.stem)


def _reuse(studio: Studio, entry: GalleryEntry) -> None:
    try:
        record = entry.generation_record()
    except (NanoBananaError, KeyError, TypeError, ValueError) as exc:
        st.error(f"This image's settings cannot be reused: {exc}")
        return
    loaded = studio.queue.loras()
    notes = model_differences(
        record, studio.engine.base_name, {lora.sha256 for lora in loaded.values()}
    )
    reuse_record(studio, record, f"gallery image #{entry.id}", tuple(notes))
    st.switch_page("pages/create.py")


def _delete_controls(gallery: Gallery, entry: GalleryEntry) -> None:
    if st.session_state.get("g_confirm_delete") != entry.id:
        st.button(
            "Delete…",
            key=f"g_del_{entry.id}",
            icon=":material/delete:",
            on_click=lambda: st.session_state.update(g_confirm_delete=entry.id),
        )
        return
    st.warning(f"Delete image #{entry.id} and its file for good?")
    c1, c2 = st.columns(2)
    if c1.button("Yes, delete", key=f"g_del_yes_{entry.id}", type="primary"):
        try:
            gallery.delete(entry.id)
        except NanoBananaError as exc:
            st.error(plain(exc))
            return
        st.session_state.pop(f"g_sel_{entry.id}", None)
        _close()
        flash("success", f"Deleted image #{entry.id}.")
        st.rerun()
    c2.button(
        "Keep it",
        key=f"g_del_no_{entry.id}",
        on_click=lambda: st.session_state.pop("g_confirm_delete", None),
    )


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
