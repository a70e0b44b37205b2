"""Build the embedded demo model from scratch: world renders -> VAE -> base UNet -> LoRA.

The recipe in miniature, each step a named function with fixed seeds:

1. ``render_images``: draw the procedural world (assembled views and single parts
   for the base, every view for the VAE);
2. ``train_vae``: a small KL autoencoder (4x downsampling) on crops of all views,
   then ``tune_vae_decoder``: its decoder alone on whole images;
3. ``build_text_stack``: a CLIP BPE tokenizer covering the world's and the
   presets' words, and two small CLIP text encoders (random, frozen);
4. ``train_base_unet``: an SDXL-style UNet (text-time conditioning) trained from
   scratch on *assembled* views only, epsilon prediction on SDXL's noise schedule;
5. ``save_base``: a diffusers SDXL folder, fp16 weights (loads as fp32 on CPU);
6. ``write_lora_dataset`` then ``train_demo_lora``: the structure LoRA, trained by
   our own trainer (``nano_banana.training.train``) on parts-first boards the base
   drew itself (``dataset synth``), never on the world's knolling or exploded views;
7. ``write_demo_settings``: the demo's recommended generation settings.

``build_demo`` runs them all and reports the time each took.
"""

from __future__ import annotations

import copy
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir

from ..atomic import atomic_path, write_text
from ..errors import GenerationError, InvalidSettingError
from ..model.latents import scale_latents
from ..model.tiny import (
    DEFAULT_WORDS,
    TinySDXLConfig,
    build_scheduler,
    build_text_encoders,
    build_unet,
)
from ..model.tiny import build_tokenizer as tiny_tokenizer
from ..training.config import Schedule
from ..training.loss import diffusion_loss
from ..training.optim import adamw, ema_decay, ema_update, lr_factor, optimizer_step, set_lr
from .assets import BASE_DIR_NAME, DemoSettings, recorded_timings
from .objects import OBJECTS
from .world import generate_world, world_vocabulary, write_world

Log = Callable[[str], None]

DEMO_MODEL = TinySDXLConfig(
    text_width_1=64,
    text_width_2=64,
    text_layers=2,
    text_heads=4,
    # 32 -> 16 -> 8 latent cells: the bottleneck sees the whole layout
    unet_channels=(32, 64, 128),
    unet_layers_per_block=1,
    unet_head_dim=(2, 4, 8),  # attention heads per level (diffusers' legacy name): 16 wide
    unet_transformer_layers=(1, 1, 1),
    time_embed_dim=32,
    norm_groups=16,
    vae_channels=(16, 32, 64),  # 4x downsampling: 128 px images -> 32x32x4 latents
    vae_layers_per_block=1,
    sample_size=128,  # native image side, so generate's default size is 128 px
)


