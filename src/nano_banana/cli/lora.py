"""``lora bootstrap``: a structure LoRA from the base model alone (``nano_banana.synth.bootstrap``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ..generate.spec import EngineSpec
from ..synth.bootstrap import BootstrapConfig, bootstrap, default_objects, quick_config
from ..synth.captions import CAPTION_STYLES
from ..synth.dataset import SynthConfig
from .common import _progress_bar, model_command

lora_app = typer.Typer(help="Make structure LoRAs.", no_args_is_help=True)
SYNTH = SynthConfig(objects=("watch",))


def register(app: typer.Typer) -> None:
    app.add_typer(lora_app, name="lora")


@lora_app.command("bootstrap")
@model_command
def bootstrap_command(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the boards, the LoRA and the eval."
    ),
    objects: str = typer.Option(
        "",
        help="Catalog objects to draw boards of, comma-separated.",
        show_default="the demo world's objects on a demo base, else a dozen common products",
    ),
    presets: str = typer.Option(",".join(SYNTH.presets), help="Presets with a board layout."),
    count: int = typer.Option(SYNTH.count, help="Boards in the training set."),
    seed: int = typer.Option(SYNTH.seed, help="Seed of the set and the training."),
    styles: str = typer.Option(
        ",".join(SYNTH.styles), help=f"Caption styles: {', '.join(CAPTION_STYLES)}."
    ),
    steps: int | None = typer.Option(
        None, help="Training steps.", show_default="2000 on SDXL, the demo LoRA's on a demo base"
    ),
    eval_seeds: int = typer.Option(4, help="Eval seeds per object and preset (0: no eval)."),
    quick: bool = typer.Option(
        False, "--quick", help="A small run of every stage (40 boards, 300 steps, 2 eval seeds)."
    ),
    *,
    model: EngineSpec,
) -> None:
    """Synthesize boards with the base model, check them, train a structure LoRA on them and
    evaluate it (LoRA off vs on). Stop it any time; the same command resumes it."""
    config = BootstrapConfig(
        synth=SynthConfig(
            objects=tuple(o.strip() for o in objects.split(",") if o.strip())
            or default_objects(model),
            presets=tuple(p.strip() for p in presets.split(",") if p.strip()),
            count=count, seed=seed, styles=styles,
        ),
        steps=steps, eval_seeds=eval_seeds,
    )  # fmt: skip
    config = quick_config(config) if quick else config
    bar = SynthBar()
    try:
        result = bootstrap(
            model, config, out, log=lambda m: typer.echo(m, err=True), synth_progress=bar
        )
    finally:
        bar.close()
    typer.echo(f"LoRA: {result.lora_path}")
    from ..analysis.evaluation import summary_table  # deferred: layout analysis imports scipy

    for preset, report in result.evals.items():
        Console().print(summary_table(report))
        typer.echo(f"(report: {out / f'eval-{preset}'})")


class SynthBar:
    """The synth stage's progress bar, shown while boards are drawn (the trainer has its own)."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int, kept: int) -> None:
        if self.bar is None:
            self.bar = _progress_bar()
            self.bar.start()
            self.task = self.bar.add_task("boards", total=total)
        self.bar.update(self.task, completed=done, description=f"boards ({kept} kept)")
        if done == total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
