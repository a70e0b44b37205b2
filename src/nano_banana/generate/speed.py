"""Speed: the state that applies the engine's optimizations to a pipeline.

``SpeedConfig`` (``speed_config.py``, kept free of torch for the shells' options)
names every knob with the reason for its default (each default is what won in
``benchmarks/bench_generate.py``; see ``benchmarks/RESULTS.md``). ``SpeedState`` applies it to one pipeline and is driven by the engine, always
under the engine's lock:

* ``set_adapters(weights)`` at the start of every job: the active LoRAs are
  folded into the base weights at exactly this job's strengths by
  ``lora.fuse.LoraFuser`` (recomputed from a pristine copy, PEFT's wrapper
  layers out of the module tree), so a LoRA costs nothing per step. All LoRAs
  off gives the base weights back bit for bit. Re-folding happens only when the
  adapter state changes.
* ``prompt_kwargs(...)``: prompt embeddings from a small LRU cache (the text
  encoders run once per distinct prompt, not once per image).
* ``before_lora_change()`` before a LoRA is attached or detached: PEFT's wrappers
  and the pristine weights go back, so PEFT and diffusers see an unfused model.
* at construction: half precision for the UNet (inputs cast in, outputs cast
  out, so the scheduler and the latents stay in the pipeline's own precision),
  channels-last, ``torch.compile`` (whole UNet or its repeated blocks).

``SpeedConfig.reference()`` switches everything off: the engine then behaves as
plain diffusers does (unfused PEFT LoRA, text encoders every call).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from typing import Any

import torch

from ..lora import load as lora_lib
from ..lora.fuse import LoraFuser
from ..lora.keys import TEXT_COMPONENTS
from .speed_config import SpeedConfig


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 or AMX); emulated bf16 is slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# --- resolving "auto" ------------------------------------------------------------------


def resolve_half(config: SpeedConfig, device: torch.device, loaded: torch.dtype) -> torch.dtype:
    """The UNet's dtype under ``config`` on ``device`` (``loaded``: the pipeline's dtype)."""
    choice = config.half_precision
    if choice in ("off", "auto"):  # "auto" keeps the loaded dtype too (see SpeedConfig)
        return loaded
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}[choice]


SMALL_UNET_PARAMS = 100_000_000  # the demo UNet has a few million; SDXL's has 2.6 billion


def resolve_cpu_threads(config: SpeedConfig, unet: torch.nn.Module) -> int:
    """Threads to set for a CPU UNet under ``config``; 0 means leave torch's setting."""
    if config.cpu_threads > 0:
        return config.cpu_threads
    if config.cpu_threads < 0:
        return 0
    params = sum(p.numel() for p in unet.parameters())
    return 1 if params < SMALL_UNET_PARAMS else 0


def resolve_channels_last(config: SpeedConfig, device: torch.device) -> bool:
    if config.channels_last == "auto":
        return device.type == "cuda"
    return config.channels_last == "on"


def resolve_vae_dtype(
    config: SpeedConfig, vae: torch.nn.Module, device: torch.device | None = None
) -> torch.dtype | None:
    """The dtype to try the VAE decode in first, or None for the engine's own choice
    (``device``: where the decode runs, when not where the VAE's weights rest)."""
    choice = config.vae_decode_dtype
    if choice == "as-loaded":
        return None
    if choice == "auto":
        upcast = getattr(vae.config, "force_upcast", False)
        on_cuda = (device or vae.device).type == "cuda"
        if on_cuda and vae.dtype == torch.float16 and upcast:
            return torch.bfloat16
        return None
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[choice]


# --- the state on one pipeline ------------------------------------------------------------