@dataclass(frozen=True)
class BuildConfig:
    """Sizes, steps and seeds of a demo build. ``quick()`` is a smoke-test version."""

    seed: int = 0  # every other seed derives from this one
    image_size: int = 128  # the world renders and the model's native size
    base_instances: int = 2000  # assembled renders for the base (200 per object)
    # Single parts on white, captioned as parts-first boards ask for them (100 per object):
    # a base that has seen parts alone can draw a board's parts.
    base_part_instances: int = 1000
    # Share of the product shots captioned with a scenario preset's prompt instead
    # (see with_preset_wording): the base then draws the object asked for under any preset.
    base_preset_share: float = 0.25
    vae_instances: int = 400  # x 3 views for the autoencoder
    # The LoRA's set: parts-first boards of the base's own part renders (dataset synth),
    # balanced over the objects and the knolling and exploded-view presets.
    lora_boards: int = 800
    lora_part_variants: int = 6  # drawings of each part the boards choose among
    lora_board_tries: int = 3  # boards tried per item before it is left out
    lora_val_split: float = 0.05  # boards held out of the LoRA's training, for validation
    # Fully apart only: a pulled-together view has touching parts, which the eval's analyser
    # (rightly) cannot count, and the LoRA's job here is to take things apart.
    lora_explode: tuple[float, float] = (1.0, 1.0)
    lora_layout_scale: tuple[float, float] = (0.8, 1.0)  # the layout's share of the image
    # Only for quick(): its untrained base draws no usable part, so the LoRA step is checked
    # on world renders instead. A real build with no accepted board stops with an error.
    lora_world_fallback: bool = False
    vae_steps: int = 2500  # flat colours: hue and white balance settle late
    vae_batch: int = 8
    vae_crop: int = 48  # the autoencoder is convolutional; crops train it 7x faster
    vae_lr: float = 2e-3
    vae_kl_weight: float = 1e-6  # just enough to keep latents bounded
    # Whole-image pass of the decoder after the crop training (see tune_vae_decoder)
    vae_decoder_steps: int = 600
    vae_decoder_lr: float = 5e-4
    unet_steps: int = 5000  # 10 objects and their parts (4000 sufficed for 6)
    unet_batch: int = 8
    unet_lr: float = 8e-4
    unet_warmup: int = 100
    unet_ema: float = 0.998  # averaged weights sample much cleaner after a short run
    caption_dropout: float = 0.1  # the unconditional case classifier-free guidance needs
    min_snr_gamma: float = 5.0  # Min-SNR weighting (Hang et al. 2023): faster convergence
    lora_steps: int = 3000
    lora_batch: int = 8
    lora_rank: int = 16
    # 2e-3 on 400 instances beat 1e-3 on 240 in a trial: 29% vs 17% knolling layouts
    lora_lr: float = 2e-3
    lora_targets: str = "attn-ff-conv"  # layout is spatial: the convolutions must change too
    # Offset noise lets the LoRA set an image's overall tone (a white background) instead
    # of inheriting it from the seed's low frequencies, as the base's tinted backdrops do.
    lora_noise_offset: float = 0.1
    threads: int = 1  # on a shared 2-core CPU, 2 threads stall on each other (OpenMP spin waits)

    def quick(self) -> BuildConfig:
        """A few steps of everything: checks the pipeline end to end in about a minute."""
        return replace(self, base_instances=48, base_part_instances=12, vae_instances=24, lora_boards=4,
                       lora_part_variants=1, lora_board_tries=1, lora_world_fallback=True,
                       vae_steps=10, vae_decoder_steps=3, unet_steps=10, lora_steps=5)  # fmt: skip


# --- 1. world renders ----------------------------------------------------------


def render_images(count: int, seed: int, views: tuple[str, ...], size: int):
    """(uint8 array N x H x W x 3, captions) of ``count`` world instances in ``views``."""
    images, captions = [], []
    for _, render in generate_world(count, seed=seed, size=size, views=views):
        images.append(np.asarray(render.image.convert("RGB")))
        captions.append(render.caption)
    return np.stack(images), captions


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1], as diffusers' VAEs expect."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# --- 2. autoencoder --------------------------------------------------------------


def train_vae(images: np.ndarray, config: BuildConfig, log: Log):
    """A KL autoencoder trained on random crops with MSE plus a tiny KL term."""
    from diffusers import AutoencoderKL

    torch.manual_seed(config.seed + 1)
    n = len(DEMO_MODEL.vae_channels)
    vae = AutoencoderKL(
        block_out_channels=DEMO_MODEL.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=DEMO_MODEL.vae_layers_per_block,
        latent_channels=4,
        norm_num_groups=DEMO_MODEL.norm_groups,
        sample_size=config.image_size,
    )
    data = to_tensor(images)
    rng = torch.Generator().manual_seed(config.seed + 2)
    opt = adamw([{"params": list(vae.parameters()), "base_lr": config.vae_lr}], weight_decay=0.0)
    started = time.monotonic()
    for step in range(1, config.vae_steps + 1):
        batch = random_crops(data, config.vae_batch, config.vae_crop, rng)
        posterior = vae.encode(batch).latent_dist
        # The posterior mean, not a sample: the noise of a fresh VAE's wide posterior washes
        # out colours for hundreds of steps; the KL term still keeps the latents bounded.
        recon = vae.decode(posterior.mean).sample
        loss = torch.nn.functional.mse_loss(recon, batch)
        loss = loss + config.vae_kl_weight * posterior.kl().mean()
        step_at(opt, loss, cosine_factor(step, config.vae_steps, 50))
        if step % 100 == 0 or step == config.vae_steps:
            log(f"  vae step {step}/{config.vae_steps}  loss {loss.item():.5f}  "
                f"{time.monotonic() - started:.0f} s")  # fmt: skip
    vae.eval().requires_grad_(False)
    set_latent_scale(vae, data[: min(len(data), 256)])
    return vae


