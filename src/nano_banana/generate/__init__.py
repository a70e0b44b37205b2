"""Making images: the engine (built once, called many times) and its spec, its speed options, comparison sheets, remaking a saved image, batches, the job queue and previews."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".engine": "Engine GenerationResult ProgressEvent",
        ".speed_config": "SpeedConfig",
        ".spec": "EngineSpec",
        ".reproduce": "apply_overrides request_from_record keep_loaded_loras model_differences settings_rows",
        ".sheets": "check_compare check_sweep compare sweep SheetResult",
        ".batch": "run_batch read_jobs",
        ".jobs": "JobQueue Job JobKind JobStatus",
    },
)
