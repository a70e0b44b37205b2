"""Generation speed: plain diffusers (the design's snippet) vs our engine, side by side.

    .venv/bin/python benchmarks/bench_generate.py [--device cpu|cuda] [--size N] [--steps N]
        [--runs N] [--images N] [--threads N] [--ablate] [--json out.json]
        [--base DIR --lora FILE [--lora2 FILE]] [--model auto|tiny|sdxl-random]

Same weights, prompt, seed and settings through
  (a) "plain": StableDiffusionXLPipeline.from_pretrained + load_lora_weights(path,
      adapter_name="nano_banana") + Euler Ancestral, called with
      cross_attention_kwargs={"scale": 0.8}, CFG 7.5 (the design's snippet);
  (b) "engine": nano_banana's Engine with its default SpeedConfig.
Every trial is a fresh process (so load time and peak memory are its own), and
trials alternate a, b, a, b... so drift on a shared machine hits both alike.
Each trial: load, first image (= load + warm-up), then ``--images`` warm images of
each variant: LoRA 0.8; scale changing 0.8 <-> 1.0 every image; switching between
two LoRAs every image; and (plain only) the same after ``fuse_lora``.
``--ablate`` adds engine arms with one optimization changed each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

PROMPT = "disassemble clothes, knolling, flat lay, white background, a complex mechanical watch"
MAIN_ARMS = ("plain", "engine")
# Engine arms for --ablate: SpeedConfig changes from the default, one at a time.
ABLATIONS = {
    "engine:reference": "reference",  # every optimization off
    "engine:-fuse_lora": {"fuse_lora": False},
    "engine:+bf16": {"half_precision": "bfloat16"},  # opt-in on CPUs with native bf16
    "engine:-prompt_cache": {"prompt_cache": 0},
    "engine:-inference_mode": {"inference_mode": False},
    "engine:+channels_last": {"channels_last": "on"},
    "engine:+compile_regional": {"compile": "regional"},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--size", type=int, default=None, help="image side (default: model's native)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--scale", type=float, default=0.8, help="LoRA scale (the design's 0.8)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--runs", type=int, default=3, help="trials (processes) per arm, alternating")
    p.add_argument("--images", type=int, default=3, help="warm images per variant per trial")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--model", default="auto", choices=["auto", "tiny", "sdxl-random"])
    p.add_argument("--base", default=None, help="diffusers SDXL folder (default: demo model)")
    p.add_argument("--lora", default=None, help="LoRA file (default: the demo's)")
    p.add_argument("--lora2", default=None, help="second LoRA for switching (default: random)")
    p.add_argument("--ablate", action="store_true", help="also engine arms with one knob changed")
    p.add_argument("--arms", default=None, help="comma-separated arms to run (default: all)")
    p.add_argument("--work", default=str(benchlib.DEFAULT_WORK), help="cache of built models")
    p.add_argument("--json", default=None, help="write all numbers here")
    p.add_argument(
        "--rounds", type=int, default=6, help="interleaved rounds (one image per arm each; 0: off)"
    )
    p.add_argument("--interleave", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--models-json", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- one trial, in its own process ---------------------------------------------------------


def dtype_for(device: str):
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32  # the design: fp16 GPU


def load_plain(args, models: dict):
    """The design's snippet, plus a CPU generator so both arms start from the same noise."""
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(
        models["base"], torch_dtype=dtype_for(args.device), use_safetensors=True
    )
    pipe.to(args.device)
    pipe.load_lora_weights(models["lora"], adapter_name="nano_banana")
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    benchlib.sync(args.device)
    probe = benchlib.Probe(pipe, args.device)
    size = args.size or pipe.unet.config.sample_size * pipe.vae_scale_factor

    def image(scale: float | None = args.scale, seed: int = args.seed):
        probe.expect(args.steps)
        kwargs = {"cross_attention_kwargs": {"scale": scale}} if scale is not None else {}
        result = pipe(
            PROMPT,
            negative_prompt="",  # what the engine encodes for "no negative prompt"
            num_inference_steps=args.steps,
            guidance_scale=args.cfg,
            height=size,
            width=size,
            generator=torch.Generator("cpu").manual_seed(seed),
            **kwargs,
        ).images[0]
        benchlib.sync(args.device)
        return result

    return pipe, probe, image


