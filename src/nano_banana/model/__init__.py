"""The base model: loading SDXL safely, placing it on small GPUs, the one latent scaling
convention, and tiny SDXL-architecture models built from configs."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".load": "BaseSpec LoadedBase load_base load_vae pick_device pick_dtype SDXL_REPO",
        ".latents": "scale_latents unscale_latents LATENT_CONVENTION",
        ".memory": "MemoryPlan plan_memory place_pipeline",
        ".tiny": "TinySDXLConfig build_pipeline save_tiny_pipeline",
    },
)
