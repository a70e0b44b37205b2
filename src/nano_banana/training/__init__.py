"""Training a structure LoRA: the config, the data, dataset checks, caches, the loop and its parts
(models, batches, loss, optim, resume, samples), checkpoints, exports and logs."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".config": "TrainConfig ModelConfig DatasetConfig AdapterConfig OptimConfig LossConfig SampleConfig OutputConfig load_config",
        ".check": "check_dataset DatasetReport",
        ".loop": "train TrainResult format_summary",
    },
)
