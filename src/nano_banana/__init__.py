"""Nano-Banana Studio: exploded views and knolling flat-lays from a text prompt.

SDXL (frozen) plus a structure LoRA, as a library. The CLI, the web studio and
the trainer are thin shells over the public API exported here. The package is
one subpackage per stage of the data flow::

    prompt/     presets and the prompt the text encoders see
    model/      loading the base, the latent convention, tiny models from configs
    lora/       LoRA files: reading, keys, kohya export, attaching
    generate/   the engine, speed, comparison sheets, batches, the job queue
    gallery/    the record of an image, PNG metadata, saving, the gallery index
    training/   the LoRA trainer: config, data, loop, checkpoints, exports
    analysis/   layout analysis, callouts, evaluation
    demo/       the procedural demo world and the build of the demo model
    cli/, studio/   the shells

Names are imported on first use, so ``import nano_banana`` stays cheap.
"""

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "GenerationRequest": ".settings",
    "LoraWeight": ".settings",
    "Sampler": ".settings",
    "NanoBananaError": ".errors",
    "Engine": ".generate",
    "GenerationResult": ".generate",
    "SpeedConfig": ".generate",
    "EngineSpec": ".generate",
    "compare": ".generate",
    "sweep": ".generate",
    "Gallery": ".gallery",
    "GenerationRecord": ".gallery",
    "read_record": ".gallery",
    "load_presets": ".prompt",
    "TrainConfig": ".training",
    "train": ".training",
    "check_dataset": ".training",
    "analyze_layout": ".analysis",
    "annotate": ".analysis",
    "evaluate": ".analysis",
    "EvalConfig": ".analysis",
}
__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
