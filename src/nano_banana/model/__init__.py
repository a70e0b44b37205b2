"""The base model: loading SDXL safely, the one latent scaling convention, and tiny SDXL-architecture models built from configs.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "BaseSpec": ".load",
    "LoadedBase": ".load",
    "load_base": ".load",
    "load_vae": ".load",
    "pick_device": ".load",
    "pick_dtype": ".load",
    "SDXL_REPO": ".load",
    "scale_latents": ".latents",
    "unscale_latents": ".latents",
    "TinySDXLConfig": ".tiny",
    "build_pipeline": ".tiny",
    "save_tiny_pipeline": ".tiny",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
