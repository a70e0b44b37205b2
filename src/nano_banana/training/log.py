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

# A training row fills the first five columns, a validation row the step and the last three:
# each kind of row at its own steps, one file for the whole curve.
TRAIN_COLUMNS = ("step", "loss", "lr", "samples_per_s", "elapsed_s")
VALIDATION_COLUMNS = ("val_loss", "layout_score", "layout_parts")
COLUMNS = TRAIN_COLUMNS + VALIDATION_COLUMNS

Row = dict[str, float | None]


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
    """Append-only loss CSV (training and validation rows) with a PNG plot and optional
    TensorBoard scalars."""

    def __init__(self, out_dir: Path, resume_step: int = 0, tensorboard: bool = True):
        self.csv_path = Path(out_dir) / "loss.csv"
        self.png_path = Path(out_dir) / "loss.png"
        self.rows = self._read_rows(resume_step)
        self._rewrite()
        self.writer = _tensorboard_writer(Path(out_dir) / "tensorboard") if tensorboard else None

    def _read_rows(self, resume_step: int) -> list[Row]:
        if resume_step == 0 or not self.csv_path.is_file():
            return []
        with self.csv_path.open(newline="", encoding="utf-8") as f:
            # a file from before the validation columns simply lacks them
            rows = [{k: _parse(row.get(k)) for k in COLUMNS} for row in csv.DictReader(f)]
        return [row for row in rows if row["step"] is not None and row["step"] <= resume_step]

    def _rewrite(self) -> None:
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a crash while the kept rows are rewritten must not lose the curve.
        with atomic_path(self.csv_path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _fmt(row[k]) for k in COLUMNS})

    def _add(self, row: Row) -> None:
        row = {k: row.get(k) for k in COLUMNS}
        self.rows.append(row)
        with self.csv_path.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=COLUMNS).writerow({k: _fmt(row[k]) for k in COLUMNS})

    def append(self, info: StepInfo) -> None:
        """A training row: the step's loss, lr and speed."""
        self._add({k: getattr(info, k) for k in TRAIN_COLUMNS})
        if self.writer is not None:
            self.writer.add_scalar("train/loss", info.loss, info.step)
            self.writer.add_scalar("train/lr", info.lr, info.step)

    def append_validation(self, evaluation) -> None:
        """A validation row: what ``evaluation`` (a ``validation.Evaluation``) measured."""
        self._add(
            {"step": evaluation.step, **{k: getattr(evaluation, k) for k in VALIDATION_COLUMNS}}
        )
        if self.writer is not None:
            for name in VALIDATION_COLUMNS:
                value = getattr(evaluation, name)
                if value is not None:
                    self.writer.add_scalar(f"val/{name}", value, evaluation.step)

    def series(self, column: str) -> list[tuple[float, float]]:
        """(step, value) of the rows that have ``column``."""
        return [(r["step"], r[column]) for r in self.rows if r[column] is not None]

    def plot(self) -> Path:
        plot_loss(
            self.series("loss"),
            self.png_path,
            val_points=self.series("val_loss"),
            layout_points=self.series("layout_score"),
        )
        return self.png_path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def _parse(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except (ImportError, ModuleNotFoundError):  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


# --- the plot -------------------------------------------------------------------------------

PAD, LAYOUT_PANEL = 40, 150  # margin around a panel; height of the layout-score panel
TRAIN_GREY, TRAIN_BLUE, VAL_ORANGE, LAYOUT_GREEN = (
    (180,) * 3,
    (30, 90, 200),
    (230, 120, 20),
    (30, 150, 60),
)


@dataclass(frozen=True)
class _Panel:
    """A plot area: steps map to x across it, values in [lo, hi] to y up it."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    steps: tuple[float, float]
    lo: float
    hi: float

    def xy(self, step: float, value: float) -> tuple[float, float]:
        left, top, right, bottom = self.box
        first, last = self.steps
        x = left + (step - first) / max(1e-9, last - first) * (right - left)
        y = bottom - (value - self.lo) / max(1e-12, self.hi - self.lo) * (bottom - top)
        return x, y

    def frame(self, draw: ImageDraw.ImageDraw, title: str, fmt: str = ".3g") -> None:
        left, top, right, bottom = self.box
        draw.rectangle(self.box, outline="black")
        draw.text((left, top - 16), title, fill="black")
        draw.text((4, top - 6), f"{self.hi:{fmt}}", fill="black")
        draw.text((4, bottom - 6), f"{self.lo:{fmt}}", fill="black")


def plot_loss(
    points: list[tuple[float, float]],
    path: Path,
    size: tuple[int, int] = (640, 360),
    *,
    val_points: list[tuple[float, float]] = (),
    layout_points: list[tuple[float, float]] = (),
) -> Path:
    """The loss chart, drawn with Pillow: training loss (raw in grey, moving average in blue)
    and the validation loss (orange) on one scale; below it, when measured, the layout score
    (green, 0..1) in a panel of its own."""
    finite = [(s, v) for s, v in points if math.isfinite(v)]
    val = [(s, v) for s, v in val_points if math.isfinite(v)]
    layout = [(s, v) for s, v in layout_points if math.isfinite(v)]
    width, height = size[0], size[1] + (LAYOUT_PANEL if layout else 0)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    all_steps = [s for s, _ in finite + val + layout] or [0.0]
    steps = (min(all_steps), max(all_steps))
    values = [v for _, v in finite + val] or [0.0]
    lo, hi = min(values), max(values)
    loss_panel = _Panel(
        (PAD, PAD, width - 10, size[1] - PAD), steps, lo, hi if hi > lo else lo + 1e-8
    )
    last = int(max(s for s, _ in finite)) if finite else 0
    # the points are the logged rows (one every --log-every steps), not every step
    title = f"training loss to step {last}, {len(finite)} logged points (grey: raw, blue: average)"
    loss_panel.frame(draw, title + ("; validation loss: orange" if val else ""))
    if len(finite) >= 2:
        draw.line([loss_panel.xy(s, v) for s, v in finite], fill=TRAIN_GREY)
        smooth = _moving_average([v for _, v in finite], max(1, len(finite) // 20))
        draw.line(
            [loss_panel.xy(s, v) for (s, _), v in zip(finite, smooth, strict=True)],
            fill=TRAIN_BLUE,
            width=2,
        )
    _series(draw, loss_panel, val, VAL_ORANGE)
    bottom = loss_panel.box[3]
    if layout:
        top = size[1] + 10
        panel = _Panel((PAD, top, width - 10, top + LAYOUT_PANEL - 2 * PAD + 10), steps, 0.0, 1.0)
        panel.frame(draw, "layout score: share judged a disassembled layout", fmt=".0f")
        _series(draw, panel, layout, LAYOUT_GREEN)
        bottom = panel.box[3]
    if len(finite) + len(val) + len(layout) >= 2:
        draw.text((PAD, bottom + 6), f"step {int(steps[0])}", fill="black")
        draw.text((width - 90, bottom + 6), f"step {int(steps[1])}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def _moving_average(values: list[float], window: int) -> list[float]:
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]


def _series(draw: ImageDraw.ImageDraw, panel: _Panel, points: list, colour) -> None:
    """A measured series: a line through dots (a few points, not a dense curve)."""
    xy = [panel.xy(s, v) for s, v in points]
    if len(xy) >= 2:
        draw.line(xy, fill=colour, width=2)
    for x, y in xy:
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)


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
