"""Training throughput: our trainer vs a plain diffusers-example-style loop, same model and batch.

    .venv/bin/python benchmarks/bench_train.py [--device cpu|cuda] [--resolution N]
        [--batch 1,4] [--steps N] [--runs N] [--threads N] [--json out.json]
        [--model auto|tiny|sdxl-random] [--base DIR] [--arms a,b,...]

Arms (each trial a fresh process; trials alternate):
  plain        the diffusers example's loop: VAE-encode and text-encode every step,
               UNet LoRA (rank --rank, attention), MSE on epsilon, AdamW (torch default);
  loop+cache   the same loop on cached latents and text embeddings;
  loop+cache+foreach / +fused   AdamW foreach=True / fused=True;
  loop+cache+ckpt   with gradient checkpointing;
  loop+cache+compile   with torch.compile of the UNet;
  trainer      our trainer, ``nano_banana.training.train`` (caches, min-SNR, clipping, ...);
  trainer+ckpt our trainer with gradient checkpointing.
Weights in bf16 on CUDA (LoRA params fp32, autocast), fp32 on the CPU. samples/s is the
batch over the median step time after ``--warmup`` steps; peak memory is
max_memory_allocated after warm-up on CUDA, the process's peak RSS on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

CAPTION = "disassemble, knolling, flat lay, white background, a watch with all parts laid out"
LOOP_ARMS = {
    "plain": dict(cache=False),
    "loop+cache": dict(cache=True),
    "loop+cache+foreach": dict(cache=True, optimizer="foreach"),
    "loop+cache+fused": dict(cache=True, optimizer="fused"),
    "loop+cache+ckpt": dict(cache=True, checkpointing=True),
    "loop+cache+compile": dict(cache=True, compile=True),
}
TRAINER_ARMS = {"trainer": False, "trainer+ckpt": True}


@dataclass(frozen=True)
class LoopConfig:
    cache: bool = False
    optimizer: str = "default"  # default | foreach | fused
    checkpointing: bool = False
    compile: bool = False


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--resolution", type=int, default=None, help="default: the model's native")
    p.add_argument("--batch", default="1,4", help="batch sizes, comma-separated")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=8, help="timed steps per trial")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--model", default="auto", choices=["auto", "tiny", "sdxl-random"])
    p.add_argument("--base", default=None)
    p.add_argument("--lora", default=None, help=argparse.SUPPRESS)
    p.add_argument("--lora2", default=None, help=argparse.SUPPRESS)
    p.add_argument("--arms", default=None, help="comma-separated (default: all)")
    p.add_argument("--work", default=str(benchlib.DEFAULT_WORK))
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--base-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- data -------------------------------------------------------------------------------------


def write_dataset(folder: Path, count: int, size: int) -> Path:
    """``count`` smooth random colour images with one caption each (not zeros, not flat)."""
    import numpy as np
    from PIL import Image

    if folder.is_dir() and len(list(folder.glob("*.png"))) >= count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text(CAPTION, encoding="utf-8")
    return folder


# --- the example-style loop ---------------------------------------------------------------------


def load_parts(base: str, device: str, weight_dtype):
    import torch
    from diffusers import DDPMScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(
        base, torch_dtype=weight_dtype, use_safetensors=True
    )
    pipe.vae.to(device, torch.float32)  # the example keeps the SDXL VAE in fp32 (fp16 NaNs)
    for module in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
        module.to(device)
        module.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    return pipe, DDPMScheduler.from_config(pipe.scheduler.config)


def add_lora(unet, rank: int):
    from peft import LoraConfig

    unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=rank,
            init_lora_weights="gaussian",
            target_modules=benchlib.ATTENTION_TARGETS,
        )
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()  # trainable LoRA weights in fp32, as the example does
    return params


def make_optimizer(params, kind: str):
    import torch

    extra = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(kind, {})
    return torch.optim.AdamW(params, lr=1e-4, **extra)


def encode_text(pipe, captions: list[str]):
    from nano_banana.training.cache import encode_captions

    return encode_captions(
        captions, (pipe.tokenizer, pipe.tokenizer_2), (pipe.text_encoder, pipe.text_encoder_2)
    )


def loop_trial(args, cfg: LoopConfig) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    device = args.device
    cuda = device.startswith("cuda")
    weight_dtype = torch.bfloat16 if cuda else torch.float32
    pipe, noise_scheduler = load_parts(args.base_dir, device, weight_dtype)
    unet = pipe.unet
    if cfg.checkpointing:
        unet.enable_gradient_checkpointing()
    params = add_lora(unet, args.rank)
    unet.train()
    optimizer = make_optimizer(params, cfg.optimizer)
    forward = torch.compile(unet) if cfg.compile else unet
    b, size = args.batch_size, args.resolution
    files = sorted(Path(args.data).glob("*.png"))[:b]
    pixels = torch.stack(
        [
            torch.from_numpy(
                np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 127.5 - 1
            ).permute(2, 0, 1)
            for f in files
        ]
    ).to(device)
    captions = [CAPTION] * b
    time_ids = torch.tensor([[size, size, 0, 0, size, size]] * b, device=device, dtype=weight_dtype)

    def conditioning():
        with torch.no_grad():
            latents = pipe.vae.encode(pixels).latent_dist.sample() * pipe.vae.config.scaling_factor
            embeds, pooled = encode_text(pipe, captions)
        return latents.to(weight_dtype), embeds.to(weight_dtype), pooled.to(weight_dtype)

    cached = conditioning() if cfg.cache else None
    step_times = []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            benchlib.reset_peak_memory(device)
        benchlib.sync(device)
        t = time.perf_counter()
        latents, embeds, pooled = cached if cached is not None else conditioning()
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, 1000, (b,), device=device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast(device.split(":")[0], dtype=weight_dtype, enabled=cuda):
            pred = forward(
                noisy,
                timesteps,
                embeds,
                added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids},
                return_dict=False,
            )[0]
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        benchlib.sync(device)
        step_times.append(time.perf_counter() - t)
    return {
        "step_s": step_times[args.warmup :],
        "warmup_s": step_times[: args.warmup],
        "final_loss": float(loss),
    }


# --- our trainer ------------------------------------------------------------------------------------


def trainer_trial(args, checkpointing: bool) -> dict:
    from nano_banana.training.config import TrainConfig
    from nano_banana.training.loop import train

    out = Path(args.work) / f"train-out-{os.getpid()}"
    stamps: list[float] = []

    def on_step(info) -> None:
        benchlib.sync(args.device)
        stamps.append(time.perf_counter())
        if info.step == args.warmup:
            benchlib.reset_peak_memory(args.device)

    config = TrainConfig.from_dict(  # flat setting names
        dict(
            data=args.data,
            out=str(out),
            base=args.base_dir,
            rank=args.rank,
            alpha=float(args.rank),
            max_steps=args.warmup + args.steps,
            batch_size=args.batch_size,
            resolution=args.resolution,
            warmup_steps=0,
            checkpoint_every=0,
            sample_every=0,
            grad_checkpointing=checkpointing,
            optimizer="adamw",
            log_every=1000,
        )
    )
    train(config, progress=False, on_step=on_step)
    step_s = (
        [b - a for a, b in zip(stamps[args.warmup - 1 : -1], stamps[args.warmup :], strict=True)]
        if args.warmup
        else []
    )
    return {"step_s": step_s}


def worker(args) -> None:
    import diffusers  # noqa: F401
    import torch

    import nano_banana.training.loop  # noqa: F401

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker in LOOP_ARMS:
        out = loop_trial(args, LoopConfig(**LOOP_ARMS[args.worker]))
    else:
        out = trainer_trial(args, TRAINER_ARMS[args.worker])
    out["peak_mb"] = benchlib.peak_memory_mb(args.device)
    print("RESULT " + json.dumps(out))


# --- driver ------------------------------------------------------------------------------------------


def run_trial(args, arm: str, batch: int, base: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        arm,
        "--base-dir",
        base,
        "--batch-size",
        str(batch),
    ]
    for flag in ("device", "resolution", "rank", "steps", "warmup", "threads", "work"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    cmd += ["--data", args.data]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        return {"error": f"exit {proc.returncode}", "step_s": []}
    return json.loads(lines[-1].removeprefix("RESULT "))


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    data_flag = None
    if "--data" in argv:  # internal: the worker gets the dataset folder
        i = argv.index("--data")
        data_flag = argv[i + 1]
        del argv[i : i + 2]
    args = parse_args(argv)
    args.data = data_flag
    if args.worker:
        return worker(args)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    models = benchlib.resolve_models(args)
    if args.resolution is None:
        cfg = json.loads((Path(models.base) / "unet" / "config.json").read_text())
        vae = json.loads((Path(models.base) / "vae" / "config.json").read_text())
        args.resolution = cfg["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)
    batches = [int(x) for x in args.batch.split(",") if x]
    args.data = str(
        write_dataset(
            Path(args.work) / f"train-data-{args.resolution}", max(8, max(batches)), args.resolution
        )
    )
    arms = [a for a in (args.arms.split(",") if args.arms else [*LOOP_ARMS, *TRAINER_ARMS])]
    print(f"model: {models.label}; {args.resolution}px, rank {args.rank}", flush=True)
    results: dict[str, dict[int, list[dict]]] = {a: {b: [] for b in batches} for a in arms}
    for run in range(args.runs):
        for batch in batches:
            order = arms if run % 2 == 0 else list(reversed(arms))
            for arm in order:
                t = time.perf_counter()
                results[arm][batch].append(run_trial(args, arm, batch, models.base))
                print(
                    f"  run {run + 1} batch {batch} {arm}: {time.perf_counter() - t:.1f} s",
                    flush=True,
                )
    report(args, models, results, batches)


def report(args, models, results, batches) -> None:
    info = benchlib.machine_info(args.device)
    print(f"\nmachine: {info}")
    rows = []
    for batch in batches:
        base = None
        for arm, per_batch in results.items():
            trials = per_batch[batch]
            steps = [s for t in trials for s in t.get("step_s", [])]
            if not steps:
                rows.append([str(batch), arm, "failed", "-", "-", "-"])
                continue
            med = benchlib.median_spread(steps)[0]
            sps = [batch / s for s in steps]
            base = base or (batch / med if arm == "plain" else None)
            peak = benchlib.median_spread([t["peak_mb"] for t in trials if "peak_mb" in t])[0]
            ratio = f"{(batch / med) / base:.2f}x" if base else "-"
            rows.append(
                [
                    str(batch),
                    arm,
                    benchlib.fmt_ms(steps),
                    benchlib.fmt_ms(sps, digits=2),
                    f"{peak:.0f}",
                    ratio,
                ]
            )
    benchlib.print_table(
        f"Training, {args.resolution}px, LoRA rank {args.rank} on attention "
        "(median [min-max] over all timed steps)",
        ["batch", "arm", "s/step", "samples/s", "peak MB", "vs plain"],
        rows,
    )
    benchlib.write_json(
        args.json,
        {
            "args": vars(args),
            "models": models.__dict__,
            "machine": info,
            "results": results,
            "table": rows,
        },
    )


if __name__ == "__main__":
    main()
