"""Making images: the engine (built once, called many times), its speed options, comparison sheets, batches, the job queue and previews.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "Engine": ".engine",
    "GenerationResult": ".engine",
    "ProgressEvent": ".engine",
    "SpeedConfig": ".speed",
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
