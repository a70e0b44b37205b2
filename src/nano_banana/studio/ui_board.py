"""Parts-first boards in the studio: the Create form's board controls and a board's panel.

The form's part: the "Parts-first board" switch, the parts list as an editable
table (pre-filled from the parts catalog's entry for the object in the prompt),
the explode slider for exploded views and the unifying pass's strength. The
panel: the board's check, its numbered parts list, and the callout editor on
the plan's parts (names, order, CSV/JSON), all from the plan saved with the
image (``parts.labels``).
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st
from PIL import Image

from ..errors import CatalogError
from ..gallery.record import GenerationRecord
from ..parts.catalog import MAX_COUNT, CatalogObject, find_object, load_catalog
from ..parts.labels import (
    CSV_COLUMNS,
    NOT_IN_CATALOG,
    TABLE_COLUMNS,
    board_rows,
    plan_of,
    table_parts,
    table_rows,
)
from ..parts.plan import label
from ..settings import UNIFY_STRENGTH, field_bounds, field_help
from .service import Studio
from .ui_callouts import callout_editor
from .ui_common import plain, setting_slider

EXPLODED = "exploded"  # the board layout the explode slider moves


# --- the form's board controls -----------------------------------------------------------------


def board_controls(studio: Studio) -> None:
    """The board switch and, when it is on, the parts table, explode and strength."""
    st.checkbox("Parts-first board", key="f_compose", help=field_help("compose"))
    if not st.session_state.f_compose:
        return
    presets = studio.presets
    preset = presets[st.session_state.f_preset]
    if not preset.board:
        with_board = ", ".join(sorted(p.title for p in presets.values() if p.board))
        st.warning(
            f"'{plain(preset.title)}' has no board layout; pick one of: {plain(with_board)}."
        )
    _parts_table()
    if preset.board == EXPLODED:
        setting_slider("Explode", "explode", "f_explode")
    bounds = field_bounds("strength")
    st.number_input(
        "Unifying strength",
        min_value=float(bounds.low),
        max_value=float(bounds.high),
        step=float(bounds.step),
        value=None,  # empty: the board's own light pass
        placeholder=f"{UNIFY_STRENGTH:g} (default)",
        key="f_strength",
        help=field_help("strength"),
    )


def _parts_table() -> None:
    """The parts list as a table; its edits become ``f_parts`` (the request's parts)."""
    state = st.session_state
    try:
        catalog = load_catalog()  # read each run: a user may add catalog files while it runs
    except CatalogError as exc:  # a broken user file: say which, keep the page
        state.parts_error = str(exc)
        st.error(plain(exc))
        return
    obj = find_object(state.f_prompt, catalog)
    if state.f_parts and find_object(state.f_parts_prompt, catalog) != obj:
        state.f_parts = ""  # the prompt names another object now: its own list
    _table_note(obj)
    rows = _start_rows(obj)
    edited = st.data_editor(
        pd.DataFrame(
            {
                "part": pd.Series([r["part"] for r in rows], dtype="object"),
                "count": pd.Series([r["count"] for r in rows], dtype="int64"),
            }
        ),  # fmt: skip
        # A new key for each starting list: the editor keeps its edits only while its rows stay.
        key="parts_table_" + hashlib.sha256(repr(rows).encode()).hexdigest()[:12],
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_order=TABLE_COLUMNS,
        column_config={
            "part": st.column_config.TextColumn("Part", help="One kind of part"),
            "count": st.column_config.NumberColumn(
                "Count",
                min_value=1,
                max_value=MAX_COUNT,
                step=1,
                default=1,
                help="How many identical copies go on the board",
            ),
        },  # fmt: skip
    )
    try:
        parts = table_parts(
            edited.astype(object).where(edited.notna(), None).to_dict("records"), obj
        )
    except CatalogError as exc:
        state.parts_error = str(exc)
        if str(exc) != NOT_IN_CATALOG:  # that one is the note above the table
            st.error(plain(exc))
        return
    state.pop("parts_error", None)
    if (parts or "") != state.f_parts:
        state.f_parts, state.f_parts_prompt = parts or "", state.f_prompt
        state.pop("submit_error", None)  # it may have been about the list just edited
        st.rerun()  # the table starts again from the edited list


def _table_note(obj: CatalogObject | None) -> None:
    if obj is not None:
        st.caption(
            f"Parts of {plain(obj.phrase)}, from the parts catalog: edit, add or delete rows."
        )
    elif st.session_state.f_prompt.strip():
        st.info(f"'{plain(st.session_state.f_prompt.strip())}' is {NOT_IN_CATALOG}.")
    else:
        st.info("Describe an object: its parts come from the parts catalog, or list them here.")


def _start_rows(obj: CatalogObject | None) -> list[dict]:
    """The form's parts list as rows, else the catalog's (a reused list may not parse)."""
    try:
        return table_rows(obj, st.session_state.f_parts or None)
    except CatalogError as exc:
        st.error(
            f"The reused parts list cannot be shown ({plain(exc)}); starting from the catalog."
        )
        return table_rows(obj)


# --- a board's panel -------------------------------------------------------------------------


def board_panel(record: GenerationRecord, image: Image.Image, key: str, stem: str) -> None:
    """A board's check, numbered parts list and callout editor (with the parts list's CSV and
    JSON); nothing for other images."""
    try:
        plan = plan_of(record)
    except CatalogError as exc:  # an image made by another version, or edited by hand
        st.warning(f"This image's board plan cannot be read: {plain(exc)}")
        return
    if plan is None:
        return
    _check(record.board)
    st.markdown(f"**Parts list** · {len(plan.parts)} {plain(plan.pieces)}")
    lines = [f"{p.number}. {plain(label(p))}" + (f" :gray[· {plain(p.look)}]" if p.look else "")
             for p in plan.parts]  # fmt: skip
    st.markdown("\n".join(lines))
    st.caption("Callouts from the board's plan: rename, reorder or hide parts in the table.")
    callout_editor(image, board_rows(plan, image), f"board_{key}", stem, CSV_COLUMNS)


def _check(board: dict) -> None:
    check = board["check"]
    if board["accepted"]:
        st.success(
            f"Board check passed: all {check['planned']} parts found where planned "
            f"(layout score {check['score']})."
        )
    else:
        st.warning("Board check failed: " + plain("; ".join(check["problems"])) + ".")
    if not board["unified"]:
        st.caption("No unifying pass was accepted: this is the board as composed.")
