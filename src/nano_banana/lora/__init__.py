"""LoRA files: safe reading, key formats, kohya export, attaching to the base model by name, fusing.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "LoraFile": ".load",
    "read_lora": ".load",
    "attach_lora": ".load",
    "detach_lora": ".load",
    "export_kohya": ".load",
    "add_lora_metadata": ".load",
    "LoraFuser": ".fuse",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
