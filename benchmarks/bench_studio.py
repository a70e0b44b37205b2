"""Studio vs CLI: how long an image takes while browsers watch it (issue 14). Prints a table.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_studio.py
        [--rounds 4] [--inproc-rounds N] [--cli-calls 2] [--timeout 300]
        [--source head|worktree] [--renice-watchers] [--work DIR] [--json FILE]

On the built-in demo model (no --base) at the demo's default settings, CPU, one torch
thread, fixed seeds, the same prompt everywhere. Arms:
  cli      ``nano-banana generate`` (one image, a fresh process, --no-server);
  pool xN  ``nano-banana studio`` (its default: a worker process runs the engine) with N
           headless Chromium sessions (N = 1, 3), each typing the prompt, pressing
           Generate and watching its own job until its result shows;
  inproc xN  the same against ``studio --workers 0`` (the engine in the web process: the
           "before" of issue 14).
Per image the same quantity on every side: the engine's own generation time, the
``duration_s`` its PNG record carries (the CLI's file; the studio's gallery). Also the
CLI's whole-process wall time, the studio's click-to-result time, and the CPU seconds
the worker, the web process and the browsers spent per image (psutil, /proc).
Both studios run for the whole benchmark (an idle one costs nothing), and every round
runs the arms in a rotated order, so drift on a shared machine hits them alike. Every
process runs one copy of the code (``--source``: the last commit by default), so edits
made during the run cannot mix versions. ``--renice-watchers`` is a diagnosis: the web
process and the browsers at nice 19, to see what the worker gains when they yield.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chromium import BROWSER_ARGS, CHROMIUM  # noqa: E402  (the tests' browser setup)

REPO = Path(__file__).resolve().parents[1]
RECORD_KEY = "nano_banana"  # the PNG text chunk of our record (gallery/png.py)
PROMPT = "a mechanical watch"  # an object the demo model knows
SEED0 = 4242  # round r, session k draws seed SEED0 + 100 r + k in every arm
WATCHERS = (1, 3)
TARGET_RATIO = 1.2  # issue 14: per-image time <= 1.2x the CLI's with 1 and 3 watchers
WATCHERS_NICE = 19  # --renice-watchers: the lowest priority, for the diagnosis
VIEWPORT = {"width": 1400, "height": 900}  # the screen
UI_TIMEOUT_MS = 120_000  # a page's first load on a busy 2-core box
START_TIMEOUT_S = 300.0  # studio up and answering /_stcore/health
POLL_S = 0.25  # how often the benchmark looks for results (the page itself polls at 1 s)
# The record fields that make two images the same work; they must agree across arms.
SAME_WORK = ("preset", "steps", "cfg", "width", "height", "sampler", "lora_scale", "compose")
# The CLI as a user runs it, plus one measurement over the span its record's duration_s
# times (Engine._draw): CPU seconds, seconds waited for a CPU, and times the drawing thread
# blocked (voluntary context switches), so the worker's figures have a baseline.
CLI_WITH_CPU_PROBE = """
import sys, time
from nano_banana.generate import engine
draw = engine.Engine._draw
def sched():
    wait = int(open("/proc/thread-self/schedstat").read().split()[1]) / 1e9
    status = open("/proc/thread-self/status").read().split("voluntary_ctxt_switches:")[1]
    return wait, int(status.split()[0])
def timed(self, *args, **kwargs):
    cpu, (wait, blocks) = time.process_time(), sched()
    try:
        return draw(self, *args, **kwargs)
    finally:
        wait1, blocks1 = sched()
        print(f"bench-draw {time.process_time() - cpu:.4f} {wait1 - wait:.4f} {blocks1 - blocks}",
              file=sys.stderr)
