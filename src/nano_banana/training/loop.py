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
The parts live next door: ``models`` (base, adapters, optimizer), ``batches``
(caches, micro-batches), ``loss``, ``optim`` (schedule, step, EMA), ``resume``
(checkpoint contents, Ctrl-C) and ``samples``. Everything random is a pure function
of (seed, step, micro-batch, process), so a resumed run repeats exactly what an
uninterrupted one would have done. Under ``accelerate launch`` the same code runs
data-parallel; only the main process writes files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .batches import BatchStream, TrainData, eval_inputs, prepare_data, text_conditioning
from .check import Problem, check_dataset
from .checkpoint import find_latest, resolve_resume, save_checkpoint
from .config import TrainConfig, save_config
from .data import TrainItem
from .export import Adapters, export, lora_metadata, save_lora, write_model_card
from .log import LossLog, ProgressBar, StepInfo
from .loss import diffusion_loss, fixed_noise_loss, step_generator
from .models import (
    Models,
    add_adapters,
    load_models,
    make_accelerator,
    make_optimizer,
    trainable_parameters,
    weight_dtype_for,
)
from .optim import AdapterEMA, lr_factor, optimizer_step, set_lr
from .resume import (
    RunState,
    StopRequest,
    TrainingError,
    TrainingInterrupted,
    any_process,
    checkpoint_state,
    restore,
)
from .samples import build_sample_pipeline, sample_grid, sample_requests

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "TrainingError", "TrainingInterrupted", "format_summary", "train"]


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
    sample_requests: list  # the sample grid's generation requests
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
                self.config.output.out_dir,
                self.state.step,
                checkpoint_state(self.config, self.params, self.optimizer, self.ema, self.state),
                keep=self.config.output.keep_checkpoints,
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
    max_steps = config.optim.max_steps
    accelerator = make_accelerator(config.model.precision)
    # 1. data first: a bad dataset fails in seconds, not after loading a 7 GB model
    report, config_path = check_data(config, accelerator.is_main_process)
    # 2-5. frozen base, caches, adapters, optimizer, resume
    run = prepare_run(config, accelerator, report.usable_items(config.dataset.skip_bad))
    # 6. the loop: one optimizer step at a time; Ctrl-C stops it at a step boundary
    bar = ProgressBar(max_steps, run.state.step, enabled=progress and run.main)
    start_step, loop_started = run.state.step, time.monotonic()
    with StopRequest(bar.note if progress else log.warning) as stop:
        while run.state.step < max_steps:
            if any_process(accelerator, stop.requested):
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
    dataset, out_dir = config.dataset, config.output.out_dir
    report = check_dataset(
        dataset.data,
        resolution=dataset.resolution,
        caption_ext=dataset.caption_ext,
        min_size_fraction=dataset.min_size_fraction,
        upscale=dataset.upscale,
    )
    report.usable_items(dataset.skip_bad)  # refuses a bad dataset unless told to skip
    config_path = None
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        config_path = save_config(config, out_dir / "train_config.toml")
        if report.problems:
            log.warning("skipping %d bad item(s):\n%s", len(report.problems), report.format())
    return report, config_path


def prepare_run(config: TrainConfig, accelerator, items: list[TrainItem]) -> Run:
    """Steps 2-5: frozen base, caches, adapters and optimizer, then resume if asked."""
    device, main = accelerator.device, accelerator.is_main_process
    models = load_models(config.model, device, weight_dtype_for(config.model.precision, device)[0])
    fixed_text = not (config.dataset.shuffle_captions or config.adapter.train_text_encoder)
    data = prepare_data(
        items, models, config.dataset, config.cache_path, accelerator, fixed_text=fixed_text
    )
    adapters = add_adapters(models, config.adapter, config.seed)
    params = trainable_parameters(adapters)
    optimizer = make_optimizer(adapters, config.optim, device)
    ema = AdapterEMA(params, config.optim.ema_decay) if config.optim.ema_decay else None
    eval_before = measure_loss(config, adapters.unet, data, models, device)

    # resume: same step count, optimizer state, EMA; lr and randomness follow from the step
    state = RunState()
    resume_from = resolve_resume(config.output.out_dir, config.output.resume)
    if resume_from is not None:
        restore(resume_from, config, params, optimizer, ema, state)

    # models before the optimizer, as accelerate wants for sharded (FSDP) setups
    unet = accelerator.prepare(adapters.unet)
    prepared = tuple(accelerator.prepare(e) for e in adapters.text_encoders)
    optimizer = accelerator.prepare(optimizer)
    size = config.samples.sample_size or config.dataset.resolution
    stream = BatchStream(
        data,
        config.dataset,
        batch_size=config.optim.batch_size,
        seed=config.seed,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
    )
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
        stream=stream,
        state=state,
        sample_pipe=build_sample_pipeline(models, adapters) if main else None,
        sample_requests=sample_requests(config.samples, config.dataset.trigger, size),
        loss_log=LossLog(config.output.out_dir, state.step) if main else None,
        eval_before=eval_before,
    )


