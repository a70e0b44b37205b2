"""Validation while training: held-out items, their loss, a layout score, the best step, a plateau.

Part of the dataset is held out of training (``val_split``, chosen by the run's seed).
At fixed steps the trainer measures the fixed-noise loss on those items (the same
noise and timesteps each time, so the numbers compare), and optionally renders a few
images from their captions and asks the layout analyser how many it judges a
disassembled layout. One of the two measures (``ValidationConfig.judged_by``) picks
the best step, which ``keep_best`` saves, and counts the evaluations without a gain
for early stopping. The loop (``loop.py``) decides when; this module measures and keeps
score, with explicit arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from .batches import TrainData, eval_inputs
from .config import TrainConfig, ValidationConfig
from .data import DatasetError, TrainItem
from .loss import fixed_noise_loss
from .models import Models
from .optim import AdapterEMA
from .samples import generation_request, render_adapter

VAL_LOSS = "val_loss"
LAYOUT_SCORE = "layout_score"
MAX_VAL_LOSS_ITEMS = 64  # the mean settles well before this; more only slows every measurement


# --- the split ---------------------------------------------------------------------------


def split_items(
    items: list[TrainItem], share: float, seed: int
) -> tuple[list[TrainItem], list[TrainItem]]:
    """(training items, held-out items): ``share`` of the items (at least one when above 0),
    in their original order.

    An item is held out by a hash of (seed, its content, its name), not by its position, so
    adding images to the folder moves few items between the two sides.
    """
    if share <= 0:
        return list(items), []
    count = max(1, round(share * len(items)))
    if count >= len(items):
        raise DatasetError(
            f"val_split {share:g} would hold out {count} of the {len(items)} usable item(s) and "
            "leave none to train on: lower --val-split or add images"
        )

    def rank(item: TrainItem) -> str:
        return hashlib.sha256(f"{seed}/{item.sha256}/{item.path.name}".encode()).hexdigest()

    held = {id(item) for item in sorted(items, key=rank)[:count]}
    return [i for i in items if id(i) not in held], [i for i in items if id(i) in held]


# --- what is measured ----------------------------------------------------------------------


@dataclass
class Evaluation:
    """The validation measures taken at one step (None: not measured then)."""

    step: int
    val_loss: float | None = None  # fixed-noise loss on the held-out items
    layout_score: float | None = None  # share of the eval images judged a disassembled layout
    layout_parts: float | None = None  # mean parts the analyser found per eval image

    @property
    def empty(self) -> bool:
        return self.val_loss is None and self.layout_score is None

    def value(self, measure: str) -> float | None:
        return getattr(self, measure)


def is_due(step: int, every: int, last_step: int) -> bool:
    """Measured before training (step 0), every ``every`` steps (0: never between), and last."""
    return step == 0 or step == last_step or (every > 0 and step % every == 0)


@contextlib.contextmanager
def evaluating(
    unet: torch.nn.Module, ema: AdapterEMA | None, params: dict[str, torch.nn.Parameter]
) -> Iterator[None]:
    """The adapter as it is saved (EMA weights when kept), without dropout; then as it was."""
    was_training = unet.training
    unet.eval()
    try:
        with ema.swapped_in(params) if ema is not None else contextlib.nullcontext():
            yield
    finally:
        unet.train(was_training)


def held_out_loss(
    unet: torch.nn.Module,
    held_out: TrainData,
    models: Models,
    *,
    trigger: str,
    min_snr_gamma: float,
    noise_offset: float,
    device: torch.device,
    ema: AdapterEMA | None = None,
    params: dict[str, torch.nn.Parameter] | None = None,
) -> float:
    """The fixed-noise loss (the same noise and timesteps per item every time) on the
    held-out items, with the adapter as it is saved."""
    with evaluating(unet, ema, params or {}):
        return fixed_noise_loss(
            unet,
            eval_inputs(held_out, models, trigger, count=MAX_VAL_LOSS_ITEMS),
            models.noise_scheduler,
            device,
            min_snr_gamma=min_snr_gamma,
            noise_offset=noise_offset,
        )


def layout_requests(
    held_out: list[TrainItem],
    fallback_prompts: tuple[str, ...],
    *,
    count: int,
    trigger: str,
    steps: int,
    size: int,
    seed: int,
    cfg: float | None = None,
) -> list:
    """``count`` generation requests at fixed seeds: the held-out captions (they carry the
    trigger words, like the data), or the sample prompts when nothing is held out."""
    prompts = [item.caption for item in held_out] or list(fallback_prompts)
    return [
        generation_request(
            prompts[i % len(prompts)], trigger, steps=steps, size=size, seed=seed + i, cfg=cfg
        )
        for i in range(count)
    ]


def layout_score(images: list) -> tuple[float, float]:
    """(share judged a disassembled layout, mean parts found): the eval command's own judge
    (``analysis.layout.analyze_layout``), applied to each image."""
    from ..analysis.layout import analyze_layout

    reports = [analyze_layout(image) for image in images]
    share = sum(r.verdict for r in reports) / len(reports)
    return share, sum(r.part_count for r in reports) / len(reports)


def render_and_score(pipe, requests: list, *, base_name: str, device, ema, params) -> tuple:
    """Render the layout-eval requests with the adapter as it is now and score them."""
    images = render_adapter(
        pipe, requests, base_name=base_name, device=device, ema=ema, params=params
    )
    return layout_score(images)


@dataclass
class Validator:
    """The run's validation, built once: what it measures on, and when. ``measure`` takes the
    measures due at a step with the adapter as it is saved (the EMA weights when kept)."""

    settings: ValidationConfig
    last_step: int
    held_out: TrainData | None  # None: nothing held out, no validation loss
    layout_requests: list  # empty: no layout eval
    models: Models
    unet: torch.nn.Module  # the adapted UNet (unwrapped)
    pipe: Any  # the sample pipeline sharing it (main process only)
    ema: AdapterEMA | None
    params: dict[str, torch.nn.Parameter]
    device: torch.device
    base_name: str
    trigger: str
    min_snr_gamma: float
    noise_offset: float

    @property
    def held_out_count(self) -> int:
        return len(self.held_out.items) if self.held_out is not None else 0

    def due(self, step: int) -> tuple[bool, bool]:
        """(validation loss due, layout eval due) at ``step``."""
        v = self.settings
        loss = self.held_out is not None and is_due(step, v.val_every, self.last_step)
        layout = bool(self.layout_requests) and is_due(step, v.layout_eval_every, self.last_step)
        return loss, layout

    def measure(self, step: int, loss: bool, layout: bool) -> Evaluation:
        evaluation = Evaluation(step)
        if loss:
            evaluation.val_loss = held_out_loss(
                self.unet,
                self.held_out,
                self.models,
                trigger=self.trigger,
                min_snr_gamma=self.min_snr_gamma,
                noise_offset=self.noise_offset,
                device=self.device,
                ema=self.ema,
                params=self.params,
            )
        if layout:
            evaluation.layout_score, evaluation.layout_parts = render_and_score(
                self.pipe,
                self.layout_requests,
                base_name=self.base_name,
                device=self.device,
                ema=self.ema,
                params=self.params,
            )
        return evaluation


def make_validator(
    config: TrainConfig,
    held_out: list[TrainItem],
    held_data: TrainData | None,
    models: Models,
    adapters,
    *,
    pipe: Any,
    ema: AdapterEMA | None,
    params: dict[str, torch.nn.Parameter],
    device: torch.device,
) -> Validator:
    """The run's ``Validator``: the layout eval renders at the sample images' size, steps and
    seeds, so its images compare with the sample grids."""
    v, samples = config.validation, config.samples
    size = samples.sample_size or config.dataset.resolution
    requests = []
    if v.layout_eval_every:
        requests = layout_requests(
            held_out,
            samples.sample_prompts,
            count=v.layout_eval_images,
            trigger=config.dataset.trigger,
            steps=samples.sample_steps,
            size=size,
            seed=samples.sample_seed,
            cfg=samples.sample_cfg,
        )
    return Validator(
        settings=v,
        last_step=config.optim.max_steps,
        held_out=held_data,
        layout_requests=requests,
        models=models,
        unet=adapters.unet,
        pipe=pipe,
        ema=ema,
        params=params,
        device=device,
        base_name=config.model.base,
        trigger=config.dataset.trigger,
        min_snr_gamma=config.loss.min_snr_gamma,
        noise_offset=config.loss.noise_offset,
    )


# --- keeping score --------------------------------------------------------------------------


@dataclass
class ValidationState:
    """The best evaluation so far and the plateau count; stored in every checkpoint."""

    measure: str | None = None  # what ``best`` is a value of (val_loss or layout_score)
    best: float | None = None
    best_step: int | None = None
    stale: int = 0  # evaluations in a row that did not beat the best

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ValidationState:
        """From a checkpoint (checkpoints older than validation hold none: a fresh state)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    def record(self, measure: str, value: float, step: int, min_delta: float) -> bool:
        """Count one evaluation; True when it is the new best. A higher layout score is better,
        a lower loss; a gain smaller than ``min_delta`` is no gain."""
        if self.measure != measure:  # the judged measure changed (e.g. on resume): start over
            self.measure, self.best, self.best_step, self.stale = measure, None, None, 0
        if measure == LAYOUT_SCORE:
            better = self.best is None or value - min_delta > self.best
        else:
            better = self.best is None or value + min_delta < self.best
        if better:
            self.best, self.best_step, self.stale = value, step, 0
        else:
            self.stale += 1
        return better

    def plateaued(self, patience: int) -> bool:
        return patience > 0 and self.stale >= patience

    def resumed_plateau(self, step: int, settings: ValidationConfig) -> int | None:
        """The step a resumed run had already plateaued at (it then ends at once), else None."""
        same = self.measure == settings.judged_by
        return step if step and same and self.plateaued(settings.early_stop_patience) else None