engine.Engine._draw = timed
from nano_banana.cli import main
main()
"""


@dataclass
class ArmRun:
    """One arm in one round: its images' engine times, walls and the CPU it cost."""

    arm: str
    round: int
    engine_s: list[float] = field(default_factory=list)  # duration_s of each image's record
    wall_s: list[float] = field(default_factory=list)  # click->result (studio) or process (cli)
    seeds: list[int] = field(default_factory=list)
    worker_cpu_s: float = float("nan")  # the engine's process (the web process when inproc)
    web_cpu_s: float = float("nan")  # Streamlit's process, without its workers
    browser_cpu_s: float = float("nan")  # every Chromium process of the benchmark
    process_cpu_s: float = float("nan")  # cli: the whole process's user + system time
    draw_cpu_s: float = float("nan")  # cli: CPU of the generation alone (CLI_WITH_CPU_PROBE)
    # The generating thread (cli: in Engine._draw; pool: the worker's main thread, per job):
    engine_wait_s: float = float("nan")  # seconds it was ready to run but waited for a CPU
    engine_blocks: float = float("nan")  # times it blocked (voluntary context switches)
    span_s: float = 0.0  # first click (or process start) to last result
    system_busy_cores: float = float("nan")  # every process on the machine, in cores
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)  # at the end of the run


# --- CPU accounting ---------------------------------------------------------------------------


def system_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_of(pid: int | None) -> float:
    """User + system seconds of one process (its threads, not its children); NaN if gone."""
    import psutil

    if pid is None:
        return float("nan")
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return times.user + times.system


def thread_sched(pid: int | None, tid: int | None = None) -> tuple[float, float]:
    """(seconds waited on a run queue, voluntary context switches) of one thread; NaNs if gone.

    A thread that computes without pause blocks almost never: many voluntary switches
    mean it waited for something (a full pipe, a lock), run-queue time that it waited for a CPU.
    """
    task = Path(f"/proc/{pid}/task/{tid or pid}")
    try:
        wait = int((task / "schedstat").read_text().split()[1]) / 1e9
        status = (task / "status").read_text().split("voluntary_ctxt_switches:")[1]
    except (OSError, IndexError, TypeError):
        return float("nan"), float("nan")
    return wait, float(status.split()[0])


def browser_pids() -> list[int]:
    """Chromium processes started by this benchmark (Playwright's driver launches them)."""
    import psutil

    me = psutil.Process()
    pids = []
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in child.name().lower():
                pids.append(child.pid)
    return pids


