"""``analyze`` and ``annotate``: judge an image's layout, draw callouts on it.

A thin shell over ``nano_banana.analysis`` (``layout`` and ``callouts``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..analysis.callouts import annotate_file, parse_part_names
from ..analysis.layout import LayoutReport, analyze_layout, describe_report, load_image
from .display import visible


def register(app: typer.Typer) -> None:
    app.command(name="analyze")(analyze)
    app.command(name="annotate")(annotate)


def analyze(
    image: Path = typer.Argument(..., help="Image to judge (PNG, JPEG, WebP...)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Say whether an image is a disassembled layout (knolling or exploded view), and why."""
    report = analyze_layout(load_image(image))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console = Console(highlight=False, emoji=False)
    console.print(_summary_table(report, image))
    if report.parts:
        console.print(_parts_table(report))


def annotate(
    image: Path = typer.Argument(..., help="Image to label; it is never modified."),
    parts: str | None = typer.Option(
        None,
        "--parts",
        help='Part names in reading order, e.g. "strap, case, crown". '
        "Missing names become 'part N'.",
        show_default=False,
    ),  # fmt: skip
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output file (default: IMAGE_annotated.png beside IMAGE).",
        show_default=False,
    ),
) -> None:
    """Draw numbered leader lines to each part found and a parts list beside the picture."""
    written, annotation = annotate_file(image, out, parse_part_names(parts))
    for warning in annotation.warnings:
        typer.echo(f"warning: {visible(warning)}", err=True)
    typer.echo(f"wrote {visible(written)} ({len(annotation.callouts)} callouts)")


def _summary_table(report: LayoutReport, image: Path) -> Table:
    # Text, not strings: a file name is not rich markup ("[/]" in it would crash the table)
    title = Text(visible(f"{image.name}: {report.verdict_text}"))
    table = Table(title=title, show_header=False)
    table.add_column("measure", style="bold")
    table.add_column("value")
    for name, value in describe_report(report).items():
        table.add_row(Text(name), Text(visible(value)))
    for reason in report.reasons:
        table.add_row("note", Text(visible(reason)))
    return table


def _parts_table(report: LayoutReport) -> Table:
    table = Table(title="parts (reading order)")
    for column in ("#", "box x0,y0,x1,y1", "area px", "colour"):
        table.add_column(column)
    for number, part in enumerate(report.parts, start=1):
        r, g, b = part.color
        table.add_row(str(number), ",".join(map(str, part.bbox)), str(part.area),
                      f"#{r:02x}{g:02x}{b:02x}")  # fmt: skip
    return table
