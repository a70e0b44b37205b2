"""Training a structure LoRA: the config, the data, dataset checks, caches, the loop and its parts
(models, batches, loss, optim, resume, samples), checkpoints, exports and logs.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": ".config",
    "ModelConfig": ".config",
    "DatasetConfig": ".config",
    "AdapterConfig": ".config",
    "OptimConfig": ".config",
    "LossConfig": ".config",
    "SampleConfig": ".config",
    "OutputConfig": ".config",
    "load_config": ".config",
    "check_dataset": ".check",
    "DatasetReport": ".check",
    "train": ".loop",
    "TrainResult": ".loop",
    "format_summary": ".loop",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
