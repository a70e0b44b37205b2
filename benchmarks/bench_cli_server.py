"""One image from the command line, as whole processes: plain diffusers script vs
``nano-banana generate`` in-process vs ``nano-banana generate`` with a warm ``nano-banana serve``.

    .venv/bin/python benchmarks/bench_cli_server.py [--rounds 4] [--json PATH]

Demo model at its settings, one torch thread. Each round runs the three arms in turn (plain,
server, in-process) at the round's seed; the table gives median wall seconds per process and
the speed-up over the plain script (issue 14's target: >= 3x with a warm server). It also checks
the images: the server's must equal the in-process one's exactly, and both are compared with
the plain script's (our engine fuses the LoRA, so up to a level or two of 255 apart).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PLAIN = REPO / "benchmarks" / "plain_demo_script.py"
PROMPT = "a mechanical watch"
SERVER_START_S = 300  # the worker imports torch and loads the demo model


def run(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def only_png(folder: Path) -> Path:
    (png,) = folder.glob("*.png")
    return png


def final_prompts(png: Path) -> tuple[str, str]:
    """The prompt and negative prompt the text encoders got (preset applied), from the record."""
    record = json.loads(Image.open(png).text["nano_banana"])
    return record["prompt_used"], record["negative_used"]


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cli-server-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NANO_BANANA_SERVE_DIR": str(work / "serve")}
    cli = [str(REPO / ".venv" / "bin" / "nano-banana"), "generate", PROMPT]
    log = (work / "serve.log").open("w")
    server = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "nano-banana"), "serve"], env=env, stderr=log
    )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not (work / "serve" / "server.json").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((work / "serve.log").read_text()[-2000:])
            time.sleep(0.5)
        times: dict[str, list[float]] = {"plain script": [], "server": [], "in-process": []}
        diffs: list[dict] = []
        load = [os.getloadavg()[0]]
        for round_no in range(args.rounds):
            seed = 100 + round_no
            out = {arm: work / f"r{round_no}-{arm.split()[0]}" for arm in times}
            times["server"].append(
                run([*cli, "--seed", str(seed), "--out", str(out["server"])], env)
            )
            prompt, negative = final_prompts(only_png(out["server"]))
            plain_png = out["plain script"].with_suffix(".png")
            times["plain script"].append(
                run(
                    [
                        sys.executable,
                        str(PLAIN),
                        "--prompt",
                        prompt,
                        "--negative",
                        negative,
                        "--seed",
                        str(seed),
                        "--out",
                        str(plain_png),
                    ],
                    env,
                )  # fmt: skip
            )
            times["in-process"].append(
                run(
                    [*cli, "--seed", str(seed), "--no-server", "--out", str(out["in-process"])], env
                )  # fmt: skip
            )
            server_px = pixels(only_png(out["server"]))
            diffs.append(
                {
                    "seed": seed,
                    "server_vs_in_process_max": int(
                        abs(server_px - pixels(only_png(out["in-process"]))).max()
                    ),
                    "server_vs_plain_max": int(abs(server_px - pixels(plain_png)).max()),
                }
            )
        load.append(os.getloadavg()[0])
    finally:
        server.terminate()
        server.wait(30)
        log.close()

    plain = statistics.median(times["plain script"])
    print(f"one image, whole process, demo model, {args.rounds} rounds; load {load[0]:.1f} -> "
          f"{load[1]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print("| arm | median wall s | min-max | speed-up vs plain script |")
    print("|---|---|---|---|")
    for arm, values in times.items():
        median = statistics.median(values)
        print(f"| {arm} | {median:.2f} | {min(values):.2f}-{max(values):.2f} | "
              f"{plain / median:.2f}x |")  # fmt: skip
    print("images:", diffs)
    if args.json:
        args.json.write_text(json.dumps({"times": times, "images": diffs, "load": load}, indent=1))


if __name__ == "__main__":
    main()
