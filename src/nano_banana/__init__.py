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

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".settings": "GenerationRequest LoraWeight Sampler",
        ".errors": "NanoBananaError",
        ".generate": "Engine GenerationResult SpeedConfig EngineSpec compare sweep",
        ".gallery": "Gallery GenerationRecord read_record",
        ".prompt": "load_presets",
        ".training": "TrainConfig train check_dataset",
        ".analysis": "analyze_layout annotate evaluate EvalConfig",
    },
)
