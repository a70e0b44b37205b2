"""``dataset check``: what is wrong with a training folder, with paths, before any training."""

from __future__ import annotations

import json

import typer

from ..training.check import check_dataset
from ..training.config import TrainConfig, field_help

dataset_app = typer.Typer(help="Inspect a LoRA training dataset.", no_args_is_help=True)
DEFAULTS = TrainConfig()


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
