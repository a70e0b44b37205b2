"""What a parts-first board costs: UNet evaluations and seconds on the demo model, FLOPs on SDXL.

    .venv/bin/python benchmarks/bench_boards.py [--threads 1] [--seeds 1] [--batching both] [--json OUT]

1. On this machine with the demo model: for each demo object, a single knolling image and a
   composed knolling and exploded board at the demo's settings, the boards with their parts
   drawn in batches (``PartBatching``'s default) and one by one (``--batching``). A forward
   hook counts UNet calls and the images they denoise (a call with classifier-free guidance
   denoises half its batch), so a cell reads "calls / image evaluations / seconds".
2. On full-size SDXL, counted, not run: the FLOPs of one UNet evaluation (batch 2 for CFG)
   and of the VAE at 1024 and 512 px, by torch's FlopCounterMode on the meta device
   (no weights, no memory). A board's cost is then estimated for every catalog object at
   30 steps: one drawing per distinct part at 512 px, plus the unifying pass (30% of the
   steps at 1024 px, one VAE encode and decode), against one 1024 px image (30 steps, decode).
   Seconds on an H100 are that ratio times the published 2.50 s baseline per image.
   Batching changes none of these FLOPs, only how many calls carry them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

H100_SECONDS_PER_IMAGE = 2.50  # stabilityai/stable-diffusion-xl-1.0-tensorrt model card, baseline
SDXL_STEPS = 30
BUDGET = 3.0  # the bound: a board costs at most about 3 single images


def count_unet_calls(unet) -> list[int]:
    """A live [calls, samples] count of ``unet``'s forward passes and the latents they carry."""
    counts = [0, 0]

    def hook(module, args):
        counts[0] += 1
        counts[1] += args[0].shape[0]

    unet.register_forward_pre_hook(hook)
    return counts


ARMS = (("single", "knolling", False), ("knolling", "knolling", True),
        ("exploded", "exploded-view", True))  # fmt: skip


