"""``show`` and ``gallery …``: read an image's settings, browse and manage the gallery.

A thin shell over ``nano_banana.gallery`` (``png`` for a file's record, ``store``); every
check (ids, paths, confirmations aside) lives in the library.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import GalleryError, MetadataError
from ..gallery.png import (
    A1111_KEY,
    RECORD_KEY,
    missing_record_message,
    parse_a1111,
    parse_record_json,
    read_png_text,
)
from ..gallery.store import ENV_VAR, Gallery, GalleryEntry
from .display import json_text, markup, visible

_META_KEY = "nano_banana.gallery_root"  # where the sub-app's --gallery reaches its commands

gallery_app = typer.Typer(
    help="Browse and manage saved images (an SQLite index plus PNG files).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command(name="show")(show)
    app.add_typer(gallery_app, name="gallery")


# --- show IMAGE.png -----------------------------------------------------------


def show(
    image: Path = typer.Argument(..., help="A PNG saved by nano-banana or another SD tool."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
    callouts: bool = typer.Option(
        False,
        "--callouts",
        help="Write IMAGE_annotated.png: numbered callouts and a parts list (a board's from its plan).",
    ),
    parts_csv: Optional[Path] = typer.Option(
        None, "--parts-csv", help="Write a composed board's parts list to this CSV file."
    ),
    plan_json: Optional[Path] = typer.Option(
        None,
        "--plan-json",
        help="Write a composed board's plan to this JSON file, to edit and draw again "
        "with generate --from IMAGE --plan FILE.",
    ),
) -> None:
    """Print the generation settings stored in an image (ours and AUTOMATIC1111's)."""
    chunks = read_png_text(image)
    parameters = chunks.get(A1111_KEY)
    if parameters is None and RECORD_KEY not in chunks:
        raise MetadataError(missing_record_message(image, chunks))
    record, problem = None, None
    if RECORD_KEY in chunks:
        try:
            record = parse_record_json(chunks[RECORD_KEY], str(image))
        except MetadataError as exc:
            if parameters is None:
                raise
            problem = str(exc)  # still worth showing the A1111 text
    others = {k: v for k, v in chunks.items() if k not in (A1111_KEY, RECORD_KEY)}
    written = _write_board_files(image, record, callouts, parts_csv, plan_json)
    if as_json:
        _echo_json(
            {
                "file": str(image),
                "parameters": parameters,
                "parsed": parse_a1111(parameters) if parameters is not None else None,
                "record": record.to_dict() if record is not None else None,
                "record_error": problem,
                "lora_hashes": _lora_hashes(record),
                "other_chunks": others,
            }
        )
        return
    console = _console()
    if parameters is not None:
        console.rule("AUTOMATIC1111 parameters")
        # as written (tabs and line breaks are part of the prompt), but no terminal controls
        typer.echo(visible(parameters))
    if problem is not None:
        typer.echo(f"\nwarning: {visible(problem)}")
    elif record is None:
        typer.echo(
            f"\nno nano-banana record: made by another tool; --from cannot reproduce "
            f"{visible(image)}"
        )
    else:
        console.rule("nano-banana record")
        typer.echo(_record_text(record.to_dict()))
        _print_lora_hashes(console, record)
    for key, value in others.items():
        console.rule(f"chunk {markup(repr(key))}")
        typer.echo(visible(value[:2000]))
    _print_board(console, record)
    for path in written:
        typer.echo(str(path))


def _write_board_files(
    image: Path, record, callouts: bool, parts_csv: Path | None, plan_json: Path | None
) -> list[Path]:
    """--callouts, --parts-csv and --plan-json; a parts list and a plan need a composed board."""
    from ..generate.reproduce import write_plan_file
    from ..parts.labels import plan_of, write_callouts, write_parts_csv

    plan = plan_of(record) if record is not None else None
    if plan is None and parts_csv is not None:
        raise MetadataError(
            f"{image} is not a parts-first board, so it has no parts list; make one with "
            "--compose, or use 'nano-banana annotate' to number the parts found in an image"
        )
    if plan is None and plan_json is not None:
        raise MetadataError(
            f"{image} is not a parts-first board, so it has no plan; make one with --compose"
        )
    for target in (parts_csv, plan_json):
        if target is not None and not Path(target).parent.is_dir():
            raise MetadataError(f"cannot write '{target}': its folder does not exist")
    written = []
    if callouts:
        from ..analysis.layout import load_image

        written.append(write_callouts(load_image(image), record, image))
    if parts_csv is not None:
        written.append(write_parts_csv(plan, parts_csv))
    if plan_json is not None:
        written.append(write_plan_file(plan, plan_json))
    return written


def _lora_hashes(record) -> list[dict[str, str]]:
    """Each recorded LoRA's Civitai hashes: AutoV2 (whole file) and AutoV3 (tensor data)."""
    from ..lora.hashes import autov2, autov3

    return [
        {
            "name": use.name,
            "file": use.file,
            "autov2": autov2(use.sha256),
            "autov3": autov3(use.data_sha256),  # "" in records made before we kept it
        }
        for use in (record.loras if record is not None else ())
    ]


def _print_lora_hashes(console, record) -> None:
    """The hashes Civitai and A1111 know a LoRA by, to look it up there."""
    rows = _lora_hashes(record)
    if not rows:
        return
    console.rule("LoRA hashes (Civitai AutoV2 / AutoV3)")
    for row in rows:
        v2, v3 = row["autov2"] or "not recorded", row["autov3"] or "not recorded"
        typer.echo(visible(f"{row['name']} ({row['file']}): AutoV2 {v2}, AutoV3 {v3}"))


def _print_board(console, record) -> None:
    """A composed board's parts list and check, in plan order."""
    from ..parts.labels import plan_of

    plan = plan_of(record) if record is not None else None
    if plan is None:
        return
    console.rule(f"board: {markup(plan.layout)}, {len(plan.parts)} parts")
    for name, part in zip(plan.part_names(), plan.parts, strict=True):
        typer.echo(f"{part.number:3d}  {visible(name)}")
    check = record.board.get("check", {})
    problems = visible("; ".join(map(str, check.get("problems", []))))
    problems = f"({problems})" if problems else ""
    verdict = "accepted" if record.board.get("accepted") else f"not accepted {problems}".strip()
    found, planned = check.get("found"), check.get("planned")
    typer.echo(f"check: {visible(found)} parts found of {visible(planned)} planned; {verdict}")


# --- gallery ------------------------------------------------------------------


@gallery_app.callback()
def _gallery_options(
    ctx: typer.Context,
    gallery: Path | None = typer.Option(
        None,
        "--gallery",
        help=f"Gallery folder (default: env {ENV_VAR}, else the user data folder).",
        show_default=False,
    ),
) -> None:
    ctx.meta[_META_KEY] = gallery


def _open(ctx: typer.Context) -> Gallery:
    return Gallery.open(ctx.meta.get(_META_KEY))


@gallery_app.command("list")
def list_images(
    ctx: typer.Context,
    query: str | None = typer.Option(None, "--query", "-q", help="Text the prompt contains."),
    preset: str | None = typer.Option(None, "--preset", "-p", help="Only this preset."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000, help="At most this many."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (paging)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List saved images, newest first."""
    gallery = _open(ctx)
    entries = gallery.list(query=query, preset=preset, limit=limit, offset=offset)
    if as_json:
        _echo_json([_entry_json(e) for e in entries])
        return
    if not entries:
        typer.echo(f"no images in {visible(gallery.root)}" + (" match" if query or preset else ""))
        return
    table = Table("id", "created", "preset", "seed", "size", "prompt")
    for e in entries:
        prompt = " ".join(e.prompt.split())
        # Text cells, not strings: an index row comes from an image's own record, and a
        # string cell would be read as rich markup ("[/]" crashed the whole list).
        table.add_row(
            str(e.id),
            Text(visible(e.created[:19].replace("T", " "))),
            Text(visible(e.preset)),
            str(e.seed),
            f"{e.width}x{e.height}",
            Text(visible(prompt if len(prompt) <= 60 else prompt[:57] + "...")),
        )
    _console().print(table)
    total = gallery.count(query=query, preset=preset)
    if total > offset + len(entries):
        typer.echo(f"{offset + len(entries)} of {total} shown; use --offset for more")


@gallery_app.command("show")
def show_entry(
    ctx: typer.Context,
    entry_id: str = typer.Argument(..., metavar="ID", help="Gallery id (from `gallery list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show one saved image: its file and every setting that made it."""
    entry = _open(ctx).get(entry_id)
    if as_json:
        _echo_json(_entry_json(entry))
        return
    console = _console()
    console.rule(f"gallery image {entry.id}")
    typer.echo(f"file:    {visible(entry.path)}")
    typer.echo(f"created: {visible(entry.created)}")
    typer.echo(
        f"preset:  {visible(entry.preset)}    seed: {entry.seed}    "
        f"size: {entry.width}x{entry.height}"
    )
    loras = f"    LoRAs: {visible(entry.loras)}" if entry.loras else ""
    typer.echo(f"model:   {visible(entry.base_model)}{loras}")
    console.rule("record")
    typer.echo(_record_text(entry.record))


@gallery_app.command("delete")
def delete_entry(
    ctx: typer.Context,
    entry_id: str = typer.Argument(..., metavar="ID", help="Gallery id (from `gallery list`)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking."),
) -> None:
    """Delete a saved image and its index row."""
    gallery = _open(ctx)
    entry = gallery.get(entry_id)
    name = visible(entry.path.name)
    if not yes and not _confirm(f"delete gallery image {entry.id} ({name})?"):
        typer.echo("not deleted")
        raise typer.Exit(1)
    gallery.delete(entry.id)
    typer.echo(f"deleted {entry.id}: {name}")


def _confirm(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except (typer.Abort, click.Abort):  # typer >= 0.20 vendors click: two Abort classes
        # EOF on stdin: nobody can answer, so nothing is deleted.
        raise GalleryError(
            "not deleted: no answer to the confirmation (stdin is closed); pass --yes to delete "
            "without asking"
        ) from None


@gallery_app.command("export")
def export_entries(
    ctx: typer.Context,
    entry_ids: list[str] = typer.Argument(..., metavar="ID...", help="Gallery ids to export."),
    to: Path = typer.Option(..., "--to", help="Folder, or a file name ending in .zip."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files."),
) -> None:
    """Copy saved images (their original bytes, metadata included) to a folder or a zip."""
    dest = _open(ctx).export(entry_ids, to, overwrite=overwrite)
    typer.echo(f"exported {len(set(entry_ids))} image(s) to {visible(dest)}")


@gallery_app.command("repair")
def repair(
    ctx: typer.Context,
    grace: float = typer.Option(
        60.0, "--grace", min=0.0, help="Leave files younger than this many seconds (mid-save)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Reconcile the index with the files after crashes or manual deletes."""
    report = _open(ctx).repair(grace_s=grace)
    if as_json:
        _echo_json(report.to_dict())
        return
    labels = {
        "rows_removed": "removed row (file was gone)",
        "files_adopted": "adopted file (had our metadata)",
        "files_unknown": "left alone, no nano-banana metadata",
        "files_unsafe": "left alone, symlink or outside the gallery",
        "files_recent": "left for now, may still be saving",
        "temp_removed": "removed leftover temp file",
    }
    # the items are file names in the gallery folder: anyone may have dropped a file there
    lines = [
        f"{label}: {visible(item)}"
        for key, label in labels.items()
        for item in getattr(report, key)
    ]
    typer.echo("\n".join(lines) if lines else "gallery is consistent; nothing to repair")


# --- output helpers -------------------------------------------------------------


def _entry_json(entry: GalleryEntry) -> dict:
    return entry.to_dict()


def _echo_json(data: object) -> None:
    typer.echo(json_text(data))


def _record_text(record: dict) -> str:
    """A record for people: sorted JSON, every control character in it escaped."""
    return json_text(record, indent=2, sort_keys=True)


def _console() -> Console:
    # Built per call so it writes to the current sys.stdout (tests capture it). No emoji
    # codes: ':watch:' in a prompt is text.
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, emoji=False)
