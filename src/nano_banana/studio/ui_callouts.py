"""The callout editor: the parts in a table (shown or not, order, name) whose edits redraw the
numbered callouts, with the parts list as CSV and JSON and the drawing as PNG.

The rows come from a board's plan (``parts.labels.board_rows``) or from the parts
the layout analysis found (``analysis.callouts.detected_rows``); drawing and
exporting are ``analysis.callouts``'s. This module only shows the table and reads
it back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd
import streamlit as st
from PIL import Image

from ..analysis.callouts import (
    EXPORT_COLUMNS,
    Annotation,
    CalloutRow,
    annotate_rows,
    callouts_csv,
    callouts_json,
)
from ..errors import ImageAnalysisError
from .ui_common import plain, png_data

DRAWINGS_KEPT = 8  # callout drawings a session keeps, so a rerun does not draw them again


def callout_editor(
    image: Image.Image,
    rows: Sequence[CalloutRow],
    key: str,
    stem: str,
    columns: Sequence[str] = EXPORT_COLUMNS,
) -> None:
    """The table of ``rows``, the callouts drawn as it says, and the downloads."""
    with st.container(key=f"callout_editor_{key}"):  # one box: a browser test shoots it
        _editor(image, rows, key, stem, columns)


def _editor(
    image: Image.Image, rows: Sequence[CalloutRow], key: str, stem: str, columns: Sequence[str]
) -> None:
    edited = st.data_editor(
        _table(rows),
        key=f"callout_table_{key}",
        hide_index=True,
        num_rows="fixed",  # the parts are the image's: rename, reorder or hide them
        width="stretch",
        disabled=["note"],
        column_order=("show", "order", "name", "note"),
        column_config={
            "show": st.column_config.CheckboxColumn(
                "Show", width="small", help="Untick what is not a part"
            ),
            "order": st.column_config.NumberColumn(
                "Order",
                min_value=1,
                step=1,
                format="%d",
                width="small",
                help="Callouts are numbered by this; equal values keep the table's order",
            ),
            "name": st.column_config.TextColumn(
                "Name", width="medium", help="What the part is called"
            ),
            "note": st.column_config.TextColumn("Note", width="large"),
        },  # fmt: skip
    )
    try:
        rows = edited_rows(rows, edited.to_dict("records"))
        drawn = _drawing(image, rows, key)
    except ImageAnalysisError as exc:  # a shown row without a name
        st.error(plain(exc))
        return
    st.image(drawn.image, caption=f"{len(drawn.callouts)} numbered parts", width="stretch")
    _downloads(rows, drawn, key, stem, columns)


def edited_rows(rows: Sequence[CalloutRow], records: list[dict]) -> list[CalloutRow]:
    """``rows`` as the table's ``records`` now say: a blank order keeps the row's own, a blank
    name stays blank (``numbered`` then says which row needs one)."""
    out = []
    for row, record in zip(rows, records, strict=True):
        order = record.get("order")
        blank = order is None or (isinstance(order, float) and math.isnan(order))
        name = record.get("name")
        out.append(replace(
            row,
            show=bool(record.get("show")),
            order=row.order if blank else int(order),
            name="" if name is None or name != name else str(name),  # None or NaN: blank
        ))  # fmt: skip
    return out


def _table(rows: Sequence[CalloutRow]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "show": pd.Series([r.show for r in rows], dtype="bool"),
            "order": pd.Series([r.order for r in rows], dtype="int64"),
            "name": pd.Series([r.name for r in rows], dtype="object"),
            "note": pd.Series([r.note for r in rows], dtype="object"),
        }
    )


def _drawing(image: Image.Image, rows: list[CalloutRow], key: str) -> Annotation:
    """The callouts for the table as edited, drawn once per edit (not on every rerun)."""
    drawn: dict = st.session_state.setdefault("callout_drawings", {})
    signature = (key, tuple((r.show, r.order, r.name) for r in rows))
    if signature not in drawn:
        annotation = annotate_rows(image, rows)  # raises before anything is dropped
        while len(drawn) >= DRAWINGS_KEPT:
            drawn.pop(next(iter(drawn)))
        drawn[signature] = annotation
    return drawn[signature]


def _downloads(rows, drawn: Annotation, key: str, stem: str, columns) -> None:
    downloads = (
        ("Download parts list (CSV)", lambda: callouts_csv(rows, columns), "_parts.csv",
         "text/csv", ":material/table:"),
        ("Download parts list (JSON)", lambda: callouts_json(rows, columns), "_parts.json",
         "application/json", ":material/data_object:"),
        ("Download callouts PNG", lambda: png_data(drawn.image), "_annotated.png", "image/png",
         ":material/download:"),
    )  # fmt: skip
    for column, (text, data, suffix, mime, icon) in zip(st.columns(3), downloads, strict=True):
        column.download_button(text, data, file_name=stem + suffix, mime=mime, icon=icon,
                               key=f"callouts{suffix}_{key}", on_click="ignore")  # fmt: skip
