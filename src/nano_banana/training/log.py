"""What a training run reports while it runs: progress bar, loss curve (CSV + PNG), TensorBoard.

Only the main process logs. The loss CSV survives a crash (one row per logged
step, flushed); on resume the rows after the checkpoint's step are dropped, so
the curve of a resumed run is the curve of an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from ..atomic import atomic_path

COLUMNS = ("step", "loss", "lr", "samples_per_s", "elapsed_s")


@dataclass
class StepInfo:
    """One finished optimizer step, as reported to the progress bar, the log and callbacks."""

    step: int
    max_steps: int
    loss: float
    lr: float
    samples_per_s: float
    elapsed_s: float


class LossLog:
    """Append-only loss CSV with a PNG plot and optional TensorBoard scalars."""

    def __init__(self, out_dir: Path, resume_step: int = 0, tensorboard: bool = True):
        self.csv_path = Path(out_dir) / "loss.csv"
        self.png_path = Path(out_dir) / "loss.png"
        self.rows = self._read_rows(resume_step)
        self._rewrite()
        self.writer = _tensorboard_writer(Path(out_dir) / "tensorboard") if tensorboard else None

    def _read_rows(self, resume_step: int) -> list[dict[str, float]]:
        if resume_step == 0 or not self.csv_path.is_file():
            return []
        with self.csv_path.open(newline="", encoding="utf-8") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        return [row for row in rows if row["step"] <= resume_step]

    def _rewrite(self) -> None:
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a crash while the kept rows are rewritten must not lose the curve.
        with atomic_path(self.csv_path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _fmt(row[k]) for k in COLUMNS})

    def append(self, info: StepInfo) -> None:
        row = {
            "step": info.step,
            "loss": info.loss,
            "lr": info.lr,
            "samples_per_s": info.samples_per_s,
            "elapsed_s": info.elapsed_s,
        }
        self.rows.append(row)
        with self.csv_path.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=COLUMNS).writerow({k: _fmt(row[k]) for k in COLUMNS})
        if self.writer is not None:
            self.writer.add_scalar("train/loss", info.loss, info.step)
            self.writer.add_scalar("train/lr", info.lr, info.step)

    def plot(self) -> Path:
        plot_loss([(r["step"], r["loss"]) for r in self.rows], self.png_path)
        return self.png_path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except (ImportError, ModuleNotFoundError):  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


def plot_loss(
    points: list[tuple[float, float]], path: Path, size: tuple[int, int] = (640, 360)
) -> Path:
    """A plain loss-vs-step line chart (raw loss in grey, moving average in blue), drawn with Pillow."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    pad = 40
    finite = [(s, v) for s, v in points if math.isfinite(v)]
    draw.text((pad, 8), f"training loss ({len(finite)} steps)", fill="black")
    draw.rectangle((pad, pad, width - 10, height - pad), outline="black")
    if len(finite) >= 2:
        steps = [s for s, _ in finite]
        values = [v for _, v in finite]
        lo, hi = min(values), max(values)
        hi = hi if hi > lo else lo + 1e-8

        def xy(step: float, value: float) -> tuple[float, float]:
            x = pad + (step - steps[0]) / max(1e-9, steps[-1] - steps[0]) * (width - 10 - pad)
            y = height - pad - (value - lo) / (hi - lo) * (height - 2 * pad)
            return x, y

        draw.line([xy(s, v) for s, v in finite], fill=(180, 180, 180))
        window = max(1, len(values) // 20)
        smooth = [
            sum(values[max(0, i - window + 1) : i + 1])
            / len(values[max(0, i - window + 1) : i + 1])
            for i in range(len(values))
        ]
        draw.line(
            [xy(s, v) for s, v in zip(steps, smooth, strict=True)], fill=(30, 90, 200), width=2
        )
        draw.text((4, pad - 6), f"{hi:.3g}", fill="black")
        draw.text((4, height - pad - 6), f"{lo:.3g}", fill="black")
        draw.text((pad, height - pad + 6), f"step {int(steps[0])}", fill="black")
        draw.text((width - 90, height - pad + 6), f"step {int(steps[-1])}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


class ProgressBar:
    """A rich progress bar: step, loss, lr, samples/s and ETA. Does nothing when disabled."""

    def __init__(self, max_steps: int, start_step: int, enabled: bool = True):
        self.progress = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} samples/s"
            ),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=max_steps, completed=start_step, loss="-", lr="-", speed="-"
        )
        self.started = time.monotonic()

    def update(self, info: StepInfo) -> None:
        if self.progress is None:
            return
        self.progress.update(
            self.task,
            completed=info.step,
            loss=f"{info.loss:.4f}",
            lr=f"{info.lr:.2e}",
            speed=f"{info.samples_per_s:.2f}",
        )

    def note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(message)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