def run_plain(args, models: dict) -> dict:
    out: dict = {}
    started = time.perf_counter()
    pipe, probe, image = load_plain(args, models)
    out["load_s"] = time.perf_counter() - started

    image()
    out["first_image_s"] = time.perf_counter() - started
    out.update(measure(lambda: image(), args, probe, "lora"))
    save_image(args, "plain", _LAST_IMAGE["lora"])
    out.update(alternate(lambda s: image(scale=s), args, "scale_change", lambda s: 0.0))

    def set_lora(name: str) -> float:
        t = time.perf_counter()
        pipe.set_adapters([name], [1.0])
        return time.perf_counter() - t

    pipe.load_lora_weights(models["lora2"], adapter_name="other")
    out.update(alternate_loras(image, set_lora, args))
    pipe.set_adapters(["nano_banana"], [1.0])
    pipe.delete_adapters("other")

    # fused by diffusers: fuse_lora at the scale, called without a scale
    t = time.perf_counter()
    pipe.fuse_lora(lora_scale=args.scale, adapter_names=["nano_banana"])
    benchlib.sync(args.device)
    out["fuse_s"] = time.perf_counter() - t
    out.update(measure(lambda: image(scale=None), args, probe, "fused"))

    def refuse(scale: float) -> float:
        t = time.perf_counter()
        pipe.unfuse_lora()
        pipe.fuse_lora(lora_scale=scale, adapter_names=["nano_banana"])
        benchlib.sync(args.device)
        return time.perf_counter() - t

    out.update(alternate(lambda s: image(scale=None), args, "fused_scale_change", refuse))
    return out


def speed_config_for(arm: str):
    from nano_banana.generate.speed import SpeedConfig

    change = ABLATIONS.get(arm)
    if change == "reference":
        return SpeedConfig.reference()
    return SpeedConfig(**(change or {}))


def load_engine(args, models: dict, arm: str):
    from nano_banana.generate.engine import Engine
    from nano_banana.settings import GenerationRequest, LoraWeight

    engine = Engine.load(models["base"], device=args.device, speed=speed_config_for(arm))
    engine.add_lora(models["lora"], name="nano_banana")
    benchlib.sync(args.device)
    probe = benchlib.Probe(engine.pipe, args.device)
    size = args.size or engine.native_size[0]

    def image(scale: float = args.scale, lora: str = "nano_banana", seed: int = args.seed):
        probe.expect(args.steps)
        request = GenerationRequest(
            prompt=PROMPT,
            preset="none",
            seed=seed,
            steps=args.steps,
            cfg=args.cfg,
            width=size,
            height=size,
            lora_scale=scale,
            loras=(LoraWeight(lora, 1.0),),
        )
        result = engine.generate(request).image
        benchlib.sync(args.device)
        return result

    return engine, probe, image


def run_engine(args, models: dict, arm: str) -> dict:
    out: dict = {}
    started = time.perf_counter()
    engine, probe, image = load_engine(args, models, arm)
    out["load_s"] = time.perf_counter() - started
    out["unet_dtype"] = str(engine.dtype).removeprefix("torch.")

    def switch_time(_=None) -> float:
        return engine.speed.timings.get("adapter_switch_s", 0.0)

    image()
    out["first_image_s"] = time.perf_counter() - started
    out.update(measure(lambda: image(), args, probe, "lora"))
    save_image(args, arm, _LAST_IMAGE["lora"])
    if arm != "engine":
        return out  # ablation arms: the LoRA-0.8 case only
    out.update(alternate(lambda s: image(scale=s), args, "scale_change", None, switch_time))
    engine.add_lora(models["lora2"], name="other")
    out.update(alternate_loras(lambda lora: image(lora=lora), None, args, switch_time))
    return out


_LAST_IMAGE: dict = {}


