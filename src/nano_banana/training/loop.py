"""Train a structure LoRA on a frozen SDXL: the training loop, readable top to bottom.

``train(config)`` does, in order:
  1. check the output folder and the dataset (before any model work); hold out the
     validation items;
  2. load the frozen base (VAE in fp32, UNet and text encoders in the training dtype);
  3. cache VAE latents and text embeddings on disk (keyed by content and settings);
  4. put PEFT LoRA adapters on the UNet (and optionally the text encoders);
  5. resume from a checkpoint if asked (same step, lr schedule, optimizer state), and
     only then save the config beside the outputs (a refused run leaves none);
  6. loop: noise, predict, min-SNR-weighted MSE, accumulate, clip, step;
     the loss curve, validation, checkpoints and sample grids as it goes;
     a validation plateau ends it early when asked;
  7. write NAME.safetensors, the model card and any exports.
The parts live next door: ``models`` (base, adapters, optimizer), ``batches``
(caches, micro-batches), ``loss``, ``optim`` (schedule, step, EMA), ``resume``
(checkpoint contents, Ctrl-C), ``validation`` (held-out loss, layout score, best
step) and ``samples``. Everything random is a pure function
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
from .checkpoint import NonFiniteStateError, find_latest, resolve_resume, save_checkpoint
from .config import TrainConfig, save_config
from .data import TrainItem
from .export import Adapters, OutputError, export, lora_metadata, save_lora, write_model_card
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
from .optim import AdapterEMA, all_finite, lr_factor, optimizer_step, set_lr
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
from .validation import (
    Evaluation,
    Validator,
    evaluating,
    make_validator,
    measure_name,
    model_card_lines,
    split_items,
    validation_metadata,
)

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
    # validation (see TrainConfig.validation); empty when nothing was held out or scored
    held_out: int = 0  # dataset items held out of training
    evaluations: list[Evaluation] = field(default_factory=list)  # this call's, step order
    best_measure: str | None = None  # what picked the best step: val_loss or layout_score
    best_step: int | None = None
    best_score: float | None = None
    best_lora: Path | None = None  # NAME-best.safetensors, with keep_best
    stopped_early_at: int | None = None  # the step a validation plateau ended the run
    early_stop_patience: int = 0


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
    dataset_summary: dict[str, Any]
    validator: Validator  # what validation measures on, and when
    grids: list[Path] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)  # main process only
    best_lora: Path | None = None
    stopped_early_at: int | None = None

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def save(self) -> None:
        """Checkpoint from the main process; every process waits so all stop at the same step."""
        if self.main:
            contents = checkpoint_state(
                self.config, self.params, self.optimizer, self.ema, self.state
            )
            try:
                self.state.checkpoint = save_checkpoint(
                    self.config.output.out_dir,
                    self.state.step,
                    contents,
                    keep=self.config.output.keep_checkpoints,
                )
            except NonFiniteStateError:  # finite weights, diverged moments: no use resuming
                message = diverged_message(self, "the optimizer state", self.state.step)
                raise TrainingError(message) from None
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
    report, items, held_out = check_data(config, accelerator.is_main_process)
    # 2-5. frozen base, caches, adapters, optimizer, resume; then the config beside the outputs
    run = prepare_run(config, accelerator, items, held_out, report.summary())
    config_path = (
        save_config(config, config.output.out_dir / "train_config.toml") if run.main else None
    )
    # 6. the loop: one optimizer step at a time; Ctrl-C or SIGTERM stops it at a step boundary,
    #    and a validation plateau (early_stop_patience) ends it as if it were the last step
    if run.state.step == 0:
        validate(run)  # the baseline: the base model before any step
    bar = ProgressBar(max_steps, run.state.step, enabled=progress and run.main)
    start_step, loop_started = run.state.step, time.monotonic()
    with StopRequest(bar.note if progress else log.warning) as stop:
        while run.state.step < max_steps and run.stopped_early_at is None:
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


def check_data(config: TrainConfig, main: bool) -> tuple[Any, list[TrainItem], list[TrainItem]]:
    """Check --out and the dataset; hold out the validation items.
    Returns (report, training items, held-out items)."""
    dataset = config.dataset
    check_out_dir(config.output.out_dir)
    report = check_dataset(
        dataset.data,
        resolution=dataset.resolution,
        caption_ext=dataset.caption_ext,
        min_size_fraction=dataset.min_size_fraction,
        upscale=dataset.upscale,
    )
    usable = report.usable_items(dataset.skip_bad)  # refuses a bad dataset unless told to skip
    items, held_out = split_items(usable, config.validation.val_split, config.seed)
    if main and report.problems:
        log.warning("skipping %d bad item(s):\n%s", len(report.problems), report.format())
    return report, items, held_out


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder that is a file, or lies under one (before any work is done)."""
    for path in (out_dir, *out_dir.parents):
        if path.exists():
            if path.is_dir():
                return
            what = "is a file" if path == out_dir else f"lies under '{path}', which is a file"
            raise OutputError(
                f"--out '{out_dir}' {what}: name a folder (new or existing) for the LoRA "
                "and its checkpoints"
            )


