"""Shared pieces of the benchmarks: the models they run on, timing probes, memory, tables.

Models, in order of preference (``resolve_models``):
  1. ``--base``/``--lora`` given on the command line;
  2. the shipped demo model (``nano_banana.demo.assets``), when it has been built;
  3. a tiny SDXL-architecture model with the demo's sizes, built here with random weights;
  4. ``--model sdxl-random``: the full-size SDXL architecture with random weights
     (``sdxl_random.py``), for GPUs.
Random LoRAs are made with a moderate strength (||BA|| = 0.3 ||W||): a LoRA far
stronger than its base saturates attention, where rounding differences flip outputs.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

HERE = Path(__file__).resolve().parent
DEFAULT_WORK = Path(os.environ.get("NANO_BANANA_BENCH_WORK", "/tmp/nano-banana-bench"))
LORA_STRENGTH = 0.3  # ||B A|| relative to ||W|| per adapted layer
ATTENTION_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass(frozen=True)
class Models:
    base: str
    lora: str
    lora2: str
    label: str  # what RESULTS.md calls it


# --- models ------------------------------------------------------------------------------


def demo_paths() -> tuple[Path, Path] | None:
    try:
        from nano_banana.demo.assets import demo_base_dir, demo_lora_path
    except ImportError:
        return None
    base = demo_base_dir()
    lora = demo_lora_path()
    if base is None or not lora.is_file():
        return None
    return base, lora


def demo_sized_config():
    """The demo model's architecture (its sizes, random weights) when the demo is not built."""
    from nano_banana.model.tiny import TinySDXLConfig

    return TinySDXLConfig(
        text_width_1=64,
        text_width_2=64,
        unet_channels=(64, 128, 128),
        unet_head_dim=(4, 8, 8),
        unet_transformer_layers=(1, 1, 1),
        time_embed_dim=32,
        norm_groups=32,
        vae_channels=(32, 64, 64),
        sample_size=128,
    )


def resolve_models(args) -> Models:
    """The base and two LoRAs to benchmark (see the module docstring for the order)."""
    work = Path(args.work)
    if args.model == "sdxl-random":
        from sdxl_random import ensure_sdxl_random

        return ensure_sdxl_random(work / "sdxl-random", args.device)
    if args.base:
        lora = args.lora or str(make_lora(args.base, work / "lora_a.safetensors", seed=1))
        lora2 = args.lora2 or str(make_lora(args.base, work / "lora_b.safetensors", seed=2))
        return Models(args.base, lora, lora2, f"--base {args.base}")
    demo = demo_paths() if args.model == "auto" else None
    if demo is not None:
        base, lora = demo
        lora2 = make_lora(base, work / "demo_lora_b.safetensors", seed=2, like=lora)
        return Models(str(base), str(lora), str(lora2), "demo model (shipped, trained)")
    from nano_banana.model.tiny import save_tiny_pipeline

    base = work / "tiny-demo-sized"
    if not (base / "model_index.json").is_file():
        save_tiny_pipeline(demo_sized_config(), base, seed=0)
    lora = make_lora(base, work / "tiny_lora_a.safetensors", seed=1)
    lora2 = make_lora(base, work / "tiny_lora_b.safetensors", seed=2)
    return Models(str(base), str(lora), str(lora2), "tiny model, demo sizes, random weights")


def lora_rank_of(path: str | Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is no dict)
            if "lora_A" in key or "lora_down" in key:
                return int(f.get_slice(key).get_shape()[0])
    return 16


def make_lora(
    base: str | Path, out: Path, seed: int, rank: int = 16, like: str | Path | None = None
) -> Path:
    """A random diffusers-format LoRA on the UNet's attention projections (cached on disk)."""
    if out.is_file():
        return out
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", use_safetensors=True)
    rank = lora_rank_of(like) if like else rank
    add_random_lora(unet, rank, seed)
    save_unet_lora(unet, out)
    del unet
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return out


def add_random_lora(unet, rank: int, seed: int, name: str = "default") -> None:
    """PEFT adapter with random A and B, B rescaled so that ||BA|| = LORA_STRENGTH ||W||."""
    import torch
    from peft import LoraConfig

    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=ATTENTION_TARGETS
    )
    unet.add_adapter(config, adapter_name=name)
    with torch.no_grad():
        for module in unet.modules():
            if hasattr(module, "lora_A") and name in module.lora_A:
                a, b = module.lora_A[name].weight, module.lora_B[name].weight
                a.normal_(0, 1.0 / a.shape[1] ** 0.5)
                b.normal_(0, 1.0 / b.shape[1] ** 0.5)
                delta = (b.float() @ a.float()).norm()
                b.mul_(LORA_STRENGTH * module.base_layer.weight.float().norm() / delta)


def save_unet_lora(unet, out: Path, name: str = "default") -> Path:
    from diffusers import StableDiffusionXLPipeline
    from peft.utils import get_peft_model_state_dict

    out.parent.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(unet, adapter_name=name)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    StableDiffusionXLPipeline.save_lora_weights(
        out.parent, unet_lora_layers=state, weight_name=out.name, safe_serialization=True
    )
    return out


# --- measuring ------------------------------------------------------------------------------


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Probe:
    """Times the denoising loop (first UNet call to the last) and the VAE decode, via hooks.

    Only two device syncs per image: before the first UNet call and after the last.
    """

    def __init__(self, pipe, device: str):
        self.device = device
        self.steps = 0  # UNet calls expected per image (set before each image)
        self._calls = 0
        self.denoise_s: list[float] = []
        self.decode_s: list[float] = []
        self._t0 = 0.0
        pipe.unet.register_forward_pre_hook(self._unet_pre)
        pipe.unet.register_forward_hook(self._unet_post)
        pipe.vae.decoder.register_forward_pre_hook(self._vae_pre)
        pipe.vae.decoder.register_forward_hook(self._vae_post)

    def expect(self, steps: int) -> None:
        self.steps, self._calls = steps, 0

    def _unet_pre(self, module, args):
        if self._calls == 0:
            sync(self.device)
            self._t0 = time.perf_counter()

    def _unet_post(self, module, args, output):
        self._calls += 1
        if self._calls == self.steps:
            sync(self.device)
            self.denoise_s.append(time.perf_counter() - self._t0)

    def _vae_pre(self, module, args):
        sync(self.device)
        self._vae_t0 = time.perf_counter()

    def _vae_post(self, module, args, output):
        sync(self.device)
        self.decode_s.append(time.perf_counter() - self._vae_t0)


def peak_memory_mb(device: str) -> float:
    """GPU: max_memory_allocated; CPU: the process's peak resident set (ru_maxrss)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_memory(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def median_spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max); NaN triple for no values."""
    if not values:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(values), min(values), max(values)


def fmt_ms(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    """'median [min-max]' of ``values`` x ``scale``."""
    med, lo, hi = median_spread([v * scale for v in values])
    if med != med:  # NaN
        return "-"
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def machine_info(device: str) -> dict:
    import diffusers
    import peft
    import torch
    import transformers

    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def write_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=1, default=str))
    print(f"\nwrote {path}")