def measure(make, args, probe: benchlib.Probe, name: str) -> dict:
    """``--images`` warm images: seconds each, denoising loop and VAE decode."""
    import numpy as np

    times = []
    probe.denoise_s.clear()
    probe.decode_s.clear()
    for _ in range(args.images):
        t = time.perf_counter()
        img = make()
        times.append(time.perf_counter() - t)
    _LAST_IMAGE[name] = np.asarray(img)
    return {
        f"{name}_s": times,
        f"{name}_denoise_s": list(probe.denoise_s),
        f"{name}_decode_s": list(probe.decode_s),
    }


def alternate(make, args, name: str, switch, switch_time=None) -> dict:
    """Scale 0.8 <-> 1.0 every image; the time per image includes the switch."""
    times, switches = [], []
    scales = [1.0 if i % 2 == 0 else args.scale for i in range(max(2, args.images))]
    for scale in scales:
        t = time.perf_counter()
        if switch is not None:
            switches.append(switch(scale))
        make(scale)
        times.append(time.perf_counter() - t)
        if switch_time is not None:
            switches.append(switch_time())
    return {f"{name}_s": times, f"{name}_switch_s": switches}


def alternate_loras(image, set_lora, args, switch_time=None) -> dict:
    times, switches = [], []
    names = ["other" if i % 2 == 0 else "nano_banana" for i in range(max(2, args.images))]
    for name in names:
        t = time.perf_counter()
        if set_lora is not None:
            switches.append(set_lora(name))
            image(scale=args.scale)
        else:
            image(name)
            switches.append(switch_time())
        times.append(time.perf_counter() - t)
    return {"lora_switch_s": times, "lora_switch_switch_s": switches}


def save_image(args, arm: str, array) -> None:
    import numpy as np

    folder = Path(args.work) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{arm.replace(':', '_')}.npy", array)


def worker(args) -> None:
    # Imports are outside every clock, the same set in both arms (they cost seconds here).
    import diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl  # noqa: F401
    import peft  # noqa: F401
    import torch

    import nano_banana.generate.engine  # noqa: F401

    if args.threads:
        torch.set_num_threads(args.threads)
    models = json.loads(Path(args.models_json).read_text())
    benchlib.reset_peak_memory(args.device)
    if args.worker == "interleaved":
        print("RESULT " + json.dumps(interleaved(args, models)))
        return
    if args.worker == "plain":
        out = run_plain(args, models)
    else:
        out = run_engine(args, models, args.worker)
    out["peak_mb"] = benchlib.peak_memory_mb(args.device)
    out["arm"] = args.worker
    print("RESULT " + json.dumps(out))


def interleaved(args, models: dict) -> dict:
    """Every arm loaded in one process, warm images alternating arm by arm (a, b, c, a, b, c...):
    on a shared machine this is the fair comparison of warm speed."""
    arms = [a for a in args.interleave.split(",") if a]
    loaded = {
        arm: load_plain(args, models) if arm == "plain" else load_engine(args, models, arm)
        for arm in arms
    }
    out = {arm: {"s": [], "denoise_s": [], "decode_s": []} for arm in arms}
    for _, _, image in loaded.values():
        image()  # warm-up
    for round_ in range(args.images):
        order = arms[round_ % len(arms) :] + arms[: round_ % len(arms)]
        for arm in order:
            _, probe, image = loaded[arm]
            probe.denoise_s.clear()
            probe.decode_s.clear()
            t = time.perf_counter()
            image()
            out[arm]["s"].append(time.perf_counter() - t)
            out[arm]["denoise_s"] += probe.denoise_s
            out[arm]["decode_s"] += probe.decode_s
    return out


# --- the driver ---------------------------------------------------------------------------------


