"""The generation engine: built once with a base model and LoRAs, called many times.

``Engine.generate(request)`` runs in numbered steps, each a named helper:

1. validate the request (seed drawn if random) and plan the prompt (preset, token check);
2. under the engine's lock: set this job's adapter weights and a fresh scheduler;
3. denoise to latents, reporting progress and honouring cancellation;
4. decode with the VAE, retrying in fp32 if half precision gave NaNs;
5. return the image with the record of everything that made it.

A diffusers pipeline is not thread-safe (its scheduler keeps a step index, and
LoRA adapter state is global to it), so one job at a time holds the lock, and
every job sets all of the state it depends on.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

from ..errors import CancelledError, GenerationError, InvalidSettingError, LoraError
from ..gallery.record import GenerationRecord, LoraUse
from ..lora import load as lora_lib
from ..model.latents import scale_latents, unscale_latents
from ..model.load import BaseSpec, load_base
from ..model.memory import MemoryPlan, oom_advice, place_pipeline
from ..prompt.loratags import apply_lora_tags, lora_aliases
from ..prompt.plan import PromptPlan, plan_prompt
from ..prompt.presets import Preset, get_preset, load_presets
from ..settings import (
    GenerationRequest,
    LoraWeight,
    Sampler,
)
from .events import GenerationResult, ProgressCallback, ProgressEvent
from .photo import PHOTO_NOT_FOR_BOARDS, check_image_to_image, image_to_image_steps, photo_facts
from .spec import parse_lora_arg
from .speed import SpeedConfig, SpeedState


def plan_request(
    request: GenerationRequest,
    presets: dict[str, Preset],
    tokenizers,
    aliases: dict[str, tuple[str, ...]],
) -> PromptPlan:
    """The final prompts of ``request``: its ``<lora:>`` tags taken out (they never reach
    the text encoders), its preset applied, both prompts fitted to ``tokenizers``' window.

    An engine plans with its own tokenizer copies; a pool's web process plans with the
    copies its workers sent, so both show the same final prompt.
    """
    request = apply_lora_tags(request, aliases)
    preset = get_preset(presets, request.preset)
    return plan_prompt(preset, request.prompt, request.negative_prompt, tokenizers)


@dataclass
class LoadedLora:
    file: lora_lib.LoraFile | None  # None: an adapter adopted from the pipeline (being trained)
    weight: float  # default weight when a request does not name its LoRAs


class Engine:
    """One pipeline, its LoRAs and presets; thread-safe, one job at a time."""

    def __init__(
        self,
        pipe,
        base_name: str,
        base_hash: str | None = None,
        vae: str | None = None,
        presets: dict[str, Preset] | None = None,
        speed: SpeedConfig | None = None,
        memory: MemoryPlan | None = None,
    ):
        self.pipe = pipe
        self.memory = memory or MemoryPlan()  # how load_base placed the pipeline
        self.base_name = base_name
        self.base_hash = base_hash
        self.vae_name = vae
        self.presets = presets if presets is not None else load_presets()
        self._loras: dict[str, LoadedLora] = {}
        self._lock = threading.Lock()
        # Fast tokenizers keep truncation/padding state that each call resets, so a
        # prompt check running beside a job would corrupt the job's encoding. Plans
        # use their own copies, with a lock of their own so they never wait for a job.
        self._plan_tokenizers = (copy.deepcopy(pipe.tokenizer), copy.deepcopy(pipe.tokenizer_2))
        self._plan_lock = threading.Lock()
        self._img2img = None  # built on first use (_image_to_image)
        pipe.set_progress_bar_config(disable=True)
        # speed hook (speed.py): fused LoRA, prompt cache, precision, compile. A pipeline
        # handed in from outside (e.g. the trainer's) is left as it is unless asked.
        self.speed = SpeedState(pipe, speed or SpeedConfig.reference())

    # --- building ---------------------------------------------------------

    @classmethod
    def load(
        cls,
        base: str,
        vae: str | None = None,
        loras: Iterable[str | Path] = (),
        device: str = "auto",
        dtype: str = "auto",
        preset_dir: Path | None = None,
        speed: SpeedConfig | None = None,
        base_config: str | None = None,
        offload: str = "auto",
        vae_tiling: str = "auto",
    ) -> Engine:
        """Load a base model (repo id, folder or .safetensors) and attach LoRA files.

        ``offload`` and ``vae_tiling`` (``model/memory.py``) fit SDXL onto small GPUs;
        ``base_config`` gives a single .safetensors file its configs and tokenizers.
        """
        spec = BaseSpec(
            base,
            vae,
            device,
            dtype,
            config=base_config,
            offload=offload,
            vae_tiling=vae_tiling,
        )
        loaded = load_base(spec)
        speed = (speed or SpeedConfig()).respecting_dtype(dtype)  # our own pipeline: fast path
        speed = speed.respecting_offload(loaded.memory.offload)
        engine = cls(
            loaded.pipe,
            loaded.name,
            loaded.file_hash,
            vae,
            load_presets(preset_dir),
            speed=speed,
            memory=loaded.memory,
        )
        for spec in loras:
            path, weight = parse_lora_arg(spec)
            engine.add_lora(path, weight=weight)
        return engine

    def add_lora(self, path: str | Path, name: str | None = None, weight: float = 1.0):
        """Read a LoRA file safely and attach it as a named adapter."""
        lora = lora_lib.read_lora(path, name=name)
        with self._lock:
            if lora.name in self._loras:
                raise LoraError(f"a LoRA named '{lora.name}' is already loaded; pass another name")
            self.speed.before_lora_change()  # speed hook: unfuse before PEFT sees the model
            lora_lib.attach_lora(self.pipe, lora)
            self._loras[lora.name] = LoadedLora(lora, weight)
        return lora

    @classmethod
    def from_pipeline(cls, pipe, base_name: str = "(in-memory pipeline)") -> Engine:
        """Wrap a pipeline that is already built, e.g. the trainer's, to render through the engine."""
        return cls(pipe, base_name)

    def adopt_adapter(self, name: str, weight: float = 1.0) -> None:
        """Treat an adapter already inside the pipeline (one being trained) like a loaded LoRA."""
        with self._lock:
            if name in self._loras:
                raise LoraError(f"a LoRA named '{name}' is already loaded; pass another name")
            self._loras[name] = LoadedLora(None, weight)

    def remove_lora(self, name: str) -> None:
        with self._lock:
            if name not in self._loras:
                raise LoraError(f"no LoRA named '{name}' is loaded")
            if self._loras[name].file is not None:  # adopted adapters belong to their owner
                self.speed.before_lora_change()  # speed hook: unfuse before PEFT sees the model
                lora_lib.detach_lora(self.pipe, name)
            del self._loras[name]

    @property
    def loras(self) -> dict[str, lora_lib.LoraFile]:
        """LoRAs loaded from files, by adapter name."""
        return {name: ld.file for name, ld in self._loras.items() if ld.file is not None}

    @property
    def adapter_names(self) -> list[str]:
        """Every adapter a request may name: file LoRAs and adopted ones."""
        return list(self._loras)

    @property
    def native_size(self) -> tuple[int, int]:
        """(width, height) the model was trained at: the UNet's latent size times the VAE's scale."""
        side = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        return side, side

    @property
    def device(self) -> torch.device:
        """Where the model computes; offloaded weights rest in host memory between calls."""
        if self.memory.offloaded:
            return self.pipe._execution_device
        return self.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    def trigger_words(self) -> list[str]:
        """Trigger words stored in the loaded LoRAs' metadata, to offer the user."""
        words: list[str] = []
        for lora in self.loras.values():
            words += [w for w in lora.trigger_words if w not in words]
        return words

    # --- planning -------------------------------------------------------------

    def preset(self, preset_id: str) -> Preset:
        return get_preset(self.presets, preset_id)

    def plan(self, request: GenerationRequest) -> PromptPlan:
        """The final prompts for ``request`` and their token counts, without generating."""
        aliases = {n: lora_aliases(n, ld.file) for n, ld in self._loras.items()}
        with self._plan_lock:
            return plan_request(request, self.presets, self._plan_tokenizers, aliases)

    def apply_lora_tags(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with A1111 ``<lora:NAME:WEIGHT>`` tags taken out of its prompt and
        applied as its LoRA weights (``prompt.loratags``); unchanged without tags."""
        aliases = {n: lora_aliases(n, ld.file) for n, ld in self._loras.items()}
        return apply_lora_tags(request, aliases)

    def lora_weights(self, request: GenerationRequest) -> dict[str, tuple[float, float]]:
        """Each LoRA of this request: (its own weight, effective strength = weight x lora_scale)."""
        chosen = request.loras
        if chosen is None:
            chosen = tuple(LoraWeight(n, ld.weight) for n, ld in self._loras.items())
        weights = {}
        for lw in chosen:
            if lw.name not in self._loras:
                loaded = ", ".join(self._loras) or "none"
                raise InvalidSettingError(f"request names LoRA '{lw.name}', loaded: {loaded}")
            weights[lw.name] = (lw.weight, lw.weight * request.lora_scale)
        return weights

    # --- generating -----------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        init_image: Image.Image | None = None,
    ) -> GenerationResult:
        """Make one image. Raises our errors for user problems; cancelling raises CancelledError.

        With ``init_image`` the image is redrawn at ``request.strength`` (image to image);
        with ``request.compose`` the result is a parts-first board (``generate/boards.py``).
        """
        request = self.apply_lora_tags(request.sized(*self.native_size).validated())
        if request.compose:
            if init_image is not None:
                raise InvalidSettingError(PHOTO_NOT_FOR_BOARDS)
            return self._generate_board(request, progress, cancel)
        source = self._init_latents_source(request, init_image)
        result = self._draw([request], progress, cancel, source)[0]
        if init_image is not None:  # the record says what the image started from
            result.record = replace(result.record, init_image=photo_facts(init_image))
        return result

    def generate_batch(
        self, requests: list[GenerationRequest], cancel: threading.Event | None = None
    ) -> list[GenerationResult]:
        """Draw text-to-image ``requests`` that differ only in prompt, negative prompt and seed
        in one pipeline call: each UNet evaluation denoises them all (what a parts-first
        board's parts use). Every image starts from, and is noised by, its own seed's
        generator, so it is ``generate``'s image for its request up to float rounding."""
        requests = [self.apply_lora_tags(r.sized(*self.native_size).validated()) for r in requests]
        check_batchable(requests)
        return self._draw(requests, None, cancel)

    def _draw(
        self,
        requests: list[GenerationRequest],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        source: Image.Image | None = None,
    ) -> list[GenerationResult]:
        """Steps 2-5 for one request, or a batch sharing every setting but prompt and seed."""
        request = requests[0]
        plans = [self.plan(r) for r in requests]
        weights = self.lora_weights(request)
        with self._lock:
            started = time.perf_counter()
            active = {n: eff for n, (_, eff) in weights.items()}
            self.speed.set_adapters(active)  # speed hook: lora.apply_adapter_state, or fused
            self.pipe.scheduler = make_scheduler(request.sampler, self.pipe.scheduler.config)
            latents = self._denoise(requests, plans, progress, cancel, started, active, source)
            # decoded one by one: the VAE decode, not the UNet, is a call's memory peak
            images = [self.decode(latents[i : i + 1]) for i in range(len(requests))]
            duration = time.perf_counter() - started
        share = duration / len(requests)
        return [GenerationResult(image, self._record(r, plan, weights, share), plan)
                for r, plan, image in zip(requests, plans, images, strict=True)]  # fmt: skip

    def _generate_board(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> GenerationResult:
        from .boards import make_board_for  # the board's steps call back into this engine

        started = time.perf_counter()
        plan, weights = self.plan(request), self.lora_weights(request)  # as the board starts
        board = make_board_for(self, request, progress, cancel)
        record = self._record(request, plan, weights, time.perf_counter() - started)
        return GenerationResult(board.image, replace(record, board=board.record()), plan)

    def _init_latents_source(
        self, request: GenerationRequest, init_image: Image.Image | None
    ) -> Image.Image | None:
        """The input image at the request's size, or None; refuses settings that draw nothing."""
        if init_image is None:
            return None
        check_image_to_image(request)
        return init_image.convert("RGB").resize((request.width, request.height), Image.LANCZOS)

    def encode(self, image: Image.Image) -> torch.Tensor:
        """An image to the UNet's latents: the VAE posterior's mean (not a sample, whose noise
        a light image-to-image pass would keep), scaled by the one latent convention."""
        vae = self.pipe.vae
        dtype = torch.float32 if vae.config.force_upcast else vae.dtype
        pixels = self.pipe.image_processor.preprocess(image).to(self.device, dtype)
        with self._vae_in(dtype), torch.no_grad():
            size = (pixels.shape[-1], pixels.shape[-2])
            mean = self._guard_oom(lambda: vae.encode(pixels).latent_dist.mean, size, "encoding")
        return scale_latents(mean.float(), vae.config).to(self.pipe.unet.dtype)

    def _denoise(
        self,
        requests: list[GenerationRequest],
        plans: list[PromptPlan],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        started: float,
        active: dict[str, float],
        init_image: Image.Image | None = None,
    ) -> torch.Tensor:
        request = requests[0]  # a batch shares every setting but its prompts and seeds
        pipe, total = self.pipe, request.steps
        extra = {"width": request.width, "height": request.height}
        if init_image is not None:  # the same modules through diffusers' image-to-image pipeline
            pipe = self._image_to_image()
            # latents in, as diffusers allows: it would otherwise sample the VAE posterior
            # (the size is the input's; image to image takes no width or height)
            extra = {"image": self.encode(init_image), "strength": request.strength}
            total = image_to_image_steps(request.steps, request.strength)

        def on_step_end(pipe, step: int, timestep, tensors: dict) -> dict:
            if cancel is not None and cancel.is_set():
                raise CancelledError("generation cancelled")
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress(ProgressEvent(step + 1, total, elapsed, tensors.get("latents")))
            return tensors

        if cancel is not None and cancel.is_set():
            raise CancelledError("generation cancelled before it started")
        generator = seed_generators([r.seed for r in requests])
        # speed hook: cached prompt embeddings (or the prompts), inference mode
        prompts = stack_prompt_kwargs(
            [self.speed.prompt_kwargs(p.prompt, p.negative, request.cfg, active) for p in plans]
        )

        def run():
            with self.speed.denoise_context():
                return pipe(
                    **prompts,
                    **extra,
                    num_inference_steps=request.steps,
                    guidance_scale=request.cfg,
                    generator=generator,
                    output_type="latent",
                    callback_on_step_end=on_step_end,
                    callback_on_step_end_tensor_inputs=["latents"],
                )

        return self._guard_oom(run, (request.width, request.height), "denoising").images

    def _guard_oom(self, call: Callable, size: tuple[int, int], stage: str):
        """Run ``call`` (``stage``: encoding, denoising or decoding); a CUDA out-of-memory error
        frees what it can and becomes our error, naming the memory savers to try next."""
        try:
            return call()
        except torch.OutOfMemoryError:
            pass  # leave the except block first: its traceback holds the failed step's tensors
        release_device_memory()
        raise GenerationError(
            f"out of memory on {self.device} while {stage} at {size[0]}x{size[1]}; "
            f"{oom_advice(self.memory, vae=stage != 'denoising')}"
        )

    def _image_to_image(self):
        """diffusers' SDXL image-to-image pipeline over this engine's own modules (no copies),
        with this job's scheduler."""
        from diffusers import StableDiffusionXLImg2ImgPipeline

        if self._img2img is None:
            self._img2img = StableDiffusionXLImg2ImgPipeline.from_pipe(self.pipe)
            self._img2img.set_progress_bar_config(disable=True)
            if self.memory.offload == "model":
                # the hooks live on the shared modules, but the list that puts every model
                # back in host memory after a call is each pipeline's own; tiling is the VAE's
                place_pipeline(self._img2img, replace(self.memory, vae_tiling=False), self.device)
        self._img2img.scheduler = self.pipe.scheduler
        return self._img2img

    def decode(self, latents: torch.Tensor) -> Image.Image:
        """Latents to a PIL image; a NaN decode in half precision is retried in fp32, never returned."""
        if not torch.isfinite(latents).all():
            raise GenerationError(self._nan_latents_message())
        vae = self.pipe.vae
        first = (
            torch.float32 if (vae.dtype == torch.float16 and vae.config.force_upcast) else vae.dtype
        )
        first = self.speed.vae_first_dtype() or first  # speed hook: e.g. bf16 on CUDA
        pixels = self._decode_as(latents, first)
        if not torch.isfinite(pixels).all() and first != torch.float32:
            pixels = self._decode_as(latents, torch.float32)
        if not torch.isfinite(pixels).all():
            raise GenerationError(
                "the VAE decode gave NaN even in fp32; use another VAE (--vae) or check the model"
            )
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")[0]

    def _nan_latents_message(self) -> str:
        """Why the UNet's output is not finite: in float32 with LoRAs loaded, not the precision
        but a LoRA's weights (huge but finite values overflow the activations)."""
        if self.dtype == torch.float32 and self._loras:
            names = ", ".join(
                f"'{name}'" + (f" ({ld.file.path.name})" if ld.file is not None else "")
                for name, ld in self._loras.items()
            )
            return (
                f"the UNet produced NaN/Inf latents in float32 with LoRA {names}: its weights "
                "are too large for this model; lower the LoRA scale or use another LoRA"
            )
        return (
            "the UNet produced NaN/Inf latents (half-precision overflow?); try --dtype float32 "
            "or bfloat16, or a lower LoRA scale"
        )

    def _decode_as(self, latents: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        vae = self.pipe.vae
        with self._vae_in(dtype), torch.no_grad():
            latents = unscale_latents(latents.to(dtype), vae.config)
            scale = self.pipe.vae_scale_factor
            size = (latents.shape[-1] * scale, latents.shape[-2] * scale)
            decoded = self._guard_oom(
                lambda: vae.decode(latents, return_dict=False)[0], size, "decoding"
            )
            return decoded.float()

    @contextlib.contextmanager
    def _vae_in(self, dtype: torch.dtype) -> Iterator[None]:
        """The VAE cast to ``dtype`` for one encode or decode, then back (fp16 VAEs upcast)."""
        vae = self.pipe.vae
        original = vae.dtype
        if dtype != original:
            vae.to(dtype)
        try:
            yield
        finally:
            if dtype != original:
                vae.to(original)

    def _lora_use(self, name: str, own: float, effective: float) -> LoraUse:
        """What the record keeps of a LoRA; adopted adapters have no file (nor hashes) yet."""
        file = self._loras[name].file
        if file is None:
            return LoraUse(name, "(in training)", "", own, effective)
        return LoraUse(name, file.path.name, file.sha256, own, effective, file.data_sha256)

    def _record(
        self,
        request: GenerationRequest,
        plan: PromptPlan,
        weights: dict[str, tuple[float, float]],
        duration: float,
    ) -> GenerationRecord:
        uses = tuple(self._lora_use(name, own, eff) for name, (own, eff) in weights.items())
        return GenerationRecord(
            request=request,
            prompt_used=plan.prompt,
            negative_used=plan.negative,
            prompt_tokens=plan.tokens,
            prompt_truncated=plan.truncated,
            base_model=self.base_name,
            base_model_hash=self.base_hash,
            vae=self.vae_name,
            loras=uses,
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            offload=self.memory.offload,
            vae_tiling=self.memory.vae_tiling,
            duration_s=round(duration, 3),
        )


def check_batchable(requests: list[GenerationRequest]) -> None:
    """Refuse a batch that one pipeline call cannot draw: each request must differ from the
    first only in prompt, negative prompt and seed, and be a plain text-to-image one."""
    if not requests:
        raise InvalidSettingError("a batch needs at least one request")
    first = requests[0]
    if first.compose:
        raise InvalidSettingError(
            "a parts-first board cannot be drawn in a batch; generate it alone"
        )
    for other in requests[1:]:
        if replace(other, prompt=first.prompt, negative_prompt=first.negative_prompt,
                   seed=first.seed) != first:  # fmt: skip
            raise InvalidSettingError(
                "requests drawn in one batch may differ only in prompt, negative prompt and seed"
            )


def seed_generators(seeds: list[int]) -> torch.Generator | list[torch.Generator]:
    """One CPU generator per image (CPU, so the starting noise is the same on every device).
    diffusers draws each image's noise from its own generator, so a batched image gets the
    noise it would get alone; a single image gets a plain generator, as it always has."""
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    return generators[0] if len(generators) == 1 else generators


def stack_prompt_kwargs(per_image: list[dict]) -> dict:
    """One pipeline call's prompt arguments from each image's: embeddings stacked along the
    batch, prompts (no prompt cache) as lists; ``None`` (no negative without guidance) stays."""
    if len(per_image) == 1:
        return per_image[0]
    stacked = {}
    for key, first in per_image[0].items():
        values = [kwargs[key] for kwargs in per_image]
        if first is None:
            stacked[key] = None
        elif isinstance(first, torch.Tensor):
            stacked[key] = torch.cat(values)
        else:
            stacked[key] = values
    return stacked


def make_scheduler(sampler: Sampler, config):
    """A fresh scheduler for one job: schedulers keep per-run state and must not be shared."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
    )

    classes = {
        Sampler.EULER_A: EulerAncestralDiscreteScheduler,
        Sampler.EULER: EulerDiscreteScheduler,
        Sampler.DPMPP_2M: DPMSolverMultistepScheduler,
        Sampler.DDIM: DDIMScheduler,
    }
    return classes[Sampler(sampler)].from_config(config)


def release_device_memory() -> None:
    """Give cached GPU memory back after an OOM so the next job can run."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
