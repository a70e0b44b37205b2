"""The training data as batches: cached latents and text embeddings, and micro-batch k on demand.

Latents (and text embeddings, when captions are fixed) are computed once through
the disk caches. A micro-batch is a pure function of (seed, epoch, position,
process), so ``BatchStream.get(k)`` needs no iterator state and a resumed run
sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import CacheStats, cache_latents, cache_text, encode_captions, fingerprint_module
from .config import DatasetConfig
from .data import TrainItem, build_caption, epoch_batches, item_rng
from .loss import LossInputs
from .models import Models


@dataclass
class TrainData:
    """Checked items with their cached latents and (unless captions vary per step) text embeddings."""

    items: list[TrainItem]
    latents: dict[tuple[int, bool], torch.Tensor]
    text: dict[str, tuple[torch.Tensor, torch.Tensor]] | None  # None: encode each step
    stats: dict[str, int]


def prepare_data(
    items: list[TrainItem],
    models: Models,
    dataset: DatasetConfig,
    cache_dir: Path,
    accelerator,
    *,
    fixed_text: bool,
) -> TrainData:
    """Latents for every item (and its mirror when flipping); text embeddings when ``fixed_text``
    (captions neither shuffled nor encoded by training text encoders)."""
    flips = (False, True) if dataset.flip else (False,)
    with accelerator.main_process_first():  # the main process fills the cache, the others read it
        latents, lstats = cache_latents(items, models.vae, cache_dir, flips)
        text, tstats = None, CacheStats()
        if fixed_text:
            captions = [build_caption(item.caption, dataset.trigger) for item in items]
            captions += [""] if dataset.caption_dropout > 0 else []
            encoder_id = "-".join(fingerprint_module(e) for e in models.text_encoders)

            def encode(batch):
                return encode_captions(batch, models.tokenizers, models.text_encoders)

            text, tstats = cache_text(captions, encode, cache_dir, encoder_id)
    stats = {"latent_hits": lstats.hits, "latent_misses": lstats.misses}
    stats |= {"text_hits": tstats.hits, "text_misses": tstats.misses}
    return TrainData(items, latents, text, stats)


@dataclass
class Batch:
    """One micro-batch, ready for the UNet: latents, the captions to encode, SDXL's time ids."""

    latents: torch.Tensor  # (B, 4, h, w), scaled
    captions: list[str]
    time_ids: torch.Tensor  # (B, 6): original size, crop top-left, target size


def make_batch(
    data: TrainData, dataset: DatasetConfig, seed: int, epoch: int, indices: list[int]
) -> Batch:
    """The items at ``indices`` as a batch; each item's flip and caption (shuffle, dropout)
    come from its own generator for (``seed``, ``epoch``, index), so a resumed run repeats them."""
    latents, captions, time_ids = [], [], []
    for index in indices:
        item = data.items[index]
        rng = item_rng(seed, epoch, index)  # flip, shuffle and dropout of this item this epoch
        flipped = dataset.flip and rng.random() < 0.5
        captions.append(
            build_caption(
                item.caption,
                dataset.trigger,
                shuffle=dataset.shuffle_captions,
                dropout=dataset.caption_dropout,
                rng=rng,
            )
        )
        latents.append(data.latents[(index, flipped)])
        time_ids.append(item.placement.time_ids(flipped))
    return Batch(torch.stack(latents), captions, torch.tensor(time_ids, dtype=torch.float32))


class BatchStream:
    """Micro-batch k of this process, for any k: resuming needs no iterator state."""

    def __init__(
        self,
        data: TrainData,
        dataset: DatasetConfig,
        *,
        batch_size: int,
        seed: int,
        num_processes: int,
        process_index: int,
    ):
        self.data, self.dataset = data, dataset
        self.batch_size, self.seed = batch_size, seed
        self.world = (num_processes, process_index)
        self._epoch, self._batches = -1, []
        self.per_epoch = len(self._epoch_batches(0))

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        buckets = [item.bucket for item in self.data.items]
        return epoch_batches(buckets, self.batch_size, self.seed, epoch, *self.world)

    def get(self, micro_step: int) -> Batch:
        epoch, position = divmod(micro_step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._epoch_batches(epoch)
        return make_batch(self.data, self.dataset, self.seed, epoch, self._batches[position])


def text_conditioning(
    batch: Batch, data: TrainData, models: Models, text_encoders: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt embeddings, pooled embeddings) of a batch: from the cache, or encoded now."""
    if data.text is not None:
        pairs = [data.text[c] for c in batch.captions]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    return encode_captions(batch.captions, models.tokenizers, text_encoders)


def eval_inputs(
    data: TrainData, models: Models, trigger: str, count: int = 16
) -> Iterator[LossInputs]:
    """The first ``count`` items, unflipped, with their fixed captions: the inputs of the
    fixed-noise loss, conditioned as the text encoders are now (lazily, one item at a time)."""
    for index in range(min(count, len(data.items))):
        item = data.items[index]
        batch = Batch(
            data.latents[(index, False)][None],
            [build_caption(item.caption, trigger)],
            torch.tensor([item.placement.time_ids()], dtype=torch.float32),
        )
        embeds, pooled = text_conditioning(batch, data, models, models.text_encoders)
        yield batch.latents, embeds, pooled, batch.time_ids
