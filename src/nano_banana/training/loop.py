"""Train a structure LoRA on a frozen SDXL: the training loop, readable top to bottom.

``train(config)`` does, in order:
  1. check the dataset (before any model work) and save the config beside the outputs;
  2. load the frozen base (VAE in fp32, UNet and text encoders in the training dtype);
  3. cache VAE latents and text embeddings on disk (keyed by content and settings);
  4. put PEFT LoRA adapters on the UNet (and optionally the text encoders);
  5. resume from a checkpoint if asked (same step, lr schedule, optimizer state);
  6. loop: noise, predict, min-SNR-weighted MSE, accumulate, clip, step;
     checkpoints, sample grids and the loss curve as it goes;
  7. write NAME.safetensors, the model card and any exports.
Everything random is a pure function of (seed, step, micro-batch, process), so a
resumed run repeats exactly what an uninterrupted one would have done. Under
``accelerate launch`` the same code runs data-parallel; only the main process
writes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import CancelledError, InvalidSettingError, ModelLoadError, NanoBananaError
from .cache import CacheStats, cache_latents, cache_text, encode_captions, fingerprint_module
from .check import Problem, check_dataset
from .checkpoint import find_latest, load_checkpoint, resolve_resume, save_checkpoint
from .config import Optimizer, Precision, Schedule, Targets, TrainConfig, save_config
from .data import TrainItem, build_caption, epoch_batches, item_rng
from .export import Adapters, export, lora_metadata, save_grid, save_lora, write_model_card
from .log import LossLog, ProgressBar, StepInfo

log = logging.getLogger(__name__)

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
# Settings a checkpoint cannot be resumed under when changed (samples may change; max_steps may grow
# under a constant schedule, while a cosine/linear decay is tied to it).
RESUME_FIXED = (
    "rank",
    "alpha",
    "targets",
    "train_text_encoder",
    "batch_size",
    "grad_accum",
    "seed",
    "resolution",
    "upscale",
    "flip",
    "shuffle_captions",
    "caption_dropout",
    "trigger",
    "base",
    "lr",
    "warmup_steps",
    "schedule",
    "optimizer",
    "ema_decay",
)


class TrainingError(NanoBananaError):
    """Training had to stop (NaN/Inf loss, a checkpoint that does not fit the config)."""


class TrainingInterrupted(CancelledError):
    """Ctrl-C: a checkpoint was saved; ``--resume latest`` continues."""


@dataclass
class TrainResult:
    """What a finished run produced, and how it went."""

    lora_path: Path
    out_dir: Path
    steps: int  # optimizer steps completed in total (including before a resume)
    steps_this_run: int
    seconds: float  # wall time of this call
    seconds_per_step: float  # mean over this call's steps (excludes loading and caching)
    first_loss: float | None  # training loss of step 1 (may come from before a resume)
    final_loss: float | None  # mean training loss of the last 10 steps
    eval_loss_before: float | None  # loss at fixed noise/timesteps on the data, before training
    eval_loss_after: float | None  # ... and after: the honest "did it learn" number
    checkpoint: Path | None
    sample_grids: list[Path] = field(default_factory=list)
    exported: dict[str, Path] = field(default_factory=dict)
    skipped: list[Problem] = field(default_factory=list)
    cache: dict[str, int] = field(default_factory=dict)  # hits/misses of the latent and text caches
    model_card: Path | None = None
    loss_csv: Path | None = None
    loss_png: Path | None = None
    config_path: Path | None = None
    main_process: bool = (
        True  # False on the other ranks of a data-parallel run (they write nothing)
    )


# --- 2. models ----------------------------------------------------------------


@dataclass
class Models:
    """The frozen base, split into the parts training needs."""

    tokenizers: tuple[Any, Any]
    text_encoders: tuple[torch.nn.Module, torch.nn.Module]
    vae: torch.nn.Module
    unet: torch.nn.Module
    noise_scheduler: Any  # DDPMScheduler: add_noise, alphas_cumprod, prediction_type
    sample_scheduler_config: Any


def weight_dtype_for(config: TrainConfig, device: torch.device) -> tuple[torch.dtype, str]:
    """(dtype of the frozen weights, accelerate's mixed_precision) — fp32 on CPU."""
    precision = config.precision
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


def load_models(config: TrainConfig, device: torch.device, weight_dtype: torch.dtype) -> Models:
    """Load the base through the generation core's safe loader, freeze it, place it."""
    from diffusers import DDPMScheduler

    from ..model.load import BaseSpec, load_base

    pipe = load_base(
        BaseSpec(source=config.base, vae=config.vae, device="cpu", dtype="float32")
    ).pipe
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.requires_grad_(False)
    pipe.vae.to(device)  # loaded in fp32 and kept there: the SDXL VAE overflows to NaN in fp16
    for module in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
        # cast only when needed: diffusers warns on every .to(dtype), even a no-op one
        module.to(device) if weight_dtype == torch.float32 else module.to(device, weight_dtype)
    if pipe.unet.config.get("addition_embed_type") != "text_time":
        raise ModelLoadError(
            f"base '{config.base}' is not an SDXL model (no text_time conditioning)"
        )
    return Models(
        tokenizers=(pipe.tokenizer, pipe.tokenizer_2),
        text_encoders=(pipe.text_encoder, pipe.text_encoder_2),
        vae=pipe.vae,
        unet=pipe.unet,
        noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
        sample_scheduler_config=pipe.scheduler.config,
    )


# --- 3. data and caches ---------------------------------------------------------


@dataclass
class TrainData:
    """Checked items with their cached latents and (unless captions vary per step) text embeddings."""

    items: list[TrainItem]
    latents: dict[tuple[int, bool], torch.Tensor]
    text: dict[str, tuple[torch.Tensor, torch.Tensor]] | None  # None: encode each step
    stats: dict[str, int]


def fixed_caption(item: TrainItem, config: TrainConfig) -> str:
    return build_caption(item.caption, config.trigger)


def prepare_data(
    items: list[TrainItem], models: Models, config: TrainConfig, accelerator
) -> TrainData:
    """Latents for every item (and its mirror when flipping), text embeddings when they are fixed."""
    flips = (False, True) if config.flip else (False,)
    cache_dir = config.cache_path
    with accelerator.main_process_first():  # the main process fills the cache, the others read it
        latents, lstats = cache_latents(items, models.vae, cache_dir, flips)
        text, tstats = None, CacheStats()
        if not (config.shuffle_captions or config.train_text_encoder):
            captions = [fixed_caption(item, config) for item in items]
            captions += [""] if config.caption_dropout > 0 else []
            encoder_id = "-".join(fingerprint_module(e) for e in models.text_encoders)

            def encode(batch):
                return encode_captions(batch, models.tokenizers, models.text_encoders)

            text, tstats = cache_text(captions, encode, cache_dir, encoder_id)
    stats = {"latent_hits": lstats.hits, "latent_misses": lstats.misses}
    stats |= {"text_hits": tstats.hits, "text_misses": tstats.misses}
    return TrainData(items, latents, text, stats)


@dataclass
class Batch:
    latents: torch.Tensor  # (B, 4, h, w), scaled
    captions: list[str]
    time_ids: torch.Tensor  # (B, 6): original size, crop top-left, target size


def make_batch(data: TrainData, config: TrainConfig, epoch: int, indices: list[int]) -> Batch:
    latents, captions, time_ids = [], [], []
    for index in indices:
        item = data.items[index]
        rng = item_rng(
            config.seed, epoch, index
        )  # flip, shuffle and dropout of this item this epoch
        flipped = config.flip and rng.random() < 0.5
        captions.append(
            build_caption(
                item.caption,
                config.trigger,
                shuffle=config.shuffle_captions,
                dropout=config.caption_dropout,
                rng=rng,
            )
        )
        latents.append(data.latents[(index, flipped)])
        time_ids.append(item.placement.time_ids(flipped))
    return Batch(torch.stack(latents), captions, torch.tensor(time_ids, dtype=torch.float32))


class BatchStream:
    """Micro-batch k of this process, for any k: resuming needs no iterator state."""

    def __init__(
        self, data: TrainData, config: TrainConfig, num_processes: int, process_index: int
    ):
        self.data, self.config = data, config
        self.world = (num_processes, process_index)
        self._epoch, self._batches = -1, []
        self.per_epoch = len(self._epoch_batches(0))

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        buckets = [item.bucket for item in self.data.items]
        return epoch_batches(buckets, self.config.batch_size, self.config.seed, epoch, *self.world)

    def get(self, micro_step: int) -> Batch:
        epoch, position = divmod(micro_step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._epoch_batches(epoch)
        return make_batch(self.data, self.config, epoch, self._batches[position])


def text_conditioning(
    batch: Batch, data: TrainData, models: Models, text_encoders: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt embeddings, pooled embeddings) of a batch: from the cache, or encoded now."""
    if data.text is not None:
        pairs = [data.text[c] for c in batch.captions]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    return encode_captions(batch.captions, models.tokenizers, text_encoders)


# --- 4. adapters and optimizer -----------------------------------------------------


def add_adapters(models: Models, config: TrainConfig) -> Adapters:
    """PEFT LoRA on the UNet (and text encoders); only adapter weights train, in fp32."""
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    torch.manual_seed(config.seed)  # adapter initialisation is part of the run's randomness

    def lora_config(targets: tuple[str, ...]) -> LoraConfig:
        return LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.lora_dropout,
            init_lora_weights="gaussian",
            target_modules=list(targets),
        )

    unet_targets = UNET_TARGETS[config.targets]
    models.unet.add_adapter(lora_config(unet_targets))
    trained = [models.unet]
    text_encoders: tuple[torch.nn.Module, ...] = ()
    if config.train_text_encoder:
        for encoder in models.text_encoders:
            add_text_encoder_adapter(encoder, lora_config(TEXT_TARGETS))
        text_encoders = models.text_encoders
        trained += list(text_encoders)
    cast_training_params(trained, dtype=torch.float32)
    return Adapters(
        models.unet, text_encoders, config.rank, config.alpha, unet_targets, TEXT_TARGETS
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
    adapters: Adapters, config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW over the adapters; 8-bit when asked (or auto with bitsandbytes on CUDA)."""
    groups = [
        {"params": [p for p in adapters.unet.parameters() if p.requires_grad], "base_lr": config.lr}
    ]
    for encoder in adapters.text_encoders:
        params = [p for p in encoder.parameters() if p.requires_grad]
        groups.append({"params": params, "base_lr": config.effective_text_encoder_lr})
    for group in groups:
        group["lr"] = group["base_lr"]
    kwargs = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": config.weight_decay}
    if _use_8bit(config, device):
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


def _use_8bit(config: TrainConfig, device: torch.device) -> bool:
    if config.optimizer == Optimizer.ADAMW:
        return False
    try:
        import bitsandbytes  # noqa: F401

        available = device.type == "cuda"
    except ImportError:
        available = False
    if config.optimizer == Optimizer.ADAMW_8BIT and not available:
        raise InvalidSettingError(
            "optimizer adamw8bit needs bitsandbytes and a CUDA GPU; use --optimizer adamw"
        )
    return available


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the peak lr for 0-based ``step``: linear warm-up, then the schedule."""
    if step < config.warmup_steps:
        return (step + 1) / (config.warmup_steps + 1)
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    if config.schedule == Schedule.COSINE:
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if config.schedule == Schedule.LINEAR:
        return max(0.0, 1.0 - progress)
    return 1.0


class AdapterEMA:
    """Exponential moving average of the adapter weights, with the usual warm-up of the decay."""

    def __init__(self, params: dict[str, torch.nn.Parameter], decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().clone().float() for n, p in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.nn.Parameter], step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, param in params.items():
            self.shadow[name].lerp_(param.detach().float(), 1.0 - decay)

    @contextlib.contextmanager
    def swapped_in(self, params: dict[str, torch.nn.Parameter]) -> Iterator[None]:
        """Temporarily load the averaged weights (to save or render), then restore."""
        backup = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(self.shadow[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in params.items():
                    param.copy_(backup[name])


# --- 6. the loss ------------------------------------------------------------------


def step_generator(
    seed: int, step: int, micro: int, process: int, device: torch.device
) -> torch.Generator:
    """The random source of one micro-batch: noise, timesteps, noise offset (and LoRA dropout)."""
    digest = hashlib.sha256(f"{seed}/{step}/{micro}/{process}".encode()).digest()
    value = int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
    torch.manual_seed(value)  # LoRA dropout draws from the global generator
    return torch.Generator(device=device).manual_seed(value)


def min_snr_weights(snr: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
    Weighting Strategy", eq. 9): min(SNR, γ)/SNR for ε-prediction, min(SNR, γ)/(SNR+1) for v."""
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr


def diffusion_loss(
    unet: torch.nn.Module,
    latents: torch.Tensor,
    embeds: torch.Tensor,
    pooled: torch.Tensor,
    time_ids: torch.Tensor,
    noise_scheduler: Any,
    config: TrainConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """The denoising loss of one batch: noise the latents at random timesteps, predict, compare."""
    from diffusers.training_utils import compute_snr

    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator, device=latents.device)
    if (
        config.noise_offset
    ):  # shifts each channel's mean: learns brightness the zero-mean noise hides
        noise = noise + config.noise_offset * torch.randn(
            (b, latents.shape[1], 1, 1), generator=generator, device=latents.device
        )
    steps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (b,), generator=generator, device=latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    unet_dtype = next(p.dtype for p in unet.parameters() if not p.requires_grad)
    pred = unet(
        noisy.to(unet_dtype),
        timesteps,
        encoder_hidden_states=embeds.to(unet_dtype),
        added_cond_kwargs={
            "text_embeds": pooled.to(unet_dtype),
            "time_ids": time_ids.to(unet_dtype),
        },
    ).sample
    prediction_type = noise_scheduler.config.prediction_type
    target = (
        noise
        if prediction_type == "epsilon"
        else noise_scheduler.get_velocity(latents, noise, timesteps)
    )
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if config.min_snr_gamma > 0:
        per_sample = per_sample * min_snr_weights(
            compute_snr(noise_scheduler, timesteps), config.min_snr_gamma, prediction_type
        )
    return per_sample.mean()


@torch.no_grad()
def fixed_noise_loss(
    unet, data: TrainData, models: Models, config: TrainConfig, device: torch.device
) -> float:
    """Loss over (up to 16) items at fixed noise and timesteps: comparable before and after training."""
    losses = []
    for index in range(min(16, len(data.items))):
        item = data.items[index]
        batch = Batch(
            data.latents[(index, False)][None],
            [fixed_caption(item, config)],
            torch.tensor([item.placement.time_ids()], dtype=torch.float32),
        )
        embeds, pooled = text_conditioning(batch, data, models, models.text_encoders)
        generator = torch.Generator(device=device).manual_seed(10_000 + index)
        loss = diffusion_loss(
            unet,
            batch.latents.to(device),
            embeds.to(device),
            pooled.to(device),
            batch.time_ids.to(device),
            models.noise_scheduler,
            config,
            generator,
        )
        losses.append(loss.item())
    return sum(losses) / len(losses)


# --- 6. samples --------------------------------------------------------------------


def build_sample_pipeline(models: Models, adapters: Adapters):
    """A pipeline that shares the training modules (no copies), for sample images."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(
        vae=models.vae,
        text_encoder=models.text_encoders[0],
        text_encoder_2=models.text_encoders[1],
        tokenizer=models.tokenizers[0],
        tokenizer_2=models.tokenizers[1],
        unet=adapters.unet,
        scheduler=EulerAncestralDiscreteScheduler.from_config(models.sample_scheduler_config),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render_samples(pipe, config: TrainConfig, device: torch.device) -> list:
    """The fixed sample prompts at fixed seeds, with the adapter as it is now, through the engine."""
    from ..generate.engine import Engine
    from ..settings import GenerationRequest

    engine = Engine.from_pipeline(pipe, base_name=config.base)
    for name in _adapter_names(pipe):
        engine.adopt_adapter(name)
    size = config.sample_size or config.resolution
    images = []
    for i, prompt in enumerate(config.sample_prompts):
        request = GenerationRequest(
            prompt=build_caption(prompt, config.trigger),
            preset="none",  # the caption already carries the trigger words, as in training
            lora_scale=1.0,  # the adapter at the strength it is trained at
            steps=config.sample_steps,
            width=size,
            height=size,
            seed=config.sample_seed + i,
        )
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            images.append(engine.generate(request).image)
    return images


def _adapter_names(pipe) -> list[str]:
    """Adapters inside the pipeline's UNet (the one being trained, under PEFT's name for it)."""
    config = getattr(pipe.unet, "peft_config", None) or {}
    return list(config)


# --- Ctrl-C ----------------------------------------------------------------------------


class StopRequest:
    """First Ctrl-C: finish the current step, save a checkpoint, stop. Second: stop at once."""

    def __init__(self, notify: Callable[[str], None]):
        self.requested = False
        self._notify = notify
        self._previous = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._notify("stopping after this step and saving a checkpoint (Ctrl-C again to abort)")

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# --- the run ---------------------------------------------------------------------------


@dataclass
class RunState:
    """The loop's counters; stored in every checkpoint."""

    step: int = 0
    first_loss: float | None = None
    recent: list[float] = field(default_factory=list)  # last losses, for the final mean
    checkpoint: Path | None = None


def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator

    probe = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, mixed = weight_dtype_for(config, probe)
    return Accelerator(mixed_precision=mixed, cpu=probe.type == "cpu")


@dataclass
class Run:
    """Everything the loop works with, built once by ``prepare_run``."""

    config: TrainConfig
    accelerator: Any
    models: Models
    data: TrainData
    adapters: Adapters
    params: dict[str, torch.nn.Parameter]
    optimizer: Any
    ema: AdapterEMA | None
    unet: torch.nn.Module  # the adapted UNet, prepared by accelerate
    text_encoders: tuple
    stream: BatchStream
    state: RunState
    sample_pipe: Any  # main process only
    loss_log: LossLog | None  # main process only
    eval_before: float
    grids: list[Path] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def save(self) -> None:
        """Checkpoint from the main process; every process waits so all stop at the same step."""
        if self.main:
            self.state.checkpoint = save_checkpoint(
                self.config.out_dir,
                self.state.step,
                checkpoint_state(self.config, self.params, self.optimizer, self.ema, self.state),
                keep=self.config.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()


def train(
    config: TrainConfig,
    *,
    progress: bool = True,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train a LoRA as ``config`` says and write it; see the module docstring for the steps."""
    started = time.monotonic()
    config = config.validated()
    accelerator = make_accelerator(config)
    # 1. data first: a bad dataset fails in seconds, not after loading a 7 GB model
    report, config_path = check_data(config, accelerator.is_main_process)
    # 2-5. frozen base, caches, adapters, optimizer, resume
    run = prepare_run(config, accelerator, report.usable_items(config.skip_bad))
    # 6. the loop
    bar = ProgressBar(config.max_steps, run.state.step, enabled=progress and run.main)
    start_step, loop_started = run.state.step, time.monotonic()
    with StopRequest(bar.note if progress else log.warning) as stop:
        while run.state.step < config.max_steps:
            if _any_process(accelerator, stop.requested):
                run.save()
                raise TrainingInterrupted(
                    f"stopped at step {run.state.step}; checkpoint saved in "
                    f"{run.state.checkpoint}; continue with --resume latest"
                )
            info = train_step(run, loop_started)
            bar.update(info)
            if on_step is not None:
                on_step(info)
            after_step(run, info)
    bar.close()
    # 7. outputs: the LoRA (EMA weights if kept), model card, exports, final checkpoint
    result = finish(run, report, config_path, start_step, loop_started)
    result.seconds = time.monotonic() - started
    return result


def check_data(config: TrainConfig, main: bool):
    """Check the dataset; save the config beside the outputs. Returns (report, config path)."""
    report = check_dataset(
        config.data,
        resolution=config.resolution,
        caption_ext=config.caption_ext,
        min_size_fraction=config.min_size_fraction,
        upscale=config.upscale,
    )
    report.usable_items(config.skip_bad)  # refuses a bad dataset unless told to skip
    config_path = None
    if main:
        config.out_dir.mkdir(parents=True, exist_ok=True)
        config_path = save_config(config, config.out_dir / "train_config.toml")
        if report.problems:
            log.warning("skipping %d bad item(s):\n%s", len(report.problems), report.format())
    return report, config_path


def prepare_run(config: TrainConfig, accelerator, items: list[TrainItem]) -> Run:
    """Steps 2-5: frozen base, caches, adapters and optimizer, then resume if asked."""
    device = accelerator.device
    weight_dtype, _ = weight_dtype_for(config, device)
    models = load_models(config, device, weight_dtype)
    if config.grad_checkpointing:
        models.unet.enable_gradient_checkpointing()
    data = prepare_data(items, models, config, accelerator)
    adapters = add_adapters(models, config)
    params = trainable_parameters(adapters)
    optimizer = make_optimizer(adapters, config, device)
    ema = AdapterEMA(params, config.ema_decay) if config.ema_decay else None
    eval_before = fixed_noise_loss(adapters.unet, data, models, config, device)

    # resume: same step count, optimizer state, EMA; lr and randomness follow from the step
    state = RunState()
    resume_from = resolve_resume(config.out_dir, config.resume)
    if resume_from is not None:
        restore(resume_from, config, params, optimizer, ema, state)

    main = accelerator.is_main_process
    # models before the optimizer, as accelerate wants for sharded (FSDP) setups
    unet = accelerator.prepare(adapters.unet)
    prepared = tuple(accelerator.prepare(e) for e in adapters.text_encoders)
    optimizer = accelerator.prepare(optimizer)
    return Run(
        config=config,
        accelerator=accelerator,
        models=models,
        data=data,
        adapters=adapters,
        params=params,
        optimizer=optimizer,
        ema=ema,
        unet=unet,
        text_encoders=prepared or models.text_encoders,
        stream=BatchStream(data, config, accelerator.num_processes, accelerator.process_index),
        state=state,
        sample_pipe=build_sample_pipeline(models, adapters) if main else None,
        loss_log=LossLog(config.out_dir, state.step) if main else None,
        eval_before=eval_before,
    )


def train_step(run: Run, loop_started: float) -> StepInfo:
    """One optimizer step over ``grad_accum`` micro-batches; a NaN/Inf loss stops the run."""
    config, state, accelerator = run.config, run.state, run.accelerator
    step_started = time.monotonic()
    factor = lr_factor(state.step, config)
    for group in run.optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    loss_sum, samples = accumulate_gradients(run)
    # a NaN/Inf loss stops the run before the optimizer can spread it into the weights
    mean_loss = accelerator.reduce(loss_sum / config.grad_accum, reduction="mean").item()
    if not math.isfinite(mean_loss):
        raise TrainingError(nan_message(mean_loss, state, config))
    if config.max_grad_norm > 0:
        accelerator.clip_grad_norm_(list(run.params.values()), config.max_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.params, state.step)
    state.step += 1
    state.first_loss = mean_loss if state.first_loss is None else state.first_loss
    state.recent = (state.recent + [mean_loss])[-10:]
    dt = max(time.monotonic() - step_started, 1e-9)
    return StepInfo(
        state.step,
        config.max_steps,
        mean_loss,
        config.lr * factor,
        samples * accelerator.num_processes / dt,
        time.monotonic() - loop_started,
    )


def accumulate_gradients(run: Run) -> tuple[torch.Tensor, int]:
    """Forward/backward over the micro-batches; only the last one syncs gradients across processes."""
    config, accelerator, device = run.config, run.accelerator, run.device
    loss_sum, samples = torch.zeros((), device=device), 0
    for micro in range(config.grad_accum):
        batch = run.stream.get(run.state.step * config.grad_accum + micro)
        generator = step_generator(
            config.seed, run.state.step, micro, accelerator.process_index, device
        )
        last = micro == config.grad_accum - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(run.unet):
            with accelerator.autocast():
                embeds, pooled = text_conditioning(batch, run.data, run.models, run.text_encoders)
                loss = diffusion_loss(
                    run.unet,
                    batch.latents.to(device),
                    embeds.to(device),
                    pooled.to(device),
                    batch.time_ids.to(device),
                    run.models.noise_scheduler,
                    config,
                    generator,
                )
            accelerator.backward(loss / config.grad_accum)
        loss_sum += loss.detach()
        samples += len(batch.captions)
    return loss_sum, samples


def after_step(run: Run, info: StepInfo) -> None:
    """Loss curve, checkpoint and sample grid, each on its own schedule."""
    config, step = run.config, run.state.step
    if run.loss_log is not None and (step % config.log_every == 0 or step == config.max_steps):
        run.loss_log.append(info)
    if config.checkpoint_every and step % config.checkpoint_every == 0:
        run.save()
    every = config.effective_sample_every
    if run.main and every and step % every == 0:
        run.grids.append(
            sample_grid(run.sample_pipe, config, run.device, step, run.ema, run.params)
        )


def finish(run: Run, report, config_path, start_step: int, loop_started: float) -> TrainResult:
    """Step 7: final checkpoint, before/after loss, and the LoRA with its card and exports."""
    config, state = run.config, run.state
    steps_done = state.step - start_step
    loop_seconds = time.monotonic() - loop_started
    eval_after = fixed_noise_loss(run.adapters.unet, run.data, run.models, config, run.device)
    if not config.checkpoint_every or state.step % config.checkpoint_every:
        run.save()  # a final checkpoint lets a later run extend training with a larger max_steps
    result = TrainResult(
        lora_path=config.lora_path,
        out_dir=config.out_dir,
        steps=state.step,
        steps_this_run=steps_done,
        seconds=0.0,
        seconds_per_step=loop_seconds / max(1, steps_done),
        first_loss=state.first_loss,
        final_loss=sum(state.recent) / len(state.recent) if state.recent else None,
        eval_loss_before=run.eval_before,
        eval_loss_after=eval_after,
        checkpoint=state.checkpoint or find_latest(config.out_dir),
        sample_grids=run.grids,
        skipped=list(report.problems),
        cache=run.data.stats,
        main_process=run.main,
    )
    if run.main:
        write_outputs(
            result,
            config,
            run.adapters,
            run.params,
            run.ema,
            report.summary(),
            run.loss_log,
            config_path,
        )
    run.accelerator.wait_for_everyone()
    return result


def _any_process(accelerator, flag: bool) -> bool:
    """True if any process saw Ctrl-C (all must stop at the same step)."""
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return accelerator.reduce(value, reduction="sum").item() > 0


def nan_message(loss: float, state: RunState, config: TrainConfig) -> str:
    last = find_latest(config.out_dir)
    where = f"the last good checkpoint is {last}" if last else "there is no checkpoint yet"
    return (
        f"training stopped: the loss became {loss} at step {state.step + 1}; no LoRA was written "
        f"and {where}. Try a lower --lr (now {config.lr:g}), --precision no, or an fp16-fix VAE."
    )


def sample_grid(
    pipe, config: TrainConfig, device, step: int, ema: AdapterEMA | None, params
) -> Path:
    """Render the sample prompts (with the EMA weights when kept) into samples/step-NNNNNNN.png."""
    context = ema.swapped_in(params) if ema is not None else contextlib.nullcontext()
    was_training = pipe.unet.training
    pipe.unet.eval()
    with context:
        images = render_samples(pipe, config, device)
    pipe.unet.train(was_training)
    return save_grid(images, config.out_dir / "samples" / f"step-{step:07d}.png")


def checkpoint_state(config, params, optimizer, ema, state: RunState) -> dict[str, Any]:
    return {
        "adapters": {n: p.detach() for n, p in params.items()},
        "optimizer": optimizer.state_dict(),
        "ema": ema.shadow if ema is not None else None,
        "run": {"step": state.step, "first_loss": state.first_loss, "recent": state.recent},
        "config": config.to_dict(),
    }


def restore(path: Path, config: TrainConfig, params, optimizer, ema, state: RunState) -> None:
    """Load a checkpoint into the fresh adapters/optimizer; refuse one made with other settings."""
    step, saved = load_checkpoint(path)
    fixed = RESUME_FIXED if config.schedule == Schedule.CONSTANT else (*RESUME_FIXED, "max_steps")
    changed = [k for k in fixed if saved["config"].get(k) != config.to_dict().get(k)]
    if changed:
        raise TrainingError(
            f"checkpoint '{path}' was made with different {', '.join(changed)}; resume with the "
            f"same settings (see {path.parent.parent / 'train_config.toml'}) or start a new --out folder"
        )
    missing = set(params) ^ set(saved["adapters"])
    if missing:
        raise TrainingError(
            f"checkpoint '{path}' does not match the adapters (e.g. {sorted(missing)[0]})"
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(saved["adapters"][name])
    optimizer.load_state_dict(saved["optimizer"])
    if ema is not None and saved["ema"] is not None:
        ema.shadow = {n: t.to(params[n].device).float() for n, t in saved["ema"].items()}
    state.step = step
    state.first_loss = saved["run"]["first_loss"]
    state.recent = list(saved["run"]["recent"])
    state.checkpoint = path


def write_outputs(
    result: TrainResult, config, adapters, params, ema, summary, loss_log, config_path
) -> None:
    """The LoRA file, exports, model card and loss plot (main process only)."""
    meta = lora_metadata(config, result.steps, summary, result.final_loss)
    context = ema.swapped_in(params) if ema is not None else contextlib.nullcontext()
    with context:
        save_lora(adapters, config.lora_path, meta)
    result.exported = export(config, config.lora_path, result.steps)
    grid = result.sample_grids[-1] if result.sample_grids else None
    result.model_card = write_model_card(
        config, config.lora_path, result.steps, summary, grid, result.final_loss, result.exported
    )
    result.loss_csv, result.loss_png = loss_log.csv_path, loss_log.plot()
    loss_log.close()
    result.config_path = config_path


def format_summary(result: TrainResult) -> str:
    """The end-of-run summary the CLI prints."""
    lines = [
        f"trained {result.steps_this_run} step(s) (total {result.steps}) in {result.seconds:.1f} s "
        f"({result.seconds_per_step:.3f} s/step)",
    ]
    if result.first_loss is not None and result.final_loss is not None:
        lines.append(
            f"loss: first step {result.first_loss:.4f}, last 10 steps {result.final_loss:.4f}"
        )
    if result.eval_loss_before is not None and result.eval_loss_after is not None:
        lines.append(
            f"fixed-noise loss: {result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f}"
        )
    lines.append(f"LoRA: {result.lora_path}")
    for fmt, path in result.exported.items():
        lines.append(f"{fmt} export: {path}")
    if result.model_card:
        lines.append(f"model card: {result.model_card}")
    if result.sample_grids:
        lines.append(f"samples: {result.sample_grids[-1]}")
    if result.loss_png:
        lines.append(f"loss curve: {result.loss_png} ({result.loss_csv})")
    if result.checkpoint:
        lines.append(f"checkpoint: {result.checkpoint}")
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} bad item(s):")
        lines += [f"  {p.message}" for p in result.skipped]
    return "\n".join(lines)