def run_trial(args, arm: str, models_json: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", arm, "--models-json", str(models_json)]
    for flag in ("device", "steps", "cfg", "scale", "seed", "images", "threads", "work"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    if args.size:
        cmd += ["--size", str(args.size)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"trial of arm '{arm}' failed (exit {proc.returncode})")
    return json.loads(lines[-1].removeprefix("RESULT "))


def pooled(trials: list[dict], key: str) -> list[float]:
    values: list[float] = []
    for trial in trials:
        value = trial.get(key)
        if isinstance(value, list):
            values += value
        elif value is not None:
            values.append(value)
    return values


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    models = benchlib.resolve_models(args)
    models_json = Path(args.work) / "models.json"
    models_json.parent.mkdir(parents=True, exist_ok=True)
    models_json.write_text(json.dumps(models.__dict__))
    arms = list(MAIN_ARMS) + (list(ABLATIONS) if args.ablate else [])
    if args.arms:
        arms = [a for a in args.arms.split(",") if a]
    print(f"model: {models.label} ({models.base})", flush=True)
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for trial in range(args.runs):
        order = arms if trial % 2 == 0 else [*arms[1:], arms[0]]  # a,b,..  then b,..,a
        for arm in order:
            started = time.perf_counter()
            results[arm].append(run_trial(args, arm, models_json))
            print(
                f"  trial {trial + 1}/{args.runs} {arm}: {time.perf_counter() - started:.1f} s",
                flush=True,
            )
    warm = run_interleaved(args, arms, models_json) if args.rounds else {}
    report(args, models, results, warm)


def run_interleaved(args, arms: list[str], models_json: Path) -> dict:
    """One process, every arm loaded, warm images alternating arm by arm."""
    started = time.perf_counter()
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "interleaved",
        "--interleave",
        ",".join(arms),
        "--models-json",
        str(models_json),
        "--images",
        str(args.rounds),
    ]
    for flag in ("device", "steps", "cfg", "scale", "seed", "threads", "work"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    if args.size:
        cmd += ["--size", str(args.size)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        print("interleaved run failed", flush=True)
        return {}
    print(f"  interleaved, {args.rounds} rounds: {time.perf_counter() - started:.1f} s", flush=True)
    return json.loads(lines[-1].removeprefix("RESULT "))


# --- report ----------------------------------------------------------------------------------------


def report(args, models, results: dict[str, list[dict]], mixed: dict) -> None:
    import numpy as np

    info = benchlib.machine_info(args.device)
    print(f"\nmachine: {info}")
    print(
        f"settings: steps {args.steps}, CFG {args.cfg}, LoRA scale {args.scale}, seed {args.seed}, "
        f"size {args.size or 'native'}, {args.runs} trial(s) x {args.images} warm image(s); "
        "figures are median [min-max] over all warm images of all trials"
    )
    plain = results.get("plain", [])
    base_warm = benchlib.median_spread(pooled(plain, "lora_s"))[0] if plain else float("nan")
    rows = []
    for arm, trials in results.items():
        warm = pooled(trials, "lora_s")
        denoise = pooled(trials, "lora_denoise_s")
        med_warm = benchlib.median_spread(warm)[0]
        steps_per_s = [args.steps / d for d in denoise]
        rows.append(
            [
                arm,
                trials[0].get("unet_dtype", str(dtype_for(args.device)).removeprefix("torch.")),
                benchlib.fmt_ms(pooled(trials, "first_image_s"), digits=2),
                benchlib.fmt_ms(warm),
                benchlib.fmt_ms(steps_per_s, digits=1),
                benchlib.fmt_ms(pooled(trials, "lora_decode_s"), scale=1000, digits=1),
                f"{benchlib.median_spread(pooled(trials, 'peak_mb'))[0]:.0f}",
                f"{med_warm / base_warm:.2f}",
                f"{base_warm / med_warm:.2f}x",
            ]
        )
    benchlib.print_table(
        "LoRA at 0.8, per image",
        [
            "arm",
            "UNet dtype",
            "first image s",
            "warm s/image",
            "UNet steps/s",
            "VAE decode ms",
            "peak MB",
            "b/a time",
            "speed-up",
        ],
        rows,
    )
    warm_rows = interleaved_table(args, mixed)
    variant_rows = variant_table(args, results)
    match_rows = image_matches(args, results, np)
    payload = {
        "args": vars(args),
        "models": models.__dict__,
        "machine": info,
        "trials": results,
        "variants": variant_rows,
        "interleaved": mixed,
        "interleaved_table": warm_rows,
        "image_match": match_rows,
    }
    benchlib.write_json(args.json, payload)


def interleaved_table(args, warm: dict) -> list[list[str]]:
    if not warm:
        return []
    base = benchlib.median_spread(warm["plain"]["s"])[0] if "plain" in warm else float("nan")
    rows = []
    for arm, m in warm.items():
        med = benchlib.median_spread(m["s"])[0]
        rows.append(
            [
                arm,
                benchlib.fmt_ms(m["s"]),
                benchlib.fmt_ms([args.steps / d for d in m["denoise_s"]], digits=1),
                benchlib.fmt_ms(m["decode_s"], scale=1000, digits=1),
                f"{med / base:.2f}",
                f"{base / med:.2f}x",
            ]
        )
    benchlib.print_table(
        f"Warm, interleaved in one process ({args.rounds} rounds, one image per arm per round; "
        "the fair comparison on a shared machine)",
        ["arm", "warm s/image", "UNet steps/s", "VAE decode ms", "b/a time", "speed-up"],
        rows,
    )
    return rows


def variant_table(args, results) -> list[list[str]]:
    plain, engine = results.get("plain", []), results.get("engine", [])
    if not plain or not engine:
        return []

    def cell(trials, key):
        return benchlib.fmt_ms(pooled(trials, key))

    def ratio(a_key, b_key):
        a = benchlib.median_spread(pooled(plain, a_key))[0]
        b = benchlib.median_spread(pooled(engine, b_key))[0]
        return f"{b / a:.2f}"

    def switch(trials, key):
        return benchlib.fmt_ms(pooled(trials, key), scale=1000, digits=1)

    rows = [
        [
            "LoRA 0.8, unfused (the design's snippet)",
            cell(plain, "lora_s"),
            cell(engine, "lora_s"),
            ratio("lora_s", "lora_s"),
            "0 (per call)",
            switch(engine, "scale_change_switch_s"),
        ],
        [
            "LoRA 0.8, plain fused with fuse_lora()",
            cell(plain, "fused_s"),
            cell(engine, "lora_s"),
            ratio("fused_s", "lora_s"),
            f"{benchlib.fmt_ms(pooled(plain, 'fuse_s'), 1000, 1)} (once)",
            "-",
        ],
        [
            "scale 0.8<->1.0 every image, plain unfused",
            cell(plain, "scale_change_s"),
            cell(engine, "scale_change_s"),
            ratio("scale_change_s", "scale_change_s"),
            "0",
            switch(engine, "scale_change_switch_s"),
        ],
        [
            "scale 0.8<->1.0 every image, plain fused (unfuse+fuse)",
            cell(plain, "fused_scale_change_s"),
            cell(engine, "scale_change_s"),
            ratio("fused_scale_change_s", "scale_change_s"),
            switch(plain, "fused_scale_change_switch_s"),
            switch(engine, "scale_change_switch_s"),
        ],
        [
            "LoRA A<->B every image (set_adapters)",
            cell(plain, "lora_switch_s"),
            cell(engine, "lora_switch_s"),
            ratio("lora_switch_s", "lora_switch_s"),
            switch(plain, "lora_switch_switch_s"),
            switch(engine, "lora_switch_switch_s"),
        ],
    ]
    benchlib.print_table(
        "Variants (s/image incl. any switch; switch cost ms)",
        [
            "variant",
            "plain s/image",
            "engine s/image",
            "b/a time",
            "plain switch ms",
            "engine switch ms",
        ],
        rows,
    )
    return rows


def image_matches(args, results, np) -> list[list[str]]:
    folder = Path(args.work) / "images"
    ref_path = folder / "plain.npy"
    if not ref_path.is_file():
        return []
    ref = np.load(ref_path).astype(np.float64)
    rows = []
    for arm in results:
        if arm == "plain":
            continue
        path = folder / f"{arm.replace(':', '_')}.npy"
        if not path.is_file():
            continue
        got = np.load(path).astype(np.float64)
        mse = float(((got - ref) ** 2).mean())
        psnr = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
        rows.append(
            [
                arm,
                f"{np.abs(got - ref).max():.0f}",
                f"{np.abs(got - ref).mean():.2f}",
                f"{psnr:.1f}",
            ]
        )
    benchlib.print_table(
        "Same seed, image vs plain diffusers (pixels 0-255)",
        ["arm", "max abs diff", "mean abs diff", "PSNR dB"],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