def prepare_run(
    config: TrainConfig,
    accelerator,
    items: list[TrainItem],
    held_out: list[TrainItem],
    dataset_summary: dict[str, Any],
) -> Run:
    """Steps 2-5: frozen base, caches, adapters and optimizer, then resume if asked."""
    device, main = accelerator.device, accelerator.is_main_process
    models = load_models(config.model, device, weight_dtype_for(config.model.precision, device)[0])
    fixed_text = not (config.dataset.shuffle_captions or config.adapter.train_text_encoder)

    def cached(some: list[TrainItem]) -> TrainData:
        cache = config.cache_path
        return prepare_data(some, models, config.dataset, cache, accelerator, fixed_text=fixed_text)

    data, held_data = cached(items), cached(held_out) if held_out else None  # apart: never mixed
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
    pipe = build_sample_pipeline(models, adapters) if main else None
    validator = make_validator(
        config, held_out, held_data, models, adapters, pipe=pipe, ema=ema, params=params,
        device=device,
    )  # fmt: skip
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
        sample_pipe=pipe,
        sample_requests=sample_requests(config.samples, config.dataset.trigger, size),
        loss_log=LossLog(config.output.out_dir, state.step) if main else None,
        eval_before=eval_before,
        dataset_summary=dataset_summary,
        validator=validator,
        stopped_early_at=state.validation.resumed_plateau(state.step, config.validation),
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
        raise TrainingError(nan_message(mean_loss, run))
    # 4) clip and step; weights the step made NaN/Inf stop the run before a checkpoint,
    #    the average or a LoRA can keep them
    params = list(run.params.values())
    clip = accelerator.clip_grad_norm_
    optimizer_step(run.optimizer, params, max_grad_norm=optim.max_grad_norm, clip=clip)
    if any_process(accelerator, not all_finite(params)):
        raise TrainingError(diverged_message(run, "the adapter weights", state.step + 1))
    # 5) fold the new weights into the average, and count
    if run.ema is not None:
        run.ema.update(run.params, state.step)
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
    """Loss curve, validation, checkpoint and sample grid, each on its own schedule (validation
    before the checkpoint, so that the checkpoint carries the best step and the plateau count)."""
    config, step = run.config, run.state.step
    output = config.output
    if run.loss_log is not None and (step % output.log_every == 0 or step == info.max_steps):
        run.loss_log.append(info)
    validate(run)
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
    """The fixed-noise loss on the data (no dropout): comparable before and after training."""
    with evaluating(unet, None, {}):
        return fixed_noise_loss(
            unet,
            eval_inputs(data, models, config.dataset.trigger),
            models.noise_scheduler,
            device,
            min_snr_gamma=config.loss.min_snr_gamma,
            noise_offset=config.loss.noise_offset,
        )


def validate(run: Run) -> None:
    """The validation measures due at this step (step 0, every N, the last): the held-out loss
    and the layout score, logged; then the best step (its LoRA kept if asked) and the plateau
    count. The main process measures; its decision to stop early reaches every process."""
    v, step = run.config.validation, run.state.step
    loss_due, layout_due = run.validator.due(step)
    if not (loss_due or layout_due):
        return
    if run.main:
        evaluation = run.validator.measure(step, loss_due, layout_due)
        run.loss_log.append_validation(evaluation)
        run.evaluations.append(evaluation)
        if step > 0:  # step 0 is the base model's baseline, not a candidate for the best
            judge(run, evaluation)
    plateau = run.main and run.state.validation.plateaued(v.early_stop_patience)
    if v.early_stop_patience and any_process(run.accelerator, plateau):
        run.stopped_early_at = step if step < run.config.optim.max_steps else None


def judge(run: Run, evaluation: Evaluation) -> None:
    """Count an evaluation of the judged measure; a new best is saved as NAME-best with keep_best."""
    v = run.config.validation
    value = evaluation.value(v.judged_by) if v.judged_by else None
    if value is None:  # this evaluation did not measure what the steps are judged by
        return
    best = run.state.validation.record(v.judged_by, value, evaluation.step, v.early_stop_min_delta)
    if best and v.keep_best:
        path = run.config.output.best_lora_path
        run.best_lora = save_adapter(run, path, adapter_metadata(run, evaluation.step))