def tune_vae_decoder(vae, images: np.ndarray, config: BuildConfig, log: Log):
    """Fine-tune the decoder on whole images with the encoder frozen.

    The decoder's GroupNorms and mid-block attention see the whole image at generation
    time but only a crop in training, and the two disagree: a crop-trained decoder turns a
    white backdrop grey away from the parts, leaving a white halo round them (on a thin
    exploded view that halo reads as one big part). The encoder, and so every latent the
    base and the LoRA train on, stays exactly as it was.
    """
    data = to_tensor(images)
    latents = encode_means(vae, data)
    decoder = [*vae.post_quant_conv.parameters(), *vae.decoder.parameters()]
    for p in decoder:
        p.requires_grad_(True)
    opt = adamw([{"params": decoder, "base_lr": config.vae_decoder_lr}], weight_decay=0.0)
    # its own generator: the steps after this one draw exactly what they drew without it
    rng = torch.Generator().manual_seed(config.seed + 7)
    started = time.monotonic()
    for step in range(1, config.vae_decoder_steps + 1):
        idx = torch.randint(len(data), (config.vae_batch,), generator=rng)
        loss = torch.nn.functional.mse_loss(vae.decode(latents[idx]).sample, data[idx])
        step_at(opt, loss, cosine_factor(step, config.vae_decoder_steps, 20))
        if step % 100 == 0 or step == config.vae_decoder_steps:
            log(f"  vae decoder step {step}/{config.vae_decoder_steps}  loss {loss.item():.5f}  "
                f"{time.monotonic() - started:.0f} s")  # fmt: skip
    vae.eval().requires_grad_(False)
    return vae


@torch.no_grad()
def encode_means(vae, data: torch.Tensor) -> torch.Tensor:
    """The posterior means of ``data`` (NCHW in [-1, 1]), unscaled, 32 images at a time."""
    return torch.cat([vae.encode(b).latent_dist.mean for b in data.split(32)])


@torch.no_grad()
def reconstruct(vae, images: np.ndarray) -> np.ndarray:
    """uint8 NHWC images through the autoencoder and back (posterior means, no sampling)."""
    recon = vae.decode(encode_means(vae, to_tensor(images))).sample
    return ((recon.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_reconstructions(vae, images: np.ndarray, path: Path) -> Path:
    """Originals above their reconstructions: a quick look at what the latents keep."""
    from PIL import Image

    pixels = reconstruct(vae, images)
    sheet = np.concatenate([np.concatenate(list(images), 1), np.concatenate(list(pixels), 1)], 0)
    with atomic_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    return path


def random_crops(data: torch.Tensor, batch: int, crop: int, rng: torch.Generator) -> torch.Tensor:
    idx = torch.randint(len(data), (batch,), generator=rng)
    side = data.shape[-1]
    xs = torch.randint(side - crop + 1, (batch,), generator=rng) // 4 * 4
    ys = torch.randint(side - crop + 1, (batch,), generator=rng) // 4 * 4
    return torch.stack(
        [data[i, :, y : y + crop, x : x + crop] for i, x, y in zip(idx, xs, ys, strict=True)]
    )


def set_latent_scale(vae, sample: torch.Tensor) -> None:
    """Store 1/std of the latents as the VAE's scaling factor (SD's convention: unit variance)."""
    latents = encode_means(vae, sample)
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))


