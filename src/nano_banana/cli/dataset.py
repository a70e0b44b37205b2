"""``dataset check``: what is wrong with a training folder, with paths, before any training;
``dataset synth``: a training folder of parts-first boards drawn by the base model."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..generate.spec import EngineSpec
from ..prompt.presets import load_presets
from ..synth.captions import CAPTION_STYLES
from ..synth.dataset import (
    SynthConfig,
    SynthJob,
    SynthReport,
    check_names,
    make_set,
    parse_range,
    prepare_synth,
)
from ..training.config import TrainConfig, field_help
from .common import _progress_bar, build_engine, err_console, model_command

dataset_app = typer.Typer(help="Make or inspect a LoRA training dataset.", no_args_is_help=True)
DEFAULTS = TrainConfig()
SYNTH = SynthConfig(objects=("watch",))


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")


@dataset_app.command("check")
def check(
    folder: str = typer.Argument(
        ..., help="Folder of images with .txt captions or a metadata.jsonl/.csv."
    ),
    resolution: int = typer.Option(DEFAULTS.dataset.resolution, help=field_help("resolution")),
    caption_ext: str = typer.Option(DEFAULTS.dataset.caption_ext, help=field_help("caption_ext")),
    min_size_fraction: float = typer.Option(
        DEFAULTS.dataset.min_size_fraction, help=field_help("min_size_fraction")
    ),
    upscale: bool = typer.Option(DEFAULTS.dataset.upscale, help=field_help("upscale")),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report corrupt/truncated/undecodable images, bombs, missing or empty captions, tiny images,
    duplicates and the bucket distribution. Exit code 1 when anything is wrong."""
    from ..training.check import check_dataset  # deferred: the trainer's data code imports torch

    report = check_dataset(
        folder,
        resolution=resolution,
        caption_ext=caption_ext,
        min_size_fraction=min_size_fraction,
        upscale=upscale,
    )
    if as_json:
        data = {
            **report.summary(),
            "images_found": report.images_found,
            "problems": [vars(p) for p in report.problems],
        }
        typer.echo(json.dumps(data, indent=1, ensure_ascii=False))
    else:
        typer.echo(report.format())
    if not report.ok:
        raise typer.Exit(1)


@dataset_app.command("synth")
@model_command
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (or finish) the set in."),
    objects: str = typer.Option(
        ..., help="Catalog objects, comma-separated, e.g. watch,camera,speaker."
    ),
    presets: str = typer.Option(",".join(SYNTH.presets), help="Presets with a board layout."),
    count: int = typer.Option(
        SYNTH.count, help="Boards in the set, balanced over objects x presets."
    ),
    seed: int = typer.Option(SYNTH.seed, help="The whole set is a function of this seed."),
    styles: str = typer.Option(
        ",".join(SYNTH.styles), help=f"Caption styles drawn in turn: {', '.join(CAPTION_STYLES)}."
    ),
    explode: str = typer.Option(
        "{},{}".format(*SYNTH.explode), help="Explosion factor range LOW,HIGH (exploded views)."
    ),
    scale: str = typer.Option(
        "{},{}".format(*SYNTH.scale), help="Share of the image the layout fills, LOW,HIGH."
    ),
    variants: int = typer.Option(SYNTH.variants, help="Drawings of each part boards choose among."),
    tries: int = typer.Option(SYNTH.tries, help="Boards tried per item before it is left out."),
    size: int | None = typer.Option(
        None, help="Board side in pixels.", show_default="the model's native size"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    *,
    model: EngineSpec,
) -> None:
    """Draw a training set of parts-first boards: images, .txt captions and a plan.jsonl.

    Rerunning with the same options finishes an interrupted set (only missing items are made)."""
    config = SynthConfig(
        objects=tuple(o.strip() for o in objects.split(",") if o.strip()),
        presets=tuple(p.strip() for p in presets.split(",") if p.strip()),
        count=count, seed=seed, styles=styles, explode=parse_range(explode, "--explode"),
        scale=parse_range(scale, "--scale"), variants=variants, tries=tries, width=size,
        height=size,
    )  # fmt: skip
    check_names(config, load_presets(model.preset_dir), out_dir=out)  # before the model loads
    engine = build_engine(model, quiet)
    report = run_synth(engine, prepare_synth(engine, config, out), model.request_defaults(), quiet)
    typer.echo(report.format())


def run_synth(engine, job: SynthJob, request, quiet: bool) -> SynthReport:
    """The checked set made under a progress bar (items done, boards kept)."""
    if quiet:
        return make_set(engine, job, request)
    with _progress_bar() as bar:
        task = bar.add_task("boards", total=job.config.count)

        def progress(done: int, total: int, kept: int) -> None:
            bar.update(task, completed=done, description=f"boards ({kept} kept)")

        report = make_set(engine, job, request, progress)
    if report.rejected:
        err_console.print(f"{report.rejected} item(s) had no board the analyser accepted")
    return report
