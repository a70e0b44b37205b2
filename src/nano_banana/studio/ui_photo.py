"""The Create page's "Start from a photo": a product photo every image of a press redraws.

The upload is read by ``generate.photo.load_photo``, the command line's reader
too: PNG, JPEG or WebP by their bytes, and a file too large, a decompression bomb
or a damaged file is refused with a message saying which and why. The photo is
kept in the session as ``photo`` (oriented RGB); each image then starts from it
at the strength slider's value, with the scenario's prompt and the LoRA.
"""

from __future__ import annotations

import streamlit as st

from ..errors import NanoBananaError
from ..generate.jobs import JobKind
from ..generate.photo import MAX_PHOTO_MB
from .ui_common import plain, setting_slider

PREVIEW_WIDTH = 160  # px: enough to recognise the photo beside the form
STRENGTH_HINT = (
    "Lower (0.3): the photo as it is, restyled lightly. Higher (0.9): its outline and "
    "colours stay, the rest is redrawn."
)


def photo_controls() -> None:
    """The uploader, and with a photo: its preview, the strength and a way to remove it."""
    state = st.session_state
    photo = state.get("photo")
    with st.expander("Start from a photo", expanded=photo is not None or "photo_error" in state):
        st.file_uploader(
            f"Product photo (PNG, JPEG or WebP, up to {MAX_PHOTO_MB} MB)",
            type=["png", "jpg", "jpeg", "webp"],
            key="photo_upload",
            on_change=_on_photo,
            max_upload_size=MAX_PHOTO_MB,
            help="Every image of a press redraws this photo in the scenario's style.",
        )
        if "photo_error" in state:
            st.error(plain(state.photo_error))
        if photo is None:
            return
        st.image(photo, caption=_caption(), width=PREVIEW_WIDTH)
        setting_slider("Photo strength", "strength", "f_photo_strength")
        st.caption(STRENGTH_HINT)
        _conflicts()
        st.button("Remove the photo", key="photo_remove", on_click=_remove_photo)


def _caption() -> str:
    photo, name = st.session_state.photo, st.session_state.get("photo_name", "photo")
    return f"{plain(name)} · {photo.width}×{photo.height}"


def _conflicts() -> None:
    """Say now what Generate would refuse: a photo starts single images, not boards."""
    state = st.session_state
    if state.f_compose:
        st.warning("A parts-first board is drawn from its parts: turn the board off to use it.")
    elif JobKind(state.f_mode) is not JobKind.GENERATE:
        st.warning("A photo starts single images: choose 'Single image' as the output.")


def _on_photo() -> None:
    """Read the upload; a refused file leaves no photo and a message naming the problem."""
    from ..generate.photo import load_photo  # Pillow's decoders: only when a photo comes

    state = st.session_state
    upload = state.get("photo_upload")
    _remove_photo()
    if upload is None:  # the uploader was cleared
        return
    try:
        state.photo = load_photo(upload.getvalue(), upload.name)
    except NanoBananaError as exc:
        state.photo_error = f"Photo refused: {exc}"
        return
    state.photo_name = upload.name


def _remove_photo() -> None:
    for key in ("photo", "photo_name", "photo_error"):
        st.session_state.pop(key, None)