def step_at(
    opt: torch.optim.Optimizer, loss: torch.Tensor, factor: float, max_grad_norm: float = 0.0
) -> None:
    """One optimiser step at ``factor`` times the peak lr (the schedules here set it every step),
    the gradient norm clipped to ``max_grad_norm`` (0: not clipped)."""
    set_lr(opt, factor)
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"]]
    optimizer_step(opt, params, max_grad_norm=max_grad_norm)


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """The demo's schedule, the trainer's ``lr_factor`` with the demo's differences: steps
    counted from 1 with a warm-up ramp of step/warmup, then cosine decay to 10% of the peak."""
    return lr_factor(
        step, warmup=warmup, total=total, decay=Schedule.COSINE, floor=0.1, warmup_offset=0
    )


def render_base_data(config: BuildConfig) -> tuple[np.ndarray, list[str]]:
    """The base's training data: assembled product shots, then single parts on white."""
    size = config.image_size
    images, captions, objects = [], [], []
    for _, render in generate_world(config.base_instances, seed=config.seed + 20, size=size,
                                    views=("assembled",)):  # fmt: skip
        images.append(np.asarray(render.image.convert("RGB")))
        captions.append(render.caption)
        objects.append(render.object)
    images = np.stack(images)
    captions = with_preset_wording(captions, objects, config.base_preset_share, config.seed + 22)
    if config.base_part_instances:
        parts, part_captions = render_images(
            config.base_part_instances, config.seed + 21, ("part",), size
        )
        images, captions = np.concatenate([images, parts]), captions + part_captions
    return images, captions


def with_preset_wording(captions: list[str], objects: list[str], share: float,
                        seed: int) -> list[str]:  # fmt: skip
    """Captions, a ``share`` of them replaced by a scenario preset's prompt for the same object.

    A real base model has read every kind of caption; the miniature has read only a few
    templates, so a preset's unfamiliar words swamped its object word and it drew another
    object. Seeing preset prompts over whole product shots teaches it that the object word
    decides what is drawn, and that those words alone do not take it apart: the LoRA must.
    """
    from ..prompt.presets import load_presets
    from .world import _NO_USER_FILES, object_spec

    presets = [p for p in load_presets(user_dir=_NO_USER_FILES).values() if p.board]
    rng = np.random.default_rng(seed)
    out = []
    for text, key in zip(captions, objects, strict=True):
        if rng.random() < share:
            text = presets[int(rng.integers(len(presets)))].render(object_spec(key).phrase)
        out.append(text)
    return out


# --- 3. tokenizer and text encoders ------------------------------------------------


def demo_words() -> list[str]:
    """The world's words plus every word of the shipped presets, so preset prompts stay whole."""
    from ..prompt.presets import load_presets

    words = set(world_vocabulary()) | set(DEFAULT_WORDS)
    for preset in load_presets().values():
        text = " ".join([preset.trigger, preset.template, preset.negative, *preset.examples])
        words |= set(re.findall(r"[a-z]+", text.lower()))
    return sorted(words)


def build_text_stack(work_dir: Path, seed: int):
    """(tokenizer, text_encoder, text_encoder_2): frozen random CLIP encoders still give each
    prompt its own embedding, which is all the UNet needs to learn from."""
    config = replace(DEMO_MODEL, words=tuple(demo_words()))
    tokenizer = tiny_tokenizer(config.words, work_dir / "tokenizer_src")
    torch.manual_seed(seed)
    te1, te2 = build_text_encoders(config, len(tokenizer), tokenizer)
    for encoder in (te1, te2):
        encoder.eval().requires_grad_(False)
    return tokenizer, te1, te2


def make_pipeline(vae, tokenizer, te1, te2, unet):
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=build_scheduler(),
        # an empty negative is encoded like the empty captions the UNet trained with
        force_zeros_for_empty_prompt=False,
    )  # fmt: skip


