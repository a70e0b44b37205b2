"""Keeping images: the generation record, settings inside PNG files, atomic saving and the SQLite-indexed gallery.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "GenerationRecord": ".record",
    "LoraUse": ".record",
    "read_record": ".png",
    "write_png": ".png",
    "png_bytes": ".png",
    "save_image": ".save",
    "save_sheet": ".save",
    "Gallery": ".store",
    "GalleryEntry": ".store",
    "RepairReport": ".store",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
