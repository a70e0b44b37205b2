"""The dataset factory: parts-first boards as a training set, and a structure LoRA from them."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".captions": "CAPTION_STYLES caption",
        ".dataset": "SynthConfig SynthReport synth_dataset",
    },
)
