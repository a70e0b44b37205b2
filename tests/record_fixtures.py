"""A plain generation record for gallery and metadata tests (no model involved)."""

from __future__ import annotations

from nano_banana.gallery.record import GenerationRecord, LoraUse
from nano_banana.settings import GenerationRequest

SDXL_LORA = LoraUse("knolling", "knolling.safetensors", "ab" * 32, 1.0, 0.8)


def make_record(
    prompt: str = "a mechanical watch",
    seed: int = 7,
    preset: str = "knolling",
    base_model: str = "tiny-sdxl",
    loras: tuple[LoraUse, ...] = (),
) -> GenerationRecord:
    """The record of a 1024 x 1024 image of ``prompt`` with a validated request."""
    request = (
        GenerationRequest(prompt=prompt, seed=seed, preset=preset).sized(1024, 1024).validated()
    )
    return GenerationRecord(
        request=request,
        prompt_used=f"{preset}, {prompt}",
        negative_used="blurry",
        prompt_tokens=5,
        prompt_truncated=False,
        base_model=base_model,
        loras=loras,
    )
