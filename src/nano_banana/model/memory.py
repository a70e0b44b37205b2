"""Small GPUs: where the base model's weights live while it runs, and how the VAE decodes.

``--offload`` and ``--vae-tiling`` choose diffusers' own memory savers
(``enable_model_cpu_offload``, ``enable_sequential_cpu_offload``,
``vae.enable_tiling``); ``auto`` picks them from the GPU's free memory and the
loaded model's size. ``oom_advice`` names the next saver to try after a CUDA
out-of-memory error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidSettingError, ModelLoadError

# torch is imported where a pipeline is measured or a GPU asked: ``check_memory_options``
# runs when the shells build their options (``generate.spec``), before torch is needed.
if TYPE_CHECKING:
    import torch

OFFLOAD_CHOICES = ("auto", "none", "model", "sequential")
VAE_TILING_CHOICES = ("auto", "on", "off")
GIB = 1024**3
# What a job needs beyond the weights when everything stays on the GPU: the UNet's
# activations for the guidance batch of two at 1024x1024 (~1.5 GiB with SDPA) and the
# full-image VAE decode (~3 GiB), plus slack for the allocator. SDXL's weights are
# 6.5 GiB in fp16 (3.47 billion parameters), so below ~11.5 GiB free it offloads:
# the usual "under 12 GB" advice for SDXL.
FULL_RUN_WORKSPACE_GIB = 5.0
# Model offload holds one model at a time on the GPU, the largest being the UNet; it then
# needs the UNet's activations only (the decode is tiled). SDXL's UNet is 4.8 GiB in fp16,
# so below ~5.8 GiB free it streams layer by layer: the usual "under 6 GB" advice.
MODEL_OFFLOAD_WORKSPACE_GIB = 1.0


def check_memory_options(offload: str, vae_tiling: str) -> None:
    """Refuse unknown ``--offload`` / ``--vae-tiling`` values before anything loads."""
    if offload not in OFFLOAD_CHOICES:
        raise InvalidSettingError(
            f"--offload must be one of {', '.join(OFFLOAD_CHOICES)}; got {offload!r}"
        )
    if vae_tiling not in VAE_TILING_CHOICES:
        raise InvalidSettingError(
            f"--vae-tiling must be one of {', '.join(VAE_TILING_CHOICES)}; got {vae_tiling!r}"
        )


@dataclass(frozen=True)
class MemoryPlan:
    """How one loaded pipeline is placed: resolved, never ``auto``."""

    offload: str = "none"  # none | model | sequential
    vae_tiling: bool = False
    free_gib: float | None = None  # the GPU's free memory when ``auto`` decided; None: not asked

    @property
    def offloaded(self) -> bool:
        return self.offload != "none"


@dataclass(frozen=True)
class WeightSizes:
    """Bytes of the pipeline's weights: all of them, and the largest model (the UNet)."""

    total: int
    largest: int

    @classmethod
    def of(cls, pipe) -> WeightSizes:
        import torch  # deferred: see the note on the imports

        sizes = [
            sum(p.numel() * p.element_size() for p in module.parameters())
            for module in pipe.components.values()
            if isinstance(module, torch.nn.Module)
        ]
        return cls(sum(sizes), max(sizes, default=0))


def plan_memory(
    device: torch.device,
    offload: str,
    vae_tiling: str,
    sizes: WeightSizes,
    free_bytes: int | None = None,
) -> MemoryPlan:
    """Resolve ``auto`` for this device: on CUDA from ``free_bytes`` (asked of the GPU when
    None), elsewhere nothing. An explicit offload on the CPU is refused: the weights already
    live in host memory there."""
    check_memory_options(offload, vae_tiling)
    if device.type == "cpu" and offload in ("model", "sequential"):
        raise ModelLoadError(
            f"--offload {offload} moves weights between host memory and a GPU; "
            "on the CPU there is nothing to offload (use --offload none)"
        )
    free = None
    if device.type == "cuda" and "auto" in (offload, vae_tiling):
        import torch  # deferred: see the note on the imports

        free = free_bytes if free_bytes is not None else torch.cuda.mem_get_info(device)[0]
    fits_whole = free is None or free >= sizes.total + FULL_RUN_WORKSPACE_GIB * GIB
    if offload == "auto":
        offload = _auto_offload(free, sizes) if free is not None else "none"
    tiling = not fits_whole if vae_tiling == "auto" else vae_tiling == "on"
    return MemoryPlan(offload, tiling, None if free is None else round(free / GIB, 1))


def _auto_offload(free: int, sizes: WeightSizes) -> str:
    if free >= sizes.total + FULL_RUN_WORKSPACE_GIB * GIB:
        return "none"
    if free >= sizes.largest + MODEL_OFFLOAD_WORKSPACE_GIB * GIB:
        return "model"
    return "sequential"


def place_pipeline(pipe, plan: MemoryPlan, device: torch.device) -> None:
    """Put ``pipe`` on ``device`` as ``plan`` says, through diffusers' own offload hooks."""
    if plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    if plan.vae_tiling:
        pipe.vae.enable_tiling()


def oom_advice(plan: MemoryPlan, vae: bool) -> str:
    """The memory savers not yet on, in the order to try them (tiling first when the VAE ran
    out, offloading first when the UNet did)."""
    offloads = {
        "none": ["--offload model", "--offload sequential"],
        "model": ["--offload sequential"],
    }
    steps = list(offloads.get(plan.offload, []))
    if not plan.vae_tiling:
        steps.insert(0 if vae else len(steps), "--vae-tiling on")
    steps.append("a smaller --width/--height")
    return "try " + ", then ".join(steps)
