"""Result tools, the same for a Create page result and a gallery image: "Analyze layout"
(score, verdict, parts that may be merged) and "Add callouts" (the callout editor,
``ui_callouts``, on the parts found); a comparison also gets a before/after slider.

A parts-first board's callouts come from its plan, never from guessing: they are
edited in the board's panel (``ui_board``), so here the board gets no second editor.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image

from ..errors import CatalogError, NanoBananaError
from ..generate.jobs import Job, JobImage, JobKind
from ..generate.sheets import before_after
from .ui_common import plain

try:  # the demo world's analysis; the studio works without it
    from ..analysis.callouts import detected_rows
    from ..analysis.layout import analyze_layout, describe_report
    from ..parts.labels import plan_of
    from .ui_callouts import callout_editor
except ImportError:  # pragma: no cover - only in trimmed installs
    analyze_layout = None

_HEADLINE = ("verdict", "layout score")  # shown above the other measures
SPLIT_START = 50  # the before/after slider starts in the middle: half of each image


def render_tools(job: Job, images: tuple[JobImage, ...]) -> None:
    """The before/after slider of a comparison, then the layout tools for one of its images."""
    if job.kind is JobKind.COMPARE and len(images) >= 2:
        compare_slider(job.id, images[0], images[1])
    if analyze_layout is None:
        return
    st.markdown("**Layout tools**")
    index = 0
    if len(images) > 1:
        index = st.selectbox(
            "Image",
            range(len(images)),
            key=f"tool_image_{job.id}",
            format_func=lambda i: images[i].label,
        )
    image = images[index]
    stem = image.entry.path.stem if image.entry else f"nano-banana-{job.id}-{index}"
    image_tools(image.result.image, image.result.record, f"{job.id}_{index}", stem)


def compare_slider(key: str, before: JobImage, after: JobImage) -> None:
    """Base and base + LoRA over one another, split where the slider is (drawn server-side:
    ``generate.sheets.before_after``)."""
    with st.container(key=f"compare_view_{key}"):  # one box: a browser test shoots it
        _compare_view(key, before, after)


def _compare_view(key: str, before: JobImage, after: JobImage) -> None:
    st.markdown("**Before / after**")
    split = st.slider(
        "Before / after split",
        min_value=0,
        max_value=100,
        value=SPLIT_START,
        format="%d%%",
        key=f"split_{key}",
        label_visibility="collapsed",
        help="Left of the line: the base model; right of it: base + LoRA (same seed).",
    )
    labels = (before.label, after.label)
    view = before_after(before.result.image, after.result.image, split / 100, labels)
    # Not the labels themselves: they caption the side-by-side images already.
    caption = "Drag the slider: the base model left of the line, with the LoRA right of it"
    st.image(view, caption=caption, width="stretch")


def image_tools(image: Image.Image, record, key: str, stem: str) -> None:
    """ "Analyze layout" and, for an image without a board plan, "Add callouts" (the parts
    found, named "part N" until renamed). ``record`` may be None (unreadable metadata)."""
    if analyze_layout is None:
        return
    try:
        plan = plan_of(record)
    except CatalogError:  # unreadable plan: the board panel says so; number the pixels' parts
        plan = None
    c1, c2 = st.columns(2)
    if c1.button("Analyze layout", key=f"analyze_{key}", width="stretch"):
        _run(key, "analysis", lambda: analyze_layout(image))
    if plan is None:
        if c2.button("Add callouts", key=f"callouts_{key}", width="stretch"):
            _run(key, "callouts", lambda: detected_rows(analyze_layout(image)))
    else:
        c2.caption("This board's callouts come from its plan: edit them in its parts list.")
    _show_analysis(st.session_state.get(f"result_analysis_{key}"))
    rows = st.session_state.get(f"result_callouts_{key}")
    if isinstance(rows, Exception):
        st.error(f"Callouts failed: {plain(rows)}")
    elif rows is not None and plan is None:
        st.caption("Parts found in the image, numbered in reading order: name, reorder or "
                   "untick them; the callouts follow the table.")  # fmt: skip
        callout_editor(image, rows, key, stem)


def _run(key: str, what: str, work) -> None:
    try:
        st.session_state[f"result_{what}_{key}"] = work()
    except NanoBananaError as exc:
        st.session_state[f"result_{what}_{key}"] = exc


def _show_analysis(report) -> None:
    if report is None:
        return
    if isinstance(report, Exception):
        st.error(f"Analysis failed: {plain(report)}")
        return
    verdict = ":green[yes]" if report.verdict else ":red[no]"
    st.markdown(f"**Layout score {report.score} / 100** · disassembled layout: {verdict}")
    measures = describe_report(report, no_arrangement="no clear arrangement")
    shown = [f"{name}: {value}" for name, value in measures.items() if name not in _HEADLINE]
    st.caption(" · ".join(shown))
    merged = {m.text for m in report.merged}
    for reason in report.reasons:
        if reason in merged:  # a doubt the user can check by eye: said louder
            st.warning(f"{plain(reason)}: the score counts it as parts not seen apart.")
        else:
            st.caption(f"– {plain(reason)}")