def measure_demo(seeds: int, batchings: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: object, single image, then each board arm and batching."""
    from dataclasses import replace

    from nano_banana.demo import OBJECTS
    from nano_banana.generate.boards import make_board_for
    from nano_banana.generate.spec import EngineSpec
    from nano_banana.parts.board import PartBatching

    spec = EngineSpec()
    engine = spec.load()
    defaults = spec.request_defaults()
    counts = count_unet_calls(engine.pipe.unet)
    per_image = 2 if defaults.cfg > 1 else 1  # guidance: two latents per image in a call
    columns = [(arm, None) for arm in ARMS[:1]] + [(a, b) for a in ARMS[1:] for b in batchings]
    header = ["object"] + [f"{arm[0]} board, {b}" if b else "single image" for arm, b in columns]
    rows = []
    for obj in OBJECTS:
        cells = [obj.key]
        for (_, preset, compose), batching in columns:
            calls, evals, seconds = [], [], []
            for seed in range(seeds):
                request = (
                    replace(defaults, prompt=obj.phrase, preset=preset, seed=seed, compose=compose)
                    .sized(*engine.native_size)
                    .validated()
                )
                counts[:] = [0, 0]
                started = time.perf_counter()
                if compose:  # what Engine.generate runs for --compose
                    chosen = PartBatching() if batching == "batched" else PartBatching(0)
                    make_board_for(engine, request, batching=chosen)
                else:
                    engine.generate(request)
                seconds.append(time.perf_counter() - started)
                calls.append(counts[0])
                evals.append(counts[1] / per_image)
            cells.append(f"{statistics.median(calls):.0f} / {statistics.median(evals):.0f} / "
                         f"{statistics.median(seconds):.1f} s")  # fmt: skip
        rows.append(cells)
    return header, rows


def tflop(fn, *args, **kwargs) -> float:
    """TFLOP that ``fn(*args, **kwargs)`` performs, counted by torch (runs on meta tensors)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() / 1e12


def sdxl_flops() -> dict[str, float]:
    """TFLOP of one SDXL UNet evaluation with CFG (batch 2) and of the VAE, at 1024 and 512 px."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from sdxl_random import architecture

    arch = architecture()
    with torch.device("meta"):
        unet = UNet2DConditionModel(**arch["unet_UNet2DConditionModel"])
        vae = AutoencoderKL(**arch["vae_AutoencoderKL"])
    out = {}
    for side in (1024, 512):
        with torch.device("meta"):
            latents = torch.randn(2, 4, side // 8, side // 8)
            text = torch.randn(2, 77, 2048)
            cond = {"text_embeds": torch.randn(2, 1280), "time_ids": torch.randn(2, 6)}
            pixels = torch.randn(1, 3, side, side)
            timestep = torch.tensor(500)
        out[f"unet_{side}"] = tflop(unet, latents, timestep, text, added_cond_kwargs=cond)
        out[f"decode_{side}"] = tflop(vae.decode, latents[:1])
        out[f"encode_{side}"] = tflop(vae.encode, pixels)
    return out


def board_estimates(flops: dict[str, float], unify: float = 0.3) -> list[list[str]]:
    """Per catalog object: distinct drawings, TFLOP per board, ratio to one image, H100 seconds."""
    from nano_banana.parts.catalog import load_catalog

    single = SDXL_STEPS * flops["unet_1024"] + flops["decode_1024"]
    per_part = SDXL_STEPS * flops["unet_512"] + flops["decode_512"]
    unify_cost = (
        int(SDXL_STEPS * unify) * flops["unet_1024"] + flops["encode_1024"] + flops["decode_1024"]
    )
    rows = []
    for obj in sorted(load_catalog().values(), key=lambda o: len(o.parts)):
        drawings = len(obj.parts)  # copies of a part share one drawing
        total = drawings * per_part + unify_cost
        ratio = total / single
        rows.append([obj.key, str(obj.piece_count), str(drawings), f"{total:.0f}", f"{ratio:.2f}x",
                     f"{ratio * H100_SECONDS_PER_IMAGE:.1f} s", "yes" if ratio <= BUDGET else "no"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1, help="seeds per object and arm (median)")
    parser.add_argument("--batching", choices=("both", "batched", "one-by-one"), default="both",
                        help="how boards draw their parts: in batches, one by one, or both arms")  # fmt: skip
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    batchings = ["batched", "one-by-one"] if args.batching == "both" else [args.batching]

    import torch

    from nano_banana.model.load import quiet_libraries

    torch.set_num_threads(args.threads)
    quiet_libraries()
    header, demo = measure_demo(args.seeds, batchings)
    benchlib.print_table(
        f"Demo model on this CPU ({args.threads} thread(s)): UNet calls / image evaluations / "
        "seconds", header, demo,
    )  # fmt: skip
    flops = sdxl_flops()
    benchlib.print_table(
        "SDXL, counted FLOPs (TFLOP)", ["what", "1024 px", "512 px"],
        [[name, f"{flops[name + '_1024']:.2f}", f"{flops[name + '_512']:.2f}"]
         for name in ("unet", "decode", "encode")],
    )  # fmt: skip
    estimates = board_estimates(flops)
    benchlib.print_table(
        f"SDXL board estimate ({SDXL_STEPS} steps, parts at 512 px, unifying pass 30%; "
        "the same FLOPs batched or not)",
        ["object", "pieces", "drawings", "TFLOP", "vs one image", "H100 (est.)", f"<= {BUDGET:.0f}x"],
        estimates,
    )  # fmt: skip
    benchlib.write_json(args.json, {"machine": benchlib.machine_info("cpu"),
                                    "demo": {"header": header, "rows": demo},
                                    "sdxl_tflop": flops, "estimates": estimates})  # fmt: skip


if __name__ == "__main__":
    main()