def adapter_metadata(run: Run, steps: int) -> dict[str, str]:
    """The metadata of a LoRA file written now: the run's, its validation and best step."""
    state = run.state
    final_loss = sum(state.recent) / len(state.recent) if state.recent else None
    held = run.validator.held_out_count
    return {
        **lora_metadata(run.config, steps, run.dataset_summary, final_loss),
        **validation_metadata(run.config, held, state.validation, run.stopped_early_at),
    }


def save_adapter(run: Run, path: Path, metadata: dict[str, str]) -> Path:
    """The adapter as it is now (the EMA weights when kept) as a LoRA file at ``path``."""
    context = run.ema.swapped_in(run.params) if run.ema is not None else contextlib.nullcontext()
    with context:
        return save_lora(run.adapters, path, metadata)


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
        cache=cache_stats(run),
        main_process=run.main,
        held_out=run.validator.held_out_count,
        evaluations=run.evaluations,
        best_measure=state.validation.measure,
        best_step=state.validation.best_step,
        best_score=state.validation.best,
        best_lora=run.best_lora,
        stopped_early_at=run.stopped_early_at,
        early_stop_patience=config.validation.early_stop_patience,
    )
    if run.main:
        write_outputs(result, run, report.summary(), config_path)
    run.accelerator.wait_for_everyone()
    return result


def cache_stats(run: Run) -> dict[str, int]:
    """Hits and misses of the caches, the held-out items' included."""
    held_out = run.validator.held_out
    held = held_out.stats if held_out is not None else {}
    return {key: count + held.get(key, 0) for key, count in run.data.stats.items()}


def nan_message(loss: float, run: Run) -> str:
    """What a user reads when the loss turns NaN/Inf: the step, the checkpoint left, what to try."""
    config = run.config
    return (
        f"training stopped: the loss became {loss} at step {run.state.step + 1}; no LoRA was "
        f"written and {what_is_left(run)}. Try a lower --lr (now {config.optim.lr:g}), "
        "--precision no, or an fp16-fix VAE."
    )


def diverged_message(run: Run, what: str, step: int) -> str:
    """What a user reads when optimizer steps turn ``what`` (the weights, the optimizer's
    moments) NaN/Inf."""
    optim, adapter = run.config.optim, run.config.adapter
    return (
        f"training stopped: {what} became NaN/Inf by step {step}; no "
        f"LoRA was written and {what_is_left(run)}. Try a lower --lr (now {optim.lr:g}), gradient "
        f"clipping (--max-grad-norm 1, now {optim.max_grad_norm:g}) or a lower --alpha "
        f"(now {adapter.alpha:g} at rank {adapter.rank})."
    )


def what_is_left(run: Run) -> str:
    """Where a stopped run can resume from (checkpoints with NaN/Inf values are skipped), and
    the best LoRA so far when one was kept."""
    last = find_latest(run.config.output.out_dir)
    left = f"the last good checkpoint is {last}" if last else "there is no checkpoint yet"
    if run.best_lora is not None:
        left += f"; the best LoRA so far is {run.best_lora}"
    return left


def write_outputs(result: TrainResult, run: Run, summary, config_path) -> None:
    """The LoRA file, exports, model card and loss plot (main process only)."""
    config, lora_path = run.config, run.config.output.lora_path
    save_adapter(run, lora_path, adapter_metadata(run, result.steps))
    result.exported = export(config, lora_path, result.steps, run.models.unet.config)
    grid = result.sample_grids[-1] if result.sample_grids else None
    best_name = result.best_lora.name if result.best_lora else None
    validation = model_card_lines(
        config, result.held_out, run.state.validation, result.stopped_early_at, best_name
    )
    result.model_card = write_model_card(
        config,
        lora_path,
        result.steps,
        summary,
        grid,
        result.final_loss,
        result.exported,
        validation,
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
    lines += validation_summary(result)
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


def validation_summary(result: TrainResult) -> list[str]:
    """The summary's validation lines: first and last measures, the best step, an early stop."""
    lines = []
    for name, label in (("val_loss", "validation loss"), ("layout_score", "layout score")):
        points = [(e.step, e.value(name)) for e in result.evaluations if e.value(name) is not None]
        if points:
            (first_step, first), (last_step, last) = points[0], points[-1]
            lines.append(
                f"{label}: {first:.4f} (step {first_step}) -> {last:.4f} (step {last_step})"
            )
    if lines:
        lines[0] += f" on {result.held_out} held-out item(s)" if result.held_out else ""
    if result.best_step is not None:
        kept = f" -> {result.best_lora}" if result.best_lora else ""
        lines.append(
            f"best: step {result.best_step}, {measure_name(result.best_measure)} "
            f"{result.best_score:.4f}{kept}"
        )
    if result.stopped_early_at is not None:
        lines.append(
            f"stopped early at step {result.stopped_early_at}: {result.early_stop_patience} "
            f"evaluation(s) in a row without a gain in the {measure_name(result.best_measure)}"
        )
    return lines
