"""LoRA files: safe reading, key formats, kohya export, attaching to the base model by name, fusing."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".load": "LoraFile read_lora attach_lora detach_lora export_kohya add_lora_metadata",
        ".fuse": "LoraFuser",
    },
)