@torch.no_grad()
def encode_captions(pipe, captions: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each distinct caption -> (token embeddings 77 x D, pooled embedding), as generation encodes."""
    table = {}
    for caption in sorted(set(captions)):
        embeds, _, pooled, _ = pipe.encode_prompt(
            caption, device=torch.device("cpu"), num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )  # fmt: skip
        table[caption] = (embeds[0], pooled[0])
    return table


# --- 4. base UNet ---------------------------------------------------------------------


def encode_latents(vae, images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC images -> the scaled latents the UNet trains on."""
    return scale_latents(encode_means(vae, to_tensor(images)), vae.config)


def train_base_unet(latents: torch.Tensor, captions: list[str], text: dict, config: BuildConfig,
                    log: Log):  # fmt: skip
    """An SDXL-style UNet from scratch: epsilon prediction, SDXL's schedule, EMA weights.

    The trainer's loss, schedule, optimiser step and EMA, with the demo's own settings:
    batches drawn from one generator, AdamW with weight decay 1e-2, clipping at 1.0, steps
    counted from 1, and SNR computed as ᾱ/(1−ᾱ) (``snr_table``).
    """
    from diffusers import DDPMScheduler

    torch.manual_seed(config.seed + 3)
    unet = build_unet(DEMO_MODEL)
    ema = copy.deepcopy(unet).requires_grad_(False)
    schedule = DDPMScheduler.from_config(build_scheduler().config)
    alphas = schedule.alphas_cumprod
    snr_table = alphas / (1 - alphas)
    uncond = text[""]
    side = config.image_size
    time_ids = torch.tensor([side, side, 0, 0, side, side], dtype=torch.float32)
    rng = torch.Generator().manual_seed(config.seed + 4)
    opt = adamw([{"params": list(unet.parameters()), "base_lr": config.unet_lr}], weight_decay=1e-2)
    started = time.monotonic()
    for step in range(1, config.unet_steps + 1):
        idx = torch.randint(len(latents), (config.unet_batch,), generator=rng)
        drop = torch.rand(config.unet_batch, generator=rng) < config.caption_dropout
        embeds, pooled = zip(
            *(uncond if d else text[captions[i]] for i, d in zip(idx, drop, strict=True)),
            strict=True,
        )
        loss = diffusion_loss(
            unet, latents[idx], torch.stack(embeds), torch.stack(pooled),
            time_ids.expand(config.unet_batch, 6), schedule, rng,
            min_snr_gamma=config.min_snr_gamma, snr_table=snr_table,
        )  # fmt: skip
        factor = cosine_factor(step, config.unet_steps, config.unet_warmup)
        step_at(opt, loss, factor, max_grad_norm=1.0)
        ema_update(ema.parameters(), unet.parameters(), ema_decay(step, config.unet_ema))
        if step % 100 == 0 or step == config.unet_steps:
            log(f"  unet step {step}/{config.unet_steps}  loss {loss.item():.4f}  "
                f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return ema.eval()


# --- 5. save --------------------------------------------------------------------------------


def save_base(pipe, out_dir: Path) -> Path:
    """A diffusers SDXL folder with fp16 weights (half the bytes; loads as fp32 on CPU)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    half = copy.deepcopy(pipe).to(torch.float16)
    half.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


# --- 6. LoRA, with our trainer ------------------------------------------------------------------


def write_lora_dataset(base_dir: Path, out_dir: Path, config: BuildConfig,
                       hold_out: tuple[str, ...], log: Log) -> Path:  # fmt: skip
    """Parts-first boards of the demo base's own part renders (``dataset synth``), captioned
    from their plans: never the world's ground-truth knolling or exploded renders, so the LoRA
    is what the recipe makes from a base model alone."""
    from ..generate.engine import Engine
    from ..synth.dataset import SynthConfig, synth_dataset
    from .world import object_spec

    if out_dir.exists():
        shutil.rmtree(out_dir)  # boards of an earlier base would teach the wrong parts
    objects = tuple(o.phrase for o in OBJECTS if o.key not in hold_out)
    for key in hold_out:
        object_spec(key)  # an unknown name is refused, not silently kept in the set
    engine = Engine.load(str(base_dir), device="cpu", dtype="float32")
    synth = SynthConfig(
        objects=objects, presets=("knolling", "exploded-view"), count=config.lora_boards,
        seed=config.seed + 100, explode=config.lora_explode, scale=config.lora_layout_scale,
        variants=config.lora_part_variants, tries=config.lora_board_tries,
    )  # fmt: skip

    def progress(done: int, total: int, kept: int) -> None:
        if done % 50 == 0 or done == total:
            log(f"  boards {done}/{total} ({kept} kept)")

    report = synth_dataset(engine, synth, out_dir, request=DemoSettings().request(),
                           progress=progress)  # fmt: skip
    log("  " + report.format().replace("\n", "\n  "))
    if report.accepted == 0:
        if not config.lora_world_fallback:
            raise GenerationError(
                f"the demo base drew no board the analyser accepted ({report.boards_drawn} drawn); "
                "its part renders are not usable: train the base longer"
            )
        log("  no board accepted (an untrained quick base): the LoRA step trains on world "
            "renders instead, only to check that it runs")  # fmt: skip
        write_world(out_dir, 4, seed=config.seed + 100, size=config.image_size,
                    views=("knolling", "exploded"), overwrite=True)  # fmt: skip
    return out_dir


def demo_train_config(base_dir: Path, data_dir: Path, work_dir: Path, config: BuildConfig):
    """The trainer's settings for the demo LoRA (``lora bootstrap`` on a demo base uses them too)."""
    from ..training import config as tc

    return tc.TrainConfig(
        seed=config.seed + 5,
        model=tc.ModelConfig(base=str(base_dir), precision="no"),
        dataset=tc.DatasetConfig(
            data=str(data_dir), resolution=config.image_size,
            trigger="",  # each caption already starts with its preset's trigger words
        ),
        adapter=tc.AdapterConfig(
            rank=config.lora_rank, alpha=float(config.lora_rank), targets=config.lora_targets
        ),
        optim=tc.OptimConfig(
            optimizer="adamw", lr=config.lora_lr, warmup_steps=min(50, config.lora_steps // 4),
            schedule="cosine", max_steps=config.lora_steps, batch_size=config.lora_batch,
        ),
        loss=tc.LossConfig(
            min_snr_gamma=config.min_snr_gamma, noise_offset=config.lora_noise_offset
        ),
        samples=tc.SampleConfig(sample_every=0, sample_cfg=DemoSettings().cfg),
        output=tc.OutputConfig(
            out=str(work_dir), name="structure_lora", checkpoint_every=0, log_every=10,
            recommended_scale=DemoSettings().lora_scale,
        ),
        # Watch it learn: a held-out loss, and layouts drawn from held-out captions and
        # judged by the analyser, both in the loss plot. The final weights ship either way
        # (the build is a fixed recipe); the best step is kept beside them for comparison.
        validation=tc.ValidationConfig(
            val_split=config.lora_val_split, val_every=250, layout_eval_every=500,
            layout_eval_images=8, keep_best=True,
        ),
    )  # fmt: skip


def train_demo_lora(base_dir: Path, data_dir: Path, work_dir: Path, config: BuildConfig):
    """Train the structure LoRA with ``nano_banana.training.train`` and return its result."""
    from ..training.loop import train

    return train(demo_train_config(base_dir, data_dir, work_dir, config), progress=False)


# --- 7. settings ---------------------------------------------------------------------------------


def write_demo_settings(path: Path, settings: DemoSettings, build: BuildConfig,
                        timings: dict[str, float]) -> Path:  # fmt: skip
    lines = ["# The built-in demo model's recommended settings (written by 'nano-banana demo build').",
             "[settings]"]  # fmt: skip
    lines += [f"{k} = {_toml(v)}" for k, v in asdict(settings).items()]
    lines += ["", "[build]"] + [f"{k} = {_toml(v)}" for k, v in asdict(build).items()]
    lines += ["", "[build_seconds]"] + [
        f"{k.replace(' ', '_')} = {v:.1f}" for k, v in timings.items()
    ]
    return write_text(path, "\n".join(lines) + "\n")


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


# --- all together ----------------------------------------------------------------------------------


@dataclass
class BuildResult:
    out_dir: Path
    base_dir: Path
    lora_path: Path
    settings_path: Path
    timings: dict[str, float]


def build_demo(out_dir: Path, config: BuildConfig = BuildConfig(), work_dir: Path | None = None,
               log: Log = print, lora_only: bool = False,
               hold_out: tuple[str, ...] = ()) -> BuildResult:  # fmt: skip
    """Build the demo base model and LoRA into ``out_dir`` (NAME/, structure_lora.safetensors).

    ``lora_only`` keeps the base model already in ``out_dir`` and retrains only the LoRA.
    ``hold_out`` names world objects left out of the LoRA's boards: that LoRA is written beside
    the shipped one (``held_out_lora_name``), which it never replaces, with the base kept.
    """
    if hold_out and not lora_only:
        raise InvalidSettingError(
            "--hold-out trains a second LoRA on the kept base; add --lora-only"
        )
    torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    # Renders, caches and checkpoints go to the user cache, never into the package folder
    # (whose assets/ a wheel ships whole).
    work = Path(work_dir) if work_dir else Path(user_cache_dir("nano-banana")) / "demo-build"
    work.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args):
        log(f"[{name}] ...")
        started = time.monotonic()
        value = fn(*args)
        timings[name] = time.monotonic() - started
        log(f"[{name}] done in {timings[name]:.0f} s")
        return value

    base_dir = out_dir / BASE_DIR_NAME
    if not lora_only:
        build_base(base_dir, work, config, timed, log)
    elif not (base_dir / "model_index.json").is_file():
        raise InvalidSettingError(f"no base model in '{base_dir}' to train a LoRA on")
    else:  # the kept base's build times stay on record beside the new LoRA's
        timings.update(recorded_timings(out_dir / "demo.toml"))
    tag = held_out_tag(hold_out)
    data_dir = timed("synthesize lora boards", write_lora_dataset, base_dir,
                     work / f"lora_boards{tag}", config, hold_out, log)  # fmt: skip
    result = timed("train lora", train_demo_lora, base_dir, data_dir, work / f"lora{tag}", config)
    lora_path = out_dir / (
        held_out_lora_name(hold_out) if hold_out else "structure_lora.safetensors"
    )
    shutil.copyfile(result.lora_path, lora_path)
    log(f"  lora eval loss {result.eval_loss_before} -> {result.eval_loss_after}")
    settings_path = out_dir / "demo.toml"
    if not hold_out:  # the shipped settings and timings describe the shipped LoRA
        settings_path = write_demo_settings(settings_path, DemoSettings(), config, timings)
    log(f"total {sum(timings.values()):.0f} s")
    return BuildResult(out_dir, base_dir, lora_path, settings_path, timings)


def held_out_tag(hold_out: tuple[str, ...]) -> str:
    return "".join(f"-{key}" for key in hold_out)


def held_out_lora_name(hold_out: tuple[str, ...]) -> str:
    """The file of a LoRA trained without ``hold_out``'s boards (demo proof B)."""
    return f"structure_lora-without{held_out_tag(hold_out)}.safetensors"


def build_base(base_dir: Path, work: Path, config: BuildConfig, timed, log: Log) -> Path:
    """Steps 1-5: world renders, VAE, text encoders, base UNet, saved as a diffusers folder."""
    size = config.image_size
    vae_images, _ = timed("render vae data", render_images, config.vae_instances,
                          config.seed + 10, ("assembled", "knolling", "exploded"), size)  # fmt: skip
    vae = timed("train vae", train_vae, vae_images, config, log)
    vae = timed("tune vae decoder", tune_vae_decoder, vae, vae_images, config, log)
    save_reconstructions(vae, vae_images[::97][:8], work / "vae_check.png")
    tokenizer, te1, te2 = timed("text encoders", build_text_stack, work, config.seed + 6)
    pipe = make_pipeline(vae, tokenizer, te1, te2, build_unet(DEMO_MODEL))
    images, captions = timed("render base data", render_base_data, config)
    latents = timed("encode base data", encode_latents, vae, images)
    text = encode_captions(pipe, captions + [""])
    pipe.unet = timed("train base unet", train_base_unet, latents, captions, text, config, log)
    return timed("save base", save_base, pipe, base_dir)
