"""Making images: the engine (built once, called many times) and its spec, its speed options, comparison sheets, remaking a saved image, batches, the job queue and previews.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "Engine": ".engine",
    "GenerationResult": ".engine",
    "ProgressEvent": ".engine",
    "SpeedConfig": ".speed",
    "EngineSpec": ".spec",
    "apply_overrides": ".reproduce",
    "request_from_record": ".reproduce",
    "keep_loaded_loras": ".reproduce",
    "model_differences": ".reproduce",
    "settings_rows": ".reproduce",
    "check_compare": ".sheets",
    "check_sweep": ".sheets",
    "compare": ".sheets",
    "sweep": ".sheets",
    "SheetResult": ".sheets",
    "run_batch": ".batch",
    "read_jobs": ".batch",
    "JobQueue": ".jobs",
    "Job": ".jobs",
    "JobKind": ".jobs",
    "JobStatus": ".jobs",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
