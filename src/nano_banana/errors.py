"""Our exception types.

Every error a user can cause (a bad setting, a bad file, a missing model) is a
``NanoBananaError``; its message names the input and says what to do. The CLI
prints it as one line and exits non-zero, the studio shows it in a panel. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class NanoBananaError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    exit_code = 2


class InvalidSettingError(NanoBananaError, ValueError):
    """A generation or training setting is out of range or malformed."""


class PresetError(NanoBananaError):
    """A scenario preset is unknown or its file is malformed."""


class CatalogError(PresetError):
    """A parts-catalog file, a --parts list or a board plan is malformed, or an object is unknown."""


class UnsafeFileError(NanoBananaError):
    """A model or LoRA file is not a readable safetensors file (pickle, HTML, LFS pointer, truncated)."""


class ModelLoadError(NanoBananaError):
    """The base model or VAE could not be found or loaded."""


class LoraError(NanoBananaError):
    """A LoRA file does not fit the base model, or holds bad values."""


class GenerationError(NanoBananaError):
    """Generation failed for a reason the user can act on (NaN decode, out of memory)."""


class CancelledError(NanoBananaError):
    """A job was cancelled by its caller."""

    exit_code = 130


class GalleryError(NanoBananaError):
    """The gallery could not store, find or remove an image."""


class MetadataError(NanoBananaError):
    """An image carries no (or unreadable) generation settings."""


class ImageAnalysisError(NanoBananaError):
    """An image to analyse or annotate cannot be read, or an annotation would overwrite it."""
