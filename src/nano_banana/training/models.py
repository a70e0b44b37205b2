"""The trainer's models: the frozen SDXL base, the LoRA adapters put on it, and their optimizer.

The base loads through the generation core's safe loader, straight in the
training dtype (the VAE in fp32), and is frozen; PEFT puts LoRA adapters on the
UNet (and optionally both text encoders), and only those adapter weights train,
in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidSettingError, ModelLoadError
from .config import AdapterConfig, ModelConfig, OptimConfig, Optimizer, Precision, Targets
from .export import Adapters
from .optim import adamw

# Module names PEFT adapts for each --targets choice; each choice extends the one before.
_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
_CONVOLUTIONS = ("conv1", "conv2", "conv_shortcut")
UNET_TARGETS = {
    Targets.ATTN: _ATTENTION,
    Targets.ATTN_FF: _ATTENTION + _FEED_FORWARD,
    Targets.ATTN_FF_CONV: _ATTENTION + _FEED_FORWARD + _CONVOLUTIONS,
}
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass
class Models:
    """The frozen base, split into the parts training needs."""

    tokenizers: tuple[Any, Any]
    text_encoders: tuple[torch.nn.Module, torch.nn.Module]
    vae: torch.nn.Module
    unet: torch.nn.Module
    noise_scheduler: Any  # DDPMScheduler: add_noise, alphas_cumprod, prediction_type
    sample_scheduler_config: Any


def weight_dtype_for(precision: Precision, device: torch.device) -> tuple[torch.dtype, str]:
    """(dtype of the frozen weights, accelerate's mixed_precision) — fp32 on CPU."""
    if precision == Precision.AUTO:
        if device.type != "cuda":
            precision = Precision.NO
        else:
            precision = Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP16
    return {
        Precision.NO: (torch.float32, "no"),
        Precision.FP16: (torch.float16, "fp16"),
        Precision.BF16: (torch.bfloat16, "bf16"),
    }[precision]


def make_accelerator(precision: Precision):
    """accelerate's ``Accelerator`` at the mixed precision ``precision`` resolves to here."""
    from accelerate import Accelerator

    probe = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, mixed = weight_dtype_for(precision, probe)
    return Accelerator(mixed_precision=mixed, cpu=probe.type == "cpu")


def load_models(model: ModelConfig, device: torch.device, weight_dtype: torch.dtype) -> Models:
    """Load the base through the generation core's safe loader, freeze it, place it.

    The UNet and text encoders load directly in ``weight_dtype``, so host memory peaks
    near that dtype's size (SDXL: ~7 GB in bf16, not ~14 GB in fp32 and a cast). The VAE
    loads in fp32 and stays there: the SDXL VAE overflows to NaN in fp16.
    """
    from diffusers import DDPMScheduler

    from ..model.load import BaseSpec, load_base

    spec = BaseSpec(
        source=model.base,
        vae=model.vae,
        config=model.base_config,
        device="cpu",  # placed below, after freezing
        dtype=str(weight_dtype).removeprefix("torch."),
        vae_dtype="float32",
    )
    pipe = load_base(spec).pipe
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.requires_grad_(False)
        module.to(device)
    if pipe.unet.config.get("addition_embed_type") != "text_time":
        raise ModelLoadError(
            f"base '{model.base}' is not an SDXL model (no text_time conditioning)"
        )
    if model.grad_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    return Models(
        tokenizers=(pipe.tokenizer, pipe.tokenizer_2),
        text_encoders=(pipe.text_encoder, pipe.text_encoder_2),
        vae=pipe.vae,
        unet=pipe.unet,
        noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
        sample_scheduler_config=pipe.scheduler.config,
    )


# --- adapters and optimizer -----------------------------------------------------


def add_adapters(models: Models, adapter: AdapterConfig, seed: int) -> Adapters:
    """PEFT LoRA on the UNet (and text encoders); only adapter weights train, in fp32."""
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    torch.manual_seed(seed)  # adapter initialisation is part of the run's randomness

    def lora_config(targets: tuple[str, ...]) -> LoraConfig:
        return LoraConfig(
            r=adapter.rank,
            lora_alpha=adapter.alpha,
            lora_dropout=adapter.lora_dropout,
            init_lora_weights="gaussian",
            target_modules=list(targets),
        )

    unet_targets = UNET_TARGETS[adapter.targets]
    models.unet.add_adapter(lora_config(unet_targets))
    trained = [models.unet]
    text_encoders: tuple[torch.nn.Module, ...] = ()
    if adapter.train_text_encoder:
        for encoder in models.text_encoders:
            add_text_encoder_adapter(encoder, lora_config(TEXT_TARGETS))
        text_encoders = models.text_encoders
        trained += list(text_encoders)
    cast_training_params(trained, dtype=torch.float32)
    return Adapters(
        models.unet, text_encoders, adapter.rank, adapter.alpha, unet_targets, TEXT_TARGETS
    )


def add_text_encoder_adapter(encoder: torch.nn.Module, lora_config) -> None:
    """PEFT's own injection (transformers' ``add_adapter`` demands a newer PEFT than diffusers),
    with ``peft_config`` set as ``add_adapter`` would, so PEFT's state-dict helpers find it."""
    from peft import inject_adapter_in_model

    inject_adapter_in_model(lora_config, encoder, adapter_name="default")
    encoder.peft_config = {"default": lora_config}


def trainable_parameters(adapters: Adapters) -> dict[str, torch.nn.Parameter]:
    """Every trainable tensor by a stable name (checkpoint keys)."""
    named = {f"unet.{n}": p for n, p in adapters.unet.named_parameters() if p.requires_grad}
    for i, encoder in enumerate(adapters.text_encoders, 1):
        named |= {f"te{i}.{n}": p for n, p in encoder.named_parameters() if p.requires_grad}
    return named


def make_optimizer(
    adapters: Adapters, optim: OptimConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW over the adapters (the text encoders' at their own lr); 8-bit when asked, or on
    ``auto`` when bitsandbytes and CUDA are there."""
    groups = [
        {"params": [p for p in adapters.unet.parameters() if p.requires_grad], "base_lr": optim.lr}
    ]
    for encoder in adapters.text_encoders:
        params = [p for p in encoder.parameters() if p.requires_grad]
        groups.append({"params": params, "base_lr": optim.effective_text_encoder_lr})
    return adamw(
        groups, weight_decay=optim.weight_decay, eight_bit=_use_8bit(optim.optimizer, device)
    )


def _use_8bit(optimizer: Optimizer, device: torch.device) -> bool:
    if optimizer == Optimizer.ADAMW:
        return False
    try:
        import bitsandbytes  # noqa: F401

        available = device.type == "cuda"
    except ImportError:
        available = False
    if optimizer == Optimizer.ADAMW_8BIT and not available:
        raise InvalidSettingError(
            "optimizer adamw8bit needs bitsandbytes and a CUDA GPU; use --optimizer adamw"
        )
    return available
