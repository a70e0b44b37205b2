"""``demo …``: the procedural demo world (and, later, the demo model built from it).

A thin shell over ``nano_banana.demo``. ``demo_app`` is the sub-app other areas
extend with their own ``demo`` commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..demo import VIEWS, parse_views, write_world
from ..demo.world import DEFAULT_SIZE

demo_app = typer.Typer(
    help="The built-in demo: a procedural world of objects, assembled, knolled and exploded.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")


@demo_app.command("world")
def world(
    out: Path = typer.Argument(..., help="Folder to write PNG + .txt caption pairs into."),
    count: int = typer.Option(
        60, "--count", "-n", help="Object instances; each is drawn once per view."
    ),
    seed: int = typer.Option(0, "--seed", help="World seed: the same seed writes the same files."),
    size: int = typer.Option(DEFAULT_SIZE, "--size", help="Image side in pixels (multiple of 8)."),
    views: str = typer.Option(
        ",".join(v.value for v in VIEWS), "--views", help="Comma-separated views to draw."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into a folder that already holds files."
    ),
) -> None:
    """Draw the demo world as a training dataset (the trainer's folder format)."""
    written = write_world(out, count, seed=seed, size=size, views=parse_views(views),
                          overwrite=overwrite)  # fmt: skip
    typer.echo(
        f"wrote {written.images} images with captions to {written.folder} "
        f"(ground truth: {written.manifest.name})"
    )
