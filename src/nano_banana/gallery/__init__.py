"""Keeping images: the generation record, settings inside PNG files, atomic saving and the SQLite-indexed gallery."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".record": "GenerationRecord LoraUse",
        ".png": "read_record write_png png_bytes",
        ".save": "save_image save_sheet",
        ".store": "Gallery GalleryEntry RepairReport",
    },
)