class SpeedState:
    """Applies a ``SpeedConfig`` to one pipeline; the engine calls it under its lock."""

    def __init__(self, pipe: Any, config: SpeedConfig | None = None):
        self.pipe = pipe
        self.config = config or SpeedConfig()
        self.fuser = LoraFuser(pipe) if self.config.fuse_lora else None
        self.prompts = PromptCache(self.config.prompt_cache)
        self.timings: dict[str, float] = {}  # last adapter switch and prompt encode, seconds
        self._prepare_unet()

    # --- once, at construction ---------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the pipeline computes: the GPU also when its weights rest offloaded on the CPU."""
        return self.pipe._execution_device

    def _prepare_unet(self) -> None:
        unet = self.pipe.unet
        device, loaded = self.device, unet.dtype
        half = resolve_half(self.config, device, loaded)
        if half != loaded:
            unet.to(half)
            cast_unet_io(unet, half, loaded)
        if resolve_channels_last(self.config, device):
            unet.to(memory_format=torch.channels_last)
        threads = resolve_cpu_threads(self.config, unet)
        if device.type == "cpu" and threads:
            torch.set_num_threads(threads)  # process-wide: the engine owns the CPU it runs on
        if self.config.compile == "unet":
            unet.compile(mode=self.config.compile_mode)
        elif self.config.compile == "regional":
            unet.compile_repeated_blocks(mode=self.config.compile_mode)

    # --- per job -----------------------------------------------------------------------

    def set_adapters(self, weights: dict[str, float]) -> None:
        """Make exactly ``weights`` the active LoRAs for the next job (fused when configured)."""
        started = time.perf_counter()
        if self.fuser is None:
            lora_lib.apply_adapter_state(self.pipe, weights)
        else:
            self.fuser.apply(weights)
        self.timings["adapter_switch_s"] = time.perf_counter() - started

    def before_lora_change(self) -> None:
        """Before attaching/detaching a LoRA: give PEFT back an unfused model."""
        if self.fuser is not None:
            self.fuser.restore()
        self.prompts.clear()

    def prompt_kwargs(
        self, prompt: str, negative: str, cfg: float, weights: dict[str, float]
    ) -> dict[str, Any]:
        """Keyword arguments for the pipeline call: cached embeddings, or the prompts themselves."""
        if self.config.prompt_cache == 0:
            return {"prompt": prompt, "negative_prompt": negative}
        do_cfg = cfg > 1.0 and self.pipe.unet.config.time_cond_proj_dim is None
        text_loras = tuple(
            sorted((n, w) for n, w in weights.items() if w and self._touches_text(n))
        )
        key = (prompt, negative, do_cfg, text_loras)
        cached = self.prompts.get(key)
        if cached is None:
            started = time.perf_counter()
            with torch.no_grad():
                cached = self.pipe.encode_prompt(
                    prompt=prompt,
                    device=self.device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=do_cfg,
                    negative_prompt=negative,
                )
            self.timings["prompt_encode_s"] = time.perf_counter() - started
            self.prompts.put(key, cached)
        embeds, negative_embeds, pooled, negative_pooled = cached
        return {
            "prompt_embeds": embeds,
            "negative_prompt_embeds": negative_embeds,
            "pooled_prompt_embeds": pooled,
            "negative_pooled_prompt_embeds": negative_pooled,
        }

    def _touches_text(self, adapter: str) -> bool:
        for component in TEXT_COMPONENTS:
            module = getattr(self.pipe, component, None)
            config = getattr(module, "peft_config", None) or {}
            if adapter in config:
                return True
        return False

    def denoise_context(self) -> contextlib.AbstractContextManager:
        return torch.inference_mode() if self.config.inference_mode else contextlib.nullcontext()

    def vae_first_dtype(self) -> torch.dtype | None:
        return resolve_vae_dtype(self.config, self.pipe.vae, self.device)


def cast_unet_io(unet: torch.nn.Module, dtype: torch.dtype, outer: torch.dtype) -> None:
    """Hooks so a ``dtype`` UNet takes the pipeline's ``outer``-dtype tensors and returns them.

    The scheduler's arithmetic and the latents stay in ``outer`` precision; only the
    network runs in ``dtype`` (cheaper than autocast, which re-casts every weight on
    every call).
    """

    def cast(value: Any, to: torch.dtype) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.to(to)
        if isinstance(value, dict):
            return {k: cast(v, to) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(cast(v, to) for v in value)
        return value

    def before(module, args, kwargs):
        kwargs = {k: (v if k == "timestep" else cast(v, dtype)) for k, v in kwargs.items()}
        return (cast(args[:1], dtype) + tuple(args[1:]), kwargs)

    def after(module, args, kwargs, output):
        if isinstance(output, tuple):
            return (output[0].to(outer), *output[1:])
        output.sample = output.sample.to(outer)
        return output

    unet.register_forward_pre_hook(before, with_kwargs=True)
    unet.register_forward_hook(after, with_kwargs=True)


# --- prompt cache ----------------------------------------------------------------------------


class PromptCache:
    """A small LRU of prompt embeddings (tensors on the model's device)."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict = OrderedDict()

    def get(self, key: tuple) -> tuple | None:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        return None

    def put(self, key: tuple, value: tuple) -> None:
        if self.size == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
