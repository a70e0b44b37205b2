"""Looking at pictures: layout analysis (is it a disassembled layout?), callouts, and the LoRA-off-vs-on evaluation."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".layout": "analyze_layout AnalysisConfig LayoutReport describe_report load_image",
        ".callouts": "annotate annotate_file",
        ".evaluation": "evaluate EvalConfig EvalReport",
    },
)
