"""Looking at pictures: layout analysis (is it a disassembled layout?), callouts, and the LoRA-off-vs-on evaluation.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "analyze_layout": ".layout",
    "AnalysisConfig": ".layout",
    "LayoutReport": ".layout",
    "describe_report": ".layout",
    "load_image": ".layout",
    "annotate": ".callouts",
    "annotate_file": ".callouts",
    "evaluate": ".evaluation",
    "EvalConfig": ".evaluation",
    "EvalReport": ".evaluation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