class CpuMeter:
    """CPU seconds spent by the worker, the web process and the browsers over one span."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.worker = studio.engine_pid()
        self.browsers = browser_pids()
        self._start = self._read()
        self._ticks = system_busy_ticks()

    def _read(self) -> dict[str, float]:
        browsers = {pid: cpu_of(pid) for pid in self.browsers}
        # The worker generates in its main thread; in the web process it is some other thread.
        wait, blocks = thread_sched(self.worker if self.studio.workers != 0 else None)
        return {"worker": cpu_of(self.worker), "web": cpu_of(self.studio.pid), "wait": wait,
                "blocks": blocks, **{f"browser {pid}": v for pid, v in browsers.items()}}  # fmt: skip

    def stop(self, run: ArmRun) -> None:
        end = self._read()
        busy0, total0 = self._ticks
        busy1, total1 = system_busy_ticks()
        cores = os.cpu_count() or 1
        run.system_busy_cores = (busy1 - busy0) / max(1, total1 - total0) * cores
        run.worker_cpu_s = end["worker"] - self._start["worker"]
        run.web_cpu_s = end["web"] - self._start["web"]
        run.engine_wait_s = end["wait"] - self._start["wait"]
        run.engine_blocks = end["blocks"] - self._start["blocks"]
        if self.studio.workers == 0:  # the engine is the web process: its CPU is counted once
            run.web_cpu_s = float("nan")
        deltas = [end[k] - self._start[k] for k in self._start if k.startswith("browser ")]
        run.browser_cpu_s = sum(d for d in deltas if d == d)  # a closed renderer: NaN, left out


# --- the studio -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SOURCE: dict[str, str] = {}  # PYTHONPATH of the source snapshot every process runs (main)


def snapshot_source(work: Path, source: str) -> dict[str, str]:
    """A copy of ``src`` that every process of the run imports, so an edit to the working tree
    during the run (Streamlit re-runs its page scripts; every CLI call is a fresh process)
    cannot mix two versions of the code. ``head``: the last commit; ``worktree``: as it is."""
    tree = work / "src-snapshot"
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    if source == "head":
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"],
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    else:
        commit = "working tree"
        shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return {"source": source, "commit": commit, "path": str(tree / "src")}


def bench_env() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # one torch thread on every side
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": SOURCE["path"],  # before the editable install's path entry
    }


def check_snapshot_used() -> None:
    """Fail now, not after the run, if the processes would import another copy."""
    code = "import nano_banana; print(nano_banana.__file__)"
    done = subprocess.run([sys.executable, "-c", code], env=bench_env(), capture_output=True,
                          text=True, check=True)  # fmt: skip
    if not done.stdout.strip().startswith(SOURCE["path"]):
        raise SystemExit(f"processes import {done.stdout.strip()}, not the snapshot")


class Studio:
    """``nano-banana studio`` as a user starts it, in its own process group, with its log."""

    def __init__(self, name: str, workers: int | None, work: Path) -> None:
        self.name = name
        self.workers = workers
        self.gallery_dir = work / f"gallery-{name}"
        self.log = work / f"studio-{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "nano_banana.cli", "studio", "--port", str(self.port)]
        command += ["--gallery", str(self.gallery_dir), "--device", "cpu"]
        if workers is not None:
            command += ["--workers", str(workers)]
        self.command = command
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command, env=bench_env(), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers too: one killpg ends them all
            )  # fmt: skip
        self.pid = self.process.pid  # `studio` execs Streamlit: the same process

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.fail(f"exited with {self.process.returncode}")
            health = f"{self.url}/_stcore/health"
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.25)
        self.fail(f"did not answer within {START_TIMEOUT_S:.0f} s")

    def engine_pid(self) -> int | None:
        """The process that generates: the pool's worker, or the web process with --workers 0."""
        import psutil

        if self.workers == 0:
            return self.pid
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                if "nano_banana.generate.worker" in " ".join(child.cmdline()):
                    return child.pid
        return None

    def fail(self, why: str) -> None:
        tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        raise SystemExit(f"studio '{self.name}' {why}; its log ({self.log}):\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived the web process
            os.killpg(self.pid, signal.SIGKILL)


# --- browser sessions ------------------------------------------------------------------------


def open_session(browser, studio: Studio, seed: int):
    """A fresh browser context on the Create page with the prompt typed and ``seed`` locked."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(studio.url)
    page.get_by_role("button", name="Generate", exact=True).wait_for()
    seed_box = page.get_by_label("Seed", exact=True)
    seed_box.fill(str(seed))
    seed_box.press("Enter")  # typing a seed locks it (ui_job._lock_seed)
    expect(page.get_by_text(f"every image uses seed {seed}")).to_be_visible()
    box = page.get_by_role("textbox", name="What to take apart")
    box.fill(PROMPT)
    box.press("Control+Enter")  # Streamlit sends a text area's value on Ctrl+Enter or blur
    expect(page.get_by_test_id("stCode").first).to_contain_text(PROMPT)
    return page


def results_shown(page) -> int:
    return page.get_by_role("button", name="Download PNG").count()


def failure_shown(page) -> str | None:
    failed = page.get_by_text("Generation failed")
    return failed.first.inner_text() if failed.count() else None


def click_and_watch(pages: list, studio: Studio, timeout_s: float) -> list[float]:
    """Press Generate on every page, then poll each until its result shows: click->result s."""
    before = [results_shown(p) for p in pages]
    clicked = []
    for page in pages:
        page.get_by_role("button", name="Generate", exact=True).click()
        clicked.append(time.monotonic())
    walls: list[float | None] = [None] * len(pages)
    deadline = time.monotonic() + timeout_s * len(pages)  # the jobs queue for one engine
    while any(w is None for w in walls):
        if time.monotonic() > deadline:
            studio.fail(f"showed {walls.count(None)} of {len(pages)} results too late")
        for i, page in enumerate(pages):
            if walls[i] is not None:
                continue
            if results_shown(page) > before[i]:
                walls[i] = time.monotonic() - clicked[i]
            elif (message := failure_shown(page)) is not None:
                studio.fail(f"failed a job: {message}")
        time.sleep(POLL_S)
    return walls


def png_record(path: Path) -> dict:
    """The JSON record in one of our PNGs, read raw: this process does not import nano_banana
    (its processes run the snapshot, whose record may have fields the installed copy lacks)."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text[RECORD_KEY])


def new_records(studio: Studio, seen: set[Path]) -> list[dict]:
    """The records of the studio's gallery images not seen before (and mark them seen),
    read from the gallery's files."""
    paths = sorted(set((studio.gallery_dir / "images").rglob("*.png")) - seen)
    seen.update(paths)
    return sorted((png_record(path) for path in paths), key=lambda r: r["request"]["seed"])


def renice_threads(pids: list[int], niceness: int) -> None:
    """Every thread of these processes to ``niceness`` (on Linux a nice value is per thread;
    threads started later inherit their creator's)."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):  # a thread that just ended
                os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


def run_studio_arm(
    browser, studio: Studio, n: int, rnd: int, seen: set[Path], args: argparse.Namespace
) -> tuple[ArmRun, list[dict]]:
    """N sessions each generate one image and watch it; the records come from the gallery."""
    from playwright.sync_api import Error as PlaywrightError

    arm = f"{studio.name} x{n}" + (", watchers niced" if args.renice_watchers else "")
    seeds = [SEED0 + 100 * rnd + k for k in range(n)]
    pages = []
    try:
        pages += [open_session(browser, studio, seed) for seed in seeds]
        if args.renice_watchers:  # the web process and the browsers yield to the worker
            renice_threads([studio.pid, *browser_pids()], WATCHERS_NICE)
        run = ArmRun(arm, rnd, seeds=seeds)
        meter = CpuMeter(studio)
        started = time.monotonic()
        run.wall_s = click_and_watch(pages, studio, args.timeout)
        run.span_s = time.monotonic() - started
        meter.stop(run)
    except PlaywrightError as exc:  # the page broke or its labels changed: say so, with the log
        studio.fail(f"{arm}: the Create page did not answer: {str(exc).splitlines()[0]}")
    finally:
        for page in pages:
            page.context.close()
    records = new_records(studio, seen)
    got = sorted(r["request"]["seed"] for r in records)
    if got != seeds:
        raise SystemExit(f"{arm}: expected images with seeds {seeds}, the gallery has {got}")
    run.engine_s = [r["duration_s"] for r in records]
    run.load_average = os.getloadavg()
    return run, records


# --- the CLI ----------------------------------------------------------------------------------


def run_cli_arm(rnd: int, work: Path, calls: int = 1) -> tuple[ArmRun, list[dict]]:
    """``nano-banana generate`` as a user runs it: one image per fresh process."""
    import resource

    run = ArmRun("cli", rnd)
    records = []
    out = work / "cli"
    for k in range(calls):
        seed = SEED0 + 100 * rnd + k
        command = [sys.executable, "-c", CLI_WITH_CPU_PROBE, "generate", PROMPT, "--seed",
                   str(seed), "--no-server", "--device", "cpu", "--out", str(out), "--json"]  # fmt: skip
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ticks = system_busy_ticks()
        started = time.monotonic()
        done = subprocess.run(command, env=bench_env(), capture_output=True, text=True)
        wall = time.monotonic() - started
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"cli failed ({done.returncode}):\n{done.stderr[-3000:]}")
        path = json.loads(done.stdout)["images"][0]["path"]
        record = png_record(Path(path))  # the file's own record, as `show --json` prints
        records.append(record)
        run.engine_s.append(record["duration_s"])
        run.wall_s.append(wall)
        run.seeds.append(seed)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        draw_cpu, wait, blocks = map(float, done.stderr.split("bench-draw ")[1].split()[:3])
        first = k == 0
        run.process_cpu_s = cpu + (0 if first else run.process_cpu_s)
        run.draw_cpu_s = draw_cpu + (0 if first else run.draw_cpu_s)
        run.engine_wait_s = wait + (0 if first else run.engine_wait_s)
        run.engine_blocks = blocks + (0 if first else run.engine_blocks)
        run.span_s += wall
        busy1, total1 = system_busy_ticks()
        run.system_busy_cores = (busy1 - ticks[0]) / max(1, total1 - ticks[1]) * os.cpu_count()
    run.load_average = os.getloadavg()
    return run, records


# --- checks and the table ---------------------------------------------------------------------


def same_work(records: list[dict], reference: dict) -> None:
    """Every image is the same work as the CLI's: settings, model, LoRAs, final prompt."""

    def key(r: dict) -> tuple:
        loras = tuple((u["name"], u["scale"]) for u in r["loras"])
        settings = tuple(r["request"][k] for k in SAME_WORK)
        return (*settings, r["prompt_used"], r["base_model"], loras, r["device"], r["dtype"])

    for record in records:
        if key(record) != key(reference):
            raise SystemExit(
                "the studio and the CLI made different work; not comparable:\n"
                f"  studio {key(record)}\n  cli    {key(reference)}"
            )


def arm_order(rnd: int, arms: list[str]) -> list[str]:
    """The arms rotated by one each round."""
    shift = rnd % len(arms)
    return arms[shift:] + arms[:shift]


def med(values: list[float]) -> float:
    """The median of the values that are numbers (NaN: not measured)."""
    import statistics

    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def per_image(group: list[ArmRun], attr: str) -> float:
    """The median over runs of ``attr`` (a run's total) divided by the run's images."""
    return med([getattr(r, attr) / len(r.engine_s) for r in group])


def summarize(runs: list[ArmRun]) -> dict[str, dict]:
    """Per arm: medians of engine time, wall, and CPU per image."""
    arms: dict[str, list[ArmRun]] = {}
    for run in runs:
        arms.setdefault(run.arm, []).append(run)
    cli_engine = med([e for r in arms.get("cli", []) for e in r.engine_s])
    summary = {}
    for arm, group in arms.items():
        engine = [e for r in group for e in r.engine_s]
        summary[arm] = {
            "images": len(engine),
            "engine_s": engine,
            "engine_median_s": med(engine),
            "ratio_vs_cli": med(engine) / cli_engine,
            "wall_s": [w for r in group for w in r.wall_s],
            "wall_median_s": med([w for r in group for w in r.wall_s]),
            "worker_cpu_per_image_s": per_image(group, "worker_cpu_s"),
            "web_cpu_per_image_s": per_image(group, "web_cpu_s"),
            "browser_cpu_per_image_s": per_image(group, "browser_cpu_s"),
            "process_cpu_per_image_s": per_image(group, "process_cpu_s"),
            "draw_cpu_per_image_s": per_image(group, "draw_cpu_s"),
            "engine_wait_per_image_s": per_image(group, "engine_wait_s"),
            "engine_blocks_per_image": per_image(group, "engine_blocks"),
            "system_busy_cores": med([r.system_busy_cores for r in group]),
        }
    return summary


def fmt(value: float, digits: int = 2, suffix: str = "") -> str:
    return "-" if value != value else f"{value:.{digits}f}{suffix}"


def table_rows(summary: dict[str, dict]) -> list[list[str]]:
    rows = []
    for arm, s in summary.items():
        spread = benchlib.fmt_ms(s["engine_s"], digits=2)
        verdict = ""
        if arm.startswith("pool"):
            verdict = " ok" if s["ratio_vs_cli"] <= TARGET_RATIO else " MISSED"
        rows.append([
            arm,
            str(s["images"]),
            spread,
            "1.00" if arm == "cli" else fmt(s["ratio_vs_cli"]) + verdict,
            fmt(s["wall_median_s"], 1),
            fmt(s["worker_cpu_per_image_s"]) if arm != "cli" else fmt(
                s["draw_cpu_per_image_s"]) + f" (process {fmt(s['process_cpu_per_image_s'], 1)})",
            fmt(s["engine_wait_per_image_s"]),
            fmt(s["engine_blocks_per_image"], 0),
            fmt(s["web_cpu_per_image_s"]),
            fmt(s["browser_cpu_per_image_s"]),
            fmt(s["system_busy_cores"], 1),
        ])  # fmt: skip
    return rows


HEADER = [
    "arm",
    "images",
    "engine s/image, median [min-max]",
    f"vs CLI (target <= {TARGET_RATIO})",
    "wall s (cli: process; studio: click->result)",
    "engine CPU s/image (cli: generation; studio: engine process per job)",
    "engine waited for a CPU s/image",
    "engine blocked (times)/image",
    "web CPU s/image",
    "browsers CPU s/image",
    "busy cores (machine)",
]


def print_rich(title: str, rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


# --- the run ----------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="rounds; each runs every arm once")
    p.add_argument(
        "--inproc-rounds", type=int, default=None,
        help="rounds with the --workers 0 arms (default: all; each can take minutes)",
    )  # fmt: skip
    p.add_argument("--cli-calls", type=int, default=2, help="CLI processes per round")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per image")
    p.add_argument(
        "--source", default="head", choices=["head", "worktree"],
        help="code every process runs: the last commit (default) or the working tree, copied",
    )  # fmt: skip
    p.add_argument(
        "--renice-watchers", action="store_true",
        help="diagnosis: run the pool studio's web process and the browsers at nice 19, so the "
        "worker gets the CPU they would take (no --workers 0 arms: they cannot be told apart)",
    )  # fmt: skip
    p.add_argument("--work", default=None, help="folder for galleries and logs (default: temp)")
    p.add_argument("--json", default=None, help="write all numbers here")
    return p.parse_args(argv)


def warm_up(browser, studios: list[Studio], seen: dict[str, set[Path]], timeout_s: float):
    """Each studio's first page loads its model; its first image fits the preview map."""
    records = []
    for studio in studios:
        studio.wait_healthy()
        page = open_session(browser, studio, SEED0 - 1)
        try:
            click_and_watch([page], studio, timeout_s * 3)
        finally:
            page.context.close()
        records += new_records(studio, seen[studio.name])
    return records


def measure(args, work: Path, browser, studios: dict[str, Studio]) -> tuple[list[ArmRun], dict]:
    seen = {name: set() for name in studios}
    cli_warm, cli_records = run_cli_arm(-1, work)  # the page cache, and the reference record
    reference = cli_records[0]
    same_work(warm_up(browser, list(studios.values()), seen, args.timeout), reference)
    print(f"warm: cli {cli_warm.engine_s[0]:.2f} s/image; studios up", flush=True)
    runs: list[ArmRun] = []
    inproc_rounds = args.rounds if args.inproc_rounds is None else args.inproc_rounds
    for rnd in range(args.rounds):
        arms = ["cli", *(f"{name} x{n}" for name in studios for n in WATCHERS)]
        if rnd >= inproc_rounds:
            arms = [a for a in arms if not a.startswith("inproc")]
        for arm in arm_order(rnd, arms):
            if arm == "cli":
                run, records = run_cli_arm(rnd, work, args.cli_calls)
            else:
                name, n = arm.split(" x")
                run, records = run_studio_arm(browser, studios[name], int(n), rnd, seen[name], args)
            same_work(records, reference)
            runs.append(run)
            print(f"round {rnd} {arm}: engine {run.engine_s} wall "
                  f"{[round(w, 1) for w in run.wall_s]}", flush=True)  # fmt: skip
    return runs, reference


def main(argv=None) -> None:
    args = parse_args(argv)
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM}: run scripts/install-browser")
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: OMP_NUM_THREADS is not 1 here; every process this starts gets 1")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-studio-"))
    work.mkdir(parents=True, exist_ok=True)
    SOURCE.update(snapshot_source(work, args.source))
    check_snapshot_used()
    print(f"code: {SOURCE['source']} ({SOURCE['commit']}), copied to {SOURCE['path']}")
    load_start = os.getloadavg()
    started = time.time()
    studios = {"pool": Studio("pool", None, work)}
    if not args.renice_watchers and args.inproc_rounds != 0:  # (its engine is its web process)
        studios["inproc"] = Studio("inproc", 0, work)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True
            )
            try:
                runs, reference = measure(args, work, browser, studios)
            finally:
                browser.close()
    finally:
        for studio in studios.values():
            studio.stop()
    load_end = os.getloadavg()
    report(args, runs, reference, load_start, load_end, time.time() - started, studios)


def report(args, runs, reference, load_start, load_end, elapsed, studios) -> None:
    summary = summarize(runs)
    request = reference["request"]
    title = (
        f"Studio vs CLI, demo model, {request['width']}x{request['height']}, "
        f"{request['steps']} steps, cfg {request['cfg']}, CPU, 1 torch thread; "
        f"load {load_start[0]:.1f} -> {load_end[0]:.1f} on {os.cpu_count()} cores"
    )
    rows = table_rows(summary)
    print_rich(title, rows)
    benchlib.print_table(title, HEADER, rows)
    info = benchlib.machine_info("cpu")
    info["load_average_start"], info["load_average_end"] = load_start, load_end
    payload = {
        "benchmark": "studio vs cli (issue 14)",
        "command": " ".join(sys.argv),
        "code": dict(SOURCE),
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "settings": request,
        "studio_commands": {name: s.command for name, s in studios.items()},
        "summary": summary,
        "runs": [asdict(r) for r in runs],
    }
    benchlib.write_json(args.json, payload)


if __name__ == "__main__":
    main()
