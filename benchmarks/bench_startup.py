"""How long does ``nano-banana`` take to start, and what does it import? Prints a table.

    .venv/bin/python benchmarks/bench_startup.py [--tree NAME=SRC ...] [--rounds 3] [--json FILE]

Runs each command line in a fresh process, once under ``python -X importtime`` (the
import time of each package: the sum of its modules' own times, so a package counts
the same whoever imports it first) and once plain (the wall time of the whole
process). ``--tree`` compares source trees (e.g. a copy of ``src`` from before a
change): each round runs every tree in turn, so both see the same load on a shared machine.
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
from collections import defaultdict
from pathlib import Path

# The command lines measured: the overview, a command's help, and a real image on the demo.
COMMANDS = {
    "nano-banana --help": ["--help"],
    "generate --help": ["generate", "--help"],
    "generate (demo)": ["generate", "a mechanical watch", "--seed", "1", "--out", "{out}"],
}
# Libraries that cost start-up time, and our stages: which of them a command line imports.
HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "scipy", "numpy", "PIL",
         "streamlit", "pandas", "matplotlib", "skimage", "sklearn", "cv2")  # fmt: skip
STAGES = ("prompt", "model", "lora", "generate", "gallery", "parts", "synth", "demo",
          "training", "analysis", "studio")  # fmt: skip


def run(src: str, args: list[str], importtime: bool) -> tuple[float, str]:
    """(wall seconds, stderr) of ``python -m nano_banana.cli ARGS`` with ``src`` first on the path."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": src}
    flags = ["-X", "importtime"] if importtime else []
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, *flags, "-m", "nano_banana.cli"]
        command += [a.format(out=out) for a in args]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=out)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stderr


def import_groups(stderr: str) -> dict[str, float]:
    """Milliseconds per package (``nano_banana.<stage>`` per stage) from -X importtime's lines."""
    groups: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, name = line.removeprefix("import time:").split("|")
        name = name.strip()
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "nano_banana" else parts[0]
        groups[key] += int(own) / 1000
        groups["(all)"] += int(own) / 1000
        groups["(modules)"] += 1
    return groups


def measure(trees: dict[str, str], rounds: int) -> dict:
    """Per tree and command: the median wall time and median import milliseconds per package."""
    walls: dict = defaultdict(list)
    imports: dict = defaultdict(list)
    for _ in range(rounds):
        for label, args in COMMANDS.items():
            for tree, src in trees.items():  # alternate: each tree sees the same load
                imports[tree, label].append(import_groups(run(src, args, importtime=True)[1]))
                walls[tree, label].append(run(src, args, importtime=False)[0])
    results = {}
    for (tree, label), runs in imports.items():
        names = set().union(*runs)
        results[f"{tree} | {label}"] = {
            "wall_s": statistics.median(walls[tree, label]),
            "walls_s": walls[tree, label],
            "import_ms": {n: statistics.median(r.get(n, 0.0) for r in runs) for n in sorted(names)},
        }
    return results


def print_table(results: dict) -> None:
    print(
        "| tree / command | wall s | modules | import ms | torch ms | scipy ms | libraries | stages |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key, row in results.items():
        ms = row["import_ms"]
        libraries = ", ".join(p for p in HEAVY if p in ms)
        stages = ", ".join(s for s in STAGES if f"nano_banana.{s}" in ms)
        print(f"| {key} | {row['wall_s']:.2f} | {ms['(modules)']:.0f} | {ms['(all)']:.0f} | "
              f"{ms.get('torch', 0.0):.0f} | {ms.get('scipy', 0.0):.0f} | {libraries} | {stages} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=SRC (default: src)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the full results here")
    args = parser.parse_args()
    src = str(Path(__file__).resolve().parent.parent / "src")
    trees = dict(t.split("=", 1) for t in args.tree) or {"current": src}
    trees = {name: str(Path(path).resolve()) for name, path in trees.items()}
    load_before = os.getloadavg()
    results = measure(trees, args.rounds)
    print_table(results)
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"load": [load_before, os.getloadavg()], **results}, indent=1)
        )


if __name__ == "__main__":
    main()
