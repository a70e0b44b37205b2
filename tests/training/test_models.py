"""The trainer's base model: loaded straight in the training dtype, the VAE in fp32."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from nano_banana.training.config import ModelConfig, Precision
from nano_banana.training.models import load_models, weight_dtype_for


@pytest.mark.parametrize(
    ("precision", "want"), [(Precision.BF16, torch.bfloat16), (Precision.NO, torch.float32)]
)
def test_the_base_loads_in_the_training_dtype_and_the_vae_in_fp32(
    tiny_sdxl_dir, monkeypatch, precision, want
):
    """Loaded as ``want``, not loaded in fp32 and cast: host memory peaks near ``want``'s size."""
    asked = []
    real = StableDiffusionXLPipeline.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        asked.append(kwargs["torch_dtype"])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionXLPipeline, "from_pretrained", classmethod(recording))
    cpu = torch.device("cpu")
    dtype, _ = weight_dtype_for(precision, cpu)
    models = load_models(ModelConfig(base=str(tiny_sdxl_dir), precision=precision), cpu, dtype)
    assert asked == [{"default": want, "vae": torch.float32} if want != torch.float32 else want]
    for module in (models.unet, *models.text_encoders):
        assert {p.dtype for p in module.parameters()} == {want}
    assert {p.dtype for p in models.vae.parameters()} == {torch.float32}
