"""Which model an engine loads, and how: the one description the CLI, the studio and scripts share.

``EngineSpec`` holds what ``--base``, ``--base-config``, ``--vae``, ``--lora``,
``--device``, ``--dtype``, ``--offload``, ``--vae-tiling`` and ``--preset-dir``
say. Its fields carry their help text and how their default is shown, so every
image command and ``nano-banana studio`` build the same options from it.
``resolve`` applies the rule "no base means the built-in demo model",
``request_defaults`` gives the model's recommended settings (the demo's
``demo.toml``), and ``load`` builds the engine.
"""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import NanoBananaError
from ..model.memory import check_memory_options
from ..options import reject_unknown
from ..settings import LORA_SCALE_RANGE, GenerationRequest, check_float_range
from .speed_config import SpeedConfig


def _option(default: Any, help: str, *, shown: str | bool = True, flag: str | None = None) -> Any:
    """A field the command line offers: its help, how its default is shown, and its flag
    when that is not ``--field-name`` (``loras`` is ``--lora``, given once per file)."""
    metadata = {"help": help, "shown": shown}
    if flag is not None:
        metadata["flag"] = flag
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class EngineSpec:
    """A base model, its VAE and LoRAs, where to run it and the presets it serves."""

    base: str | None = _option(
        None,
        "Base SDXL model: a Hugging Face repo id (e.g. stabilityai/stable-diffusion-xl-base-1.0), "
        "a diffusers folder or a .safetensors file.",
        shown="the built-in demo model",
    )
    base_config: str | None = _option(
        None,
        "For a single-file --base: a diffusers SDXL folder (or repo id) whose configs and "
        "tokenizers to use. Without it the built-in SDXL configs are used, with CLIP's "
        "vocabulary from the Hugging Face cache.",
        shown=False,
    )
    vae: str | None = _option(
        None,
        "VAE override, e.g. the fp16-fix VAE (folder, .safetensors or repo id).",
        shown=False,
    )
    loras: tuple[str, ...] = _option(
        (),
        "LoRA .safetensors file, optionally FILE:WEIGHT; repeat for several.",
        shown=False,
        flag="--lora",
    )
    device: str = _option("auto", "auto, cpu, cuda, cuda:N or mps.")
    dtype: str = _option("auto", "auto (fp16 on GPU, fp32 on CPU), float32, float16 or bfloat16.")
    # auto: a GPU with room for the model runs as before; a small one offloads instead of
    # running out of memory (thresholds and reasons in model/memory.py).
    offload: str = _option(
        "auto",
        "Keep weights in host memory and move them to the GPU as needed, for small GPUs: "
        "none, model (one model at a time; a little slower), sequential (layer by layer; "
        "much slower, least memory) or auto (from the GPU's free memory; none on the CPU).",
    )
    vae_tiling: str = _option(
        "auto",
        "Decode (and encode) images in tiles, for big images on small GPUs: on, off or auto "
        "(on when the GPU has too little free memory for the whole model; off on the CPU).",
    )
    preset_dir: Path | None = _option(
        None,
        "Folder of extra preset .toml files.",
        shown="env NANO_BANANA_PRESETS or the user config folder",
    )
    # How the engine runs fast. Not a command-line option: the measured defaults
    # (None) suit both shells; scripts and benchmarks pass their own.
    speed: SpeedConfig | None = None

    def __post_init__(self) -> None:
        # Shells hand over lists (repeated --lora) and strings (JSON); keep the spec hashable.
        # A lone file is one LoRA, not a sequence of one-letter names.
        loras = (self.loras,) if isinstance(self.loras, (str, Path)) else self.loras or ()
        object.__setattr__(self, "loras", tuple(str(spec) for spec in loras))
        check_memory_options(self.offload, self.vae_tiling)  # before minutes of loading
        if self.preset_dir is not None:
            object.__setattr__(self, "preset_dir", Path(self.preset_dir))

    @classmethod
    def option_fields(cls) -> list[Field]:
        """The fields the command line offers, in --help order."""
        return [f for f in fields(cls) if "help" in f.metadata]

    # --- the demo default -------------------------------------------------------

    @property
    def uses_demo(self) -> bool:
        """True when no base is given and the built-in demo model is installed."""
        return self.base is None and _demo_base() is not None

    def resolve(self) -> EngineSpec:
        """This spec with its base filled in: without one, the built-in demo model (and its
        LoRA when no LoRA is given), or SDXL's repo where the demo is not installed."""
        if self.base is not None:
            return self
        demo = _demo_base()
        if demo is None:
            from ..model.load import SDXL_REPO

            return replace(self, base=SDXL_REPO)
        from ..demo.assets import demo_lora_path

        return replace(self, base=str(demo), loras=self.loras or (str(demo_lora_path()),))

    def request_defaults(self) -> GenerationRequest:
        """The request a user starts from: a demo model's recommended settings, else SDXL's."""
        try:
            from ..demo.assets import recommended_request
        except ImportError:  # pragma: no cover - only in trimmed installs
            return GenerationRequest()
        return recommended_request(self.resolve().base)  # no base: the demo, as ``resolve`` says

    # --- checks before loading -------------------------------------------------

    def check_request(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` validated and its preset found, before any model work (SDXL loads slowly)."""
        from ..prompt.presets import get_preset, load_presets

        presets = load_presets(self.preset_dir)
        get_preset(presets, request.preset)
        request = request.validated()
        if request.compose:  # the board's layout and parts, known before loading too
            from .boards import board_layout, board_object, check_unify_steps

            board_layout(request.preset, presets)
            check_unify_steps(request)
            if request.plan is None:  # a given plan names its own parts
                board_object(request)
        return request

    def check_files(self) -> None:
        """Fail now, not after minutes of loading, on a LoRA file that is not there."""
        for spec in self.loras:
            path, _ = parse_lora_arg(spec)
            if not path.is_file():
                raise NanoBananaError(f"--lora {spec}: no such file")

    # --- loading -----------------------------------------------------------------

    def load(self):
        """Load the engine this spec describes (no base: the built-in demo model)."""
        from .engine import Engine

        spec = self.resolve()
        return Engine.load(
            spec.base,
            vae=spec.vae,
            loras=spec.loras,
            device=spec.device,
            dtype=spec.dtype,
            preset_dir=spec.preset_dir,
            speed=spec.speed,
            base_config=spec.base_config,
            offload=spec.offload,
            vae_tiling=spec.vae_tiling,
        )

    # --- passing it on (the studio gets it through an environment variable) --------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (paths as strings, ``speed`` as a table) that ``from_dict`` reads."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["loras"] = list(self.loras)
        data["preset_dir"] = None if self.preset_dir is None else str(self.preset_dir)
        data["speed"] = None if self.speed is None else asdict(self.speed)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineSpec:
        """Rebuild a spec from ``to_dict`` output; unknown keys are an error, not ignored."""
        reject_unknown(data, cls, where="model settings")
        data = dict(data)
        if data.get("speed") is not None:
            reject_unknown(data["speed"], SpeedConfig, where="model settings [speed]")
            data["speed"] = SpeedConfig(**data["speed"])
        return cls(**data)


def _demo_base() -> Path | None:
    try:
        from ..demo.assets import demo_base_dir
    except ImportError:  # pragma: no cover - only in trimmed installs
        return None
    return demo_base_dir()


def parse_lora_arg(spec: str | Path) -> tuple[Path, float]:
    """``path`` or ``path:weight`` (the weight suffix only when ``path`` itself does not exist)."""
    text = str(spec)
    if Path(text).exists() or ":" not in text:
        return Path(text), 1.0
    head, _, tail = text.rpartition(":")
    try:
        weight = float(tail)
    except ValueError:
        return Path(text), 1.0
    # the weight multiplies --lora-scale, so it is held to the same bounds
    check_float_range(f"weight of --lora {text}", weight, *LORA_SCALE_RANGE)
    return Path(head), weight