def train_step(run: Run, loop_started: float) -> StepInfo:
    """One optimizer step over ``grad_accum`` micro-batches; a NaN/Inf loss stops the run."""
    optim, state, accelerator = run.config.optim, run.state, run.accelerator
    step_started = time.monotonic()
    # 1) the lr of this step: linear warm-up, then the schedule
    factor = lr_factor(
        state.step, warmup=optim.warmup_steps, total=optim.max_steps, decay=optim.schedule
    )
    set_lr(run.optimizer, factor)
    # 2) forward and backward over the micro-batches
    loss_sum, samples = accumulate_gradients(run)
    # 3) a NaN/Inf loss stops the run before the optimizer can spread it into the weights
    mean_loss = accelerator.reduce(loss_sum / optim.grad_accum, reduction="mean").item()
    if not math.isfinite(mean_loss):
        raise TrainingError(nan_message(mean_loss, state, run.config))
    # 4) clip, step, and fold the new weights into the average
    params = list(run.params.values())
    clip = accelerator.clip_grad_norm_
    optimizer_step(run.optimizer, params, max_grad_norm=optim.max_grad_norm, clip=clip)
    if run.ema is not None:
        run.ema.update(run.params, state.step)
    # 5) count
    state.step += 1
    state.first_loss = mean_loss if state.first_loss is None else state.first_loss
    state.recent = (state.recent + [mean_loss])[-10:]
    dt = max(time.monotonic() - step_started, 1e-9)
    return StepInfo(
        state.step,
        optim.max_steps,
        mean_loss,
        optim.lr * factor,
        samples * accelerator.num_processes / dt,
        time.monotonic() - loop_started,
    )


def accumulate_gradients(run: Run) -> tuple[torch.Tensor, int]:
    """Forward/backward over the micro-batches; only the last one syncs gradients across processes."""
    config, accelerator, device = run.config, run.accelerator, run.device
    grad_accum = config.optim.grad_accum
    loss_sum, samples = torch.zeros((), device=device), 0
    for micro in range(grad_accum):
        batch = run.stream.get(run.state.step * grad_accum + micro)
        generator = step_generator(
            config.seed, run.state.step, micro, accelerator.process_index, device
        )
        last = micro == grad_accum - 1
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
                    generator,
                    min_snr_gamma=config.loss.min_snr_gamma,
                    noise_offset=config.loss.noise_offset,
                )
            accelerator.backward(loss / grad_accum)
        loss_sum += loss.detach()
        samples += len(batch.captions)
    return loss_sum, samples


def after_step(run: Run, info: StepInfo) -> None:
    """Loss curve, checkpoint and sample grid, each on its own schedule."""
    config, step = run.config, run.state.step
    output = config.output
    if run.loss_log is not None and (step % output.log_every == 0 or step == info.max_steps):
        run.loss_log.append(info)
    if output.checkpoint_every and step % output.checkpoint_every == 0:
        run.save()
    every = config.effective_sample_every
    if run.main and every and step % every == 0:
        path = output.out_dir / "samples" / f"step-{step:07d}.png"
        grid = sample_grid(
            run.sample_pipe,
            run.sample_requests,
            path,
            base_name=config.model.base,
            device=run.device,
            ema=run.ema,
            params=run.params,
        )
        run.grids.append(grid)


def measure_loss(
    config: TrainConfig, unet: torch.nn.Module, data: TrainData, models: Models, device
) -> float:
    """The fixed-noise loss on the data: comparable before and after training."""
    return fixed_noise_loss(
        unet,
        eval_inputs(data, models, config.dataset.trigger),
        models.noise_scheduler,
        device,
        min_snr_gamma=config.loss.min_snr_gamma,
        noise_offset=config.loss.noise_offset,
    )


def finish(run: Run, report, config_path, start_step: int, loop_started: float) -> TrainResult:
    """Step 7: final checkpoint, before/after loss, and the LoRA with its card and exports."""
    config, state = run.config, run.state
    output = config.output
    steps_done = state.step - start_step
    loop_seconds = time.monotonic() - loop_started
    eval_after = measure_loss(config, run.adapters.unet, run.data, run.models, run.device)
    if not output.checkpoint_every or state.step % output.checkpoint_every:
        run.save()  # a final checkpoint lets a later run extend training with a larger max_steps
    result = TrainResult(
        lora_path=output.lora_path,
        out_dir=output.out_dir,
        steps=state.step,
        steps_this_run=steps_done,
        seconds=0.0,
        seconds_per_step=loop_seconds / max(1, steps_done),
        first_loss=state.first_loss,
        final_loss=sum(state.recent) / len(state.recent) if state.recent else None,
        eval_loss_before=run.eval_before,
        eval_loss_after=eval_after,
        checkpoint=state.checkpoint or find_latest(output.out_dir),
        sample_grids=run.grids,
        skipped=list(report.problems),
        cache=run.data.stats,
        main_process=run.main,
    )
    if run.main:
        write_outputs(result, run, report.summary(), config_path)
    run.accelerator.wait_for_everyone()
    return result


def nan_message(loss: float, state: RunState, config: TrainConfig) -> str:
    """What a user reads when the loss turns NaN/Inf: the step, the checkpoint left, what to try."""
    last = find_latest(config.output.out_dir)
    where = f"the last good checkpoint is {last}" if last else "there is no checkpoint yet"
    return (
        f"training stopped: the loss became {loss} at step {state.step + 1}; no LoRA was written "
        f"and {where}. Try a lower --lr (now {config.optim.lr:g}), --precision no, or an fp16-fix VAE."
    )


def write_outputs(result: TrainResult, run: Run, summary, config_path) -> None:
    """The LoRA file, exports, model card and loss plot (main process only)."""
    config, lora_path = run.config, run.config.output.lora_path
    meta = lora_metadata(config, result.steps, summary, result.final_loss)
    context = run.ema.swapped_in(run.params) if run.ema is not None else contextlib.nullcontext()
    with context:
        save_lora(run.adapters, lora_path, meta)
    result.exported = export(config, lora_path, result.steps)
    grid = result.sample_grids[-1] if result.sample_grids else None
    result.model_card = write_model_card(
        config, lora_path, result.steps, summary, grid, result.final_loss, result.exported
    )
    result.loss_csv, result.loss_png = run.loss_log.csv_path, run.loss_log.plot()
    run.loss_log.close()
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
