"""Result tools: layout analysis (score and verdict) and numbered callouts, from ``analysis``;
a parts-first board's callouts come from its plan (``parts.labels``), never from guessing."""

from __future__ import annotations

import streamlit as st

from ..errors import CatalogError, NanoBananaError
from ..generate.jobs import Job, JobImage
from .ui_common import png_data

try:  # the demo world's analysis; the studio works without it
    from ..analysis.callouts import annotate, parse_part_names
    from ..analysis.layout import analyze_layout, describe_report
    from ..parts.labels import image_callouts, plan_of
except ImportError:  # pragma: no cover - only in trimmed installs
    analyze_layout = None

_HEADLINE = ("verdict", "layout score")  # shown above the other measures


def render_tools(job: Job, images: tuple[JobImage, ...]) -> None:
    """ "Analyze layout" and "Add callouts" for one image of the job."""
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
    key = f"{job.id}_{index}"
    record = image.result.record
    names = None
    try:
        plan = plan_of(record)
    except CatalogError:  # unreadable plan: number the parts found in the pixels instead
        plan = None
    if plan is None:
        names = st.text_input(
            "Part names for callouts (optional)",
            key=f"names_{key}",
            placeholder="strap, case, crown …",
        )
    else:
        st.caption("Callouts name and number the parts from the board's plan.")
    c1, c2 = st.columns(2)
    if c1.button("Analyze layout", key=f"analyze_{key}", width="stretch"):
        _run(key, "analysis", lambda: analyze_layout(image.result.image))
    if c2.button("Add callouts", key=f"callouts_{key}", width="stretch"):
        _run(key, "callouts", lambda: _callouts(image.result.image, record, names))
    _show_analysis(st.session_state.get(f"result_analysis_{key}"))
    _show_callouts(st.session_state.get(f"result_callouts_{key}"), key)


def _callouts(image, record, names: str | None):
    """A board's callouts from its plan; another image's from the parts found, named as given."""
    if names is None:
        return image_callouts(image, record)
    return annotate(image, parse_part_names(names))


def _run(key: str, what: str, work) -> None:
    try:
        st.session_state[f"result_{what}_{key}"] = work()
    except NanoBananaError as exc:
        st.session_state[f"result_{what}_{key}"] = exc


def _show_analysis(report) -> None:
    if report is None:
        return
    if isinstance(report, Exception):
        st.error(f"Analysis failed: {report}")
        return
    verdict = ":green[yes]" if report.verdict else ":red[no]"
    st.markdown(f"**Layout score {report.score} / 100** · disassembled layout: {verdict}")
    measures = describe_report(report, no_arrangement="no clear arrangement")
    shown = [f"{name}: {value}" for name, value in measures.items() if name not in _HEADLINE]
    st.caption(" · ".join(shown))
    for reason in report.reasons:
        st.caption(f"– {reason}")


def _show_callouts(annotation, key: str) -> None:
    if annotation is None:
        return
    if isinstance(annotation, Exception):
        st.error(f"Callouts failed: {annotation}")
        return
    st.image(
        annotation.image, caption=f"{len(annotation.callouts)} numbered parts", width="stretch"
    )
    for warning in annotation.warnings:
        st.warning(warning)
    st.download_button(
        "Download annotated PNG",
        png_data(annotation.image),
        file_name="annotated.png",
        mime="image/png",
        key=f"dl_callouts_{key}",
        on_click="ignore",
        icon=":material/download:",
    )
