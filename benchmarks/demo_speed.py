"""How fast is the built-in demo model on this machine? Prints a table.

    .venv/bin/python benchmarks/demo_speed.py [--images N] [--threads T]

Loads the shipped demo base + structure LoRA on the CPU, then renders N images
at the demo's default settings (demo.toml) and reports the load time, the first
image (warm-up) and the median seconds per image after it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from nano_banana.demo.assets import demo_base_dir, demo_lora_path, demo_settings
    from nano_banana.generate.engine import Engine
    from nano_banana.model.load import quiet_libraries
    from nano_banana.settings import GenerationRequest

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_libraries()
    base = demo_base_dir()
    if base is None:
        raise SystemExit("the demo model is not built: run 'nano-banana demo build'")
    settings = demo_settings()

    started = time.perf_counter()
    engine = Engine.load(str(base), loras=[str(demo_lora_path())], device="cpu")
    load_s = time.perf_counter() - started

    times = []
    for seed in range(args.images + 1):
        request = GenerationRequest(
            prompt="a mechanical watch",
            seed=seed,
            steps=settings.steps,
            cfg=settings.cfg,
            lora_scale=settings.lora_scale,
        )
        started = time.perf_counter()
        engine.generate(request)
        times.append(time.perf_counter() - started)

    table = Table(
        title=f"demo model on CPU ({torch.get_num_threads()} threads), "
        f"{settings.width}x{settings.height}, {settings.steps} steps, cfg {settings.cfg}"
    )
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    table.add_row("load base + LoRA", f"{load_s:.2f}")
    table.add_row("first image (warm-up)", f"{times[0]:.2f}")
    table.add_row(f"median of {args.images} images", f"{statistics.median(times[1:]):.2f}")
    table.add_row("slowest of them", f"{max(times[1:]):.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