# --- what the outputs say --------------------------------------------------------------------


def measure_name(measure: str | None) -> str:
    return {VAL_LOSS: "validation loss", LAYOUT_SCORE: "layout score"}.get(measure or "", "-")


def validation_settings(config: TrainConfig, held_out: int) -> dict[str, Any] | None:
    """The validation settings a LoRA records, with the number of held-out items; None when
    nothing was measured."""
    v = config.validation
    if not v.val_split and not v.layout_eval_every:
        return None
    return {**asdict(v), "held_out_items": held_out, "judged_by": v.judged_by}


def validation_metadata(
    config: TrainConfig, held_out: int, state: ValidationState, stopped_at: int | None
) -> dict[str, str]:
    """LoRA metadata keys: the validation settings, the best step and score, an early stop."""
    settings = validation_settings(config, held_out)
    if settings is None:
        return {}
    meta = {"nano_banana.validation": json.dumps(settings, sort_keys=True)}
    if state.best is not None:
        meta["nano_banana.best_step"] = str(state.best_step)
        meta["nano_banana.best_score"] = f"{state.best:.6g}"
        meta["nano_banana.best_measure"] = str(state.measure)
    if stopped_at is not None:
        meta["nano_banana.stopped_early_at"] = str(stopped_at)
    return meta


def model_card_lines(
    config: TrainConfig,
    held_out: int,
    state: ValidationState,
    stopped_at: int | None,
    best_name: str | None,
) -> list[str]:
    """The model card's validation section, in Markdown list lines (empty: no validation)."""
    v = config.validation
    if validation_settings(config, held_out) is None:
        return []
    lines = [
        f"- **Held out:** {held_out} item(s) (val_split {v.val_split:g}), "
        f"validation loss every {v.val_every or 'end'} step(s)"
    ]
    if v.layout_eval_every:
        lines.append(
            f"- **Layout eval:** {v.layout_eval_images} image(s) every {v.layout_eval_every} "
            "step(s), scored as the share judged a disassembled layout"
        )
    if state.best is not None:
        kept = f", saved as `{best_name}`" if best_name else ""
        lines.append(
            f"- **Best step:** {state.best_step} ({measure_name(state.measure)} "
            f"{state.best:.4g}){kept}"
        )
    if stopped_at is not None:
        lines.append(
            f"- **Stopped early** at step {stopped_at}: no gain in {v.early_stop_patience} "
            "evaluation(s) in a row"
        )
    return lines
