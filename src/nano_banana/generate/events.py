"""What a generation reports and returns, importable without torch.

A client of ``nano-banana serve`` receives these from the server; keeping them out
of ``engine`` lets it do so without loading torch and diffusers (seconds it would
otherwise spend before its first byte).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..gallery.record import GenerationRecord
from ..prompt.plan import PromptPlan

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ProgressEvent:
    """One finished denoising step, as reported to a progress callback."""

    step: int  # 1-based
    total: int
    elapsed_s: float
    latents: torch.Tensor | None = field(default=None, repr=False)  # for previews; do not keep

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / self.step * (self.total - self.step) if self.step else 0.0


ProgressCallback = Callable[[ProgressEvent], Any]


@dataclass
class GenerationResult:
    image: Image.Image
    record: GenerationRecord
    plan: PromptPlan
