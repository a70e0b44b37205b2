"""The engine's speed options as one typed config (applied by ``speed.SpeedState``).

Kept apart from ``speed.py`` so that reading and checking the options imports no torch:
``EngineSpec`` carries one, and the shells build their options from ``EngineSpec``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import InvalidSettingError

HALF_CHOICES = ("auto", "off", "bfloat16", "float16")
CHANNELS_LAST_CHOICES = ("auto", "on", "off")
COMPILE_CHOICES = ("off", "unet", "regional")
VAE_DTYPE_CHOICES = ("auto", "as-loaded", "bfloat16", "float32")


@dataclass(frozen=True)
class SpeedConfig:
    """How the engine runs a job fast. Defaults are the measured winners (benchmarks/RESULTS.md)."""

    # Fold the job's LoRAs into the base weights. PEFT's unfused layers cost two extra
    # small matmuls per adapted layer per step: +5-9% per image on the CPU demo model,
    # +14.5% measured publicly on a GPU (diffusers PR 4473). Re-folding costs one
    # B@A per adapted layer, only when the adapter state changes.
    fuse_lora: bool = True
    # Prompt embeddings kept for this many (prompt, negative, LoRA) combinations;
    # 0 = off. Plain diffusers runs both text encoders for every image.
    prompt_cache: int = 32
    # UNet precision. "auto" keeps the dtype the model was loaded in: fp16 on a GPU,
    # fp32 on the CPU, as the device policy promises (model.pick_dtype). "bfloat16" on a
    # CPU with native bf16 (AVX512-BF16/AMX) is a further 1.25x on the demo model, but
    # images then differ from fp32 at part edges (PSNR ~35 dB), so it is opt-in.
    half_precision: str = "auto"
    # Channels-last memory format for the UNet's convolutions. "auto": on for CUDA
    # (tensor-core convs want NHWC); off on the CPU, where it measured no clear win
    # together with bf16.
    channels_last: str = "auto"
    # torch.compile: "off", "unet" (the whole UNet) or "regional" (each repeated
    # transformer block; much shorter warm-up). Off by default: on the CPU the warm-up
    # (~80 s for the demo UNet) is never paid back; on a GPU turn it on for a server.
    compile: str = "off"
    # torch.compile mode: None (default), "max-autotune-no-cudagraphs", or
    # "reduce-overhead" (CUDA graphs; GPU only, untested here).
    compile_mode: str | None = None
    # VAE decode precision. "auto": bfloat16 on CUDA when the VAE is fp16 and asks to be
    # upcast (SDXL's overflows in fp16, but bf16 has fp32's range at half the cost);
    # otherwise as the engine does it. The engine still retries in fp32 on NaN.
    vae_decode_dtype: str = "auto"
    # Run the denoising loop under torch.inference_mode (no autograd bookkeeping at all).
    inference_mode: bool = True
    # CPU threads for torch's operators. 0 = "auto": one thread for small UNets (under
    # SMALL_UNET_PARAMS), whose operators are too small to split across cores; torch's own
    # choice for big ones. Measured on the 2-core machine with the demo model while the other
    # core was busy: 0.86 s/image with 1 thread, 55-89 s with 2 (OpenMP threads spin-waiting
    # on a taken core). -1 leaves torch's setting alone.
    cpu_threads: int = 0

    def __post_init__(self) -> None:
        _check_choice("half_precision", self.half_precision, HALF_CHOICES)
        if isinstance(self.cpu_threads, bool) or not isinstance(self.cpu_threads, int):
            raise InvalidSettingError(
                f"cpu_threads must be a whole number, got {self.cpu_threads!r}"
            )
        _check_choice("channels_last", self.channels_last, CHANNELS_LAST_CHOICES)
        _check_choice("compile", self.compile, COMPILE_CHOICES)
        _check_choice("vae_decode_dtype", self.vae_decode_dtype, VAE_DTYPE_CHOICES)
        if not isinstance(self.prompt_cache, int) or self.prompt_cache < 0:
            raise InvalidSettingError(
                f"prompt_cache must be a whole number >= 0, got {self.prompt_cache!r}"
            )
        modes = (None, "default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")
        _check_choice("compile_mode", self.compile_mode, modes)

    @classmethod
    def reference(cls) -> SpeedConfig:
        """Everything off: the engine runs the pipeline as plain diffusers would."""
        return cls(
            fuse_lora=False,
            prompt_cache=0,
            half_precision="off",
            channels_last="off",
            compile="off",
            vae_decode_dtype="as-loaded",
            inference_mode=False,
            cpu_threads=-1,
        )

    def respecting_dtype(self, requested: str) -> SpeedConfig:
        """An explicit ``--dtype`` wins over automatic half precision."""
        if requested != "auto" and self.half_precision == "auto":
            return replace(self, half_precision="off")
        return self

    def respecting_offload(self, offload: str) -> SpeedConfig:
        """Sequential offload keeps the weights in host memory and streams them to the GPU
        layer by layer (the modules hold empty "meta" tensors), so nothing that rewrites
        weights in place can run: no folding of LoRAs, no recast, no memory-format change."""
        if offload != "sequential":
            return self
        return replace(self, fuse_lora=False, half_precision="off", channels_last="off")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        shown = ", ".join(str(c) for c in choices)
        raise InvalidSettingError(f"speed setting {name} must be one of {shown}; got {value!r}")
