"""Callouts: numbered leader lines to each part, and a parts list beside the picture.

The parts come from the layout analysis (``analysis.analyze_layout``), numbered
in reading order; names given by the user are assigned in that order. The
result is always a new image; ``annotate_file`` refuses to write over its input
and writes atomically.

An edited callout table (``CalloutRow``: a part, its name, its place in the
numbering, shown or not) is drawn by ``annotate_rows`` and exported by
``callouts_csv`` / ``callouts_json``; the studio's callout editor is a thin
shell over these.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path
from ..errors import ImageAnalysisError
from .layout import AnalysisConfig, LayoutReport, Part, analyze_layout, to_rgb_array

MIN_PICTURE_SIDE = 512  # small pictures are enlarged so that labels stay legible
INK = (24, 24, 28)
HALO = (255, 255, 255)
PANEL = (255, 255, 255)


@dataclass(frozen=True)
class Callout:
    """One numbered label: where its circle sits and where its leader line ends (output pixels)."""

    number: int
    name: str
    part: Part  # in the pixels of the input image
    label: tuple[float, float]  # centre of the numbered circle
    anchor: tuple[float, float]  # end of the leader line, on the part


@dataclass(frozen=True)
class Annotation:
    image: Image.Image
    callouts: tuple[Callout, ...]
    report: LayoutReport | None  # None when drawn from a table (``annotate_rows``)
    unused_names: tuple[str, ...]  # names beyond the number of parts found

    @property
    def warnings(self) -> tuple[str, ...]:
        if not self.unused_names:
            return ()
        n = len(self.callouts)
        return (
            f"{n + len(self.unused_names)} names given but {n} part(s) found; "
            f"unused: {', '.join(self.unused_names)}",
        )


def parse_part_names(text: str | None) -> list[str]:
    """Names from a comma-separated list ("strap, case, crown"); empty entries are skipped."""
    if not text:
        return []
    return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]


def assign_names(
    count: int, names: list[str] | tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """Names for ``count`` parts in order, "part N" where names run out; and the unused names."""
    names = list(names)
    given = names[:count] + [f"part {i + 1}" for i in range(len(names), count)]
    return given, names[count:]


def annotate(
    image: str | Path | Image.Image,
    names: list[str] | tuple[str, ...] = (),
    config: AnalysisConfig | None = None,
) -> Annotation:
    """Analyse ``image`` and draw one numbered callout per part found, plus the parts list."""
    rgb = Image.fromarray(to_rgb_array(image))
    report = analyze_layout(rgb, config)
    labels, unused = assign_names(report.part_count, names)
    return _annotated(rgb, report.parts, labels, report, unused)


def annotate_parts(
    image: Image.Image, parts: list[Part] | tuple[Part, ...], names: list[str]
) -> Annotation:
    """Callouts for parts known in advance (a parts-first board's plan), no guessing from
    pixels: one per part, in the given order, with the given names."""
    rgb = Image.fromarray(to_rgb_array(image))
    report = analyze_layout(rgb)  # kept with the annotation, as for any image
    return _annotated(rgb, tuple(parts), list(names), report, ())


def _annotated(
    rgb: Image.Image,
    parts: tuple[Part, ...],
    labels: list[str],
    report: LayoutReport | None,
    unused: tuple[str, ...] | list[str],
) -> Annotation:
    scale = max(1.0, MIN_PICTURE_SIDE / max(rgb.size))
    picture = rgb.resize(
        (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS
    )
    font_px = max(12, round(picture.height / 30))
    font = _font(font_px)
    callouts = place_callouts(parts, labels, scale, picture.size, radius=font_px * 0.85)
    canvas = _canvas_with_panel(picture, labels, parts, font, font_px)
    draw = ImageDraw.Draw(canvas)
    for callout in callouts:
        _draw_callout(draw, callout, font, font_px * 0.85)
    _draw_parts_list(draw, picture.width, labels, parts, font, font_px)
    return Annotation(canvas, tuple(callouts), report, tuple(unused))


# --- an edited callout table -------------------------------------------------------------------

EXPORT_COLUMNS = ("number", "name", "x0", "y0", "x1", "y1")  # a board adds its plan's columns


@dataclass(frozen=True)
class CalloutRow:
    """One row of an editable callout table: a part, what it is called, where it comes in
    the numbering, and whether it is drawn at all."""

    part: Part  # in the pixels of the image it is drawn on
    name: str
    order: int  # callouts are numbered by this; rows of equal order keep the table's order
    show: bool = True  # False leaves the part out of the drawing and the exports (a shadow)
    tag: str = ""  # drawn after the name, not edited with it: a copy's "(2 of 2)"
    note: str = ""  # what the analysis doubts about the part ("may be 2 parts merged")
    extra: Mapping[str, Any] = field(default_factory=dict)  # its own export columns

    @property
    def label(self) -> str:
        return f"{self.name.strip()} {self.tag}".strip()


def detected_rows(report: LayoutReport) -> list[CalloutRow]:
    """One row per part the analysis found, in reading order, named "part N": the analysis
    sees shapes, not what they are, so it names none of them. A part that may be several
    merged says so in its note."""
    notes = {m.part: f"may be {m.pieces} parts merged ({m.cue})" for m in report.merged}
    return [CalloutRow(part, f"part {number}", number, note=notes.get(number - 1, ""))
            for number, part in enumerate(report.parts, start=1)]  # fmt: skip


def numbered(rows: Sequence[CalloutRow]) -> list[CalloutRow]:
    """The rows drawn, in callout order (callout N is the N-th): the shown rows sorted by
    ``order``, a tie keeping the table's order. A shown row needs a name."""
    for index, row in enumerate(rows, start=1):
        if row.show and not row.name.strip():
            raise ImageAnalysisError(
                f"callout row {index} has no name: name the part, or untick 'show'"
            )
    return sorted((row for row in rows if row.show), key=lambda row: row.order)


def annotate_rows(image: str | Path | Image.Image, rows: Sequence[CalloutRow]) -> Annotation:
    """Callouts as an edited table says: its shown rows, numbered in their order, with their
    names (the table's parts are drawn as they are; nothing is analysed again)."""
    rgb = Image.fromarray(to_rgb_array(image))
    drawn = numbered(rows)
    return _annotated(rgb, tuple(r.part for r in drawn), [r.label for r in drawn], None, ())


def callout_records(rows: Sequence[CalloutRow]) -> list[dict[str, Any]]:
    """The drawn callouts as records: their number, name, own columns and box."""
    records = []
    for number, row in enumerate(numbered(rows), start=1):
        x0, y0, x1, y1 = row.part.bbox
        records.append({"number": number, "name": row.name.strip(), **row.extra,
                        "x0": x0, "y0": y0, "x1": x1, "y1": y1})  # fmt: skip
    return records


def callouts_csv(rows: Sequence[CalloutRow], columns: Sequence[str] = EXPORT_COLUMNS) -> str:
    """The drawn callouts as CSV text: a header of ``columns``, then one line per callout."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(callout_records(rows))
    return out.getvalue()


def callouts_json(rows: Sequence[CalloutRow], columns: Sequence[str] = EXPORT_COLUMNS) -> str:
    """The drawn callouts as a JSON list of objects with the CSV's ``columns``."""
    records = [{c: r.get(c) for c in columns} for r in callout_records(rows)]
    return json.dumps(records, indent=2) + "\n"


def default_output_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}_annotated.png")


def annotate_file(
    path: str | Path,
    out: str | Path | None = None,
    names: list[str] | tuple[str, ...] = (),
    config: AnalysisConfig | None = None,
) -> tuple[Path, Annotation]:
    """Annotate the image at ``path`` into ``out`` (default ``<name>_annotated.png``).

    Never writes over ``path``; the output appears whole or not at all.
    """
    path = Path(path)
    out = default_output_path(path) if out is None else Path(out)
    if _same_file(path, out):
        raise ImageAnalysisError(
            f"output '{out}' is the input image; annotations go to a new file, "
            "so choose another --out"
        )
    image_format = _format_for(out)
    annotation = annotate(path, names, config)
    write_atomically(annotation.image, out, image_format)
    return out, annotation


def write_atomically(image: Image.Image, out: Path, image_format: str) -> None:
    """Save ``image`` as ``out``, which appears whole or not at all (``atomic.atomic_path``)."""
    if not out.parent.is_dir():
        raise ImageAnalysisError(f"folder '{out.parent}' does not exist")
    with atomic_path(out) as tmp:
        image.save(tmp, format=image_format)


# --- placement ------------------------------------------------------------------------------


def place_callouts(
    parts: tuple[Part, ...],
    names: list[str],
    scale: float,
    size: tuple[int, int],
    radius: float,
) -> list[Callout]:
    """Put each numbered circle just outside its part, away from other parts and labels.

    Candidate spots go round the part's box, the direction pointing away from the
    picture's centre first; the first spot inside the picture that covers no part
    and no earlier label wins, else the one covering least.
    """
    boxes = [tuple(v * scale for v in p.bbox) for p in parts]
    taken: list[tuple[float, float, float, float]] = []
    callouts = []
    for number, (part, name, box) in enumerate(zip(parts, names, boxes, strict=True), start=1):
        spot = _best_spot(box, boxes + taken, size, radius)
        taken.append((spot[0] - radius, spot[1] - radius, spot[0] + radius, spot[1] + radius))
        anchor = (part.anchor[0] * scale + scale / 2, part.anchor[1] * scale + scale / 2)
        callouts.append(Callout(number, name, part, spot, anchor))
    return callouts


def _best_spot(box, obstacles, size: tuple[int, int], radius: float) -> tuple[float, float]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    away = math.atan2(cy - size[1] / 2, cx - size[0] / 2)
    reach = radius + 4
    best, best_cost = None, math.inf
    for k in range(16):
        angle = away + (k + 1) // 2 * (math.pi / 8) * (1 if k % 2 else -1)
        dx, dy = math.cos(angle), math.sin(angle)
        # Step out from the box edge along the direction until clear of the box.
        half_w, half_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
        t = min(half_w / abs(dx) if dx else math.inf, half_h / abs(dy) if dy else math.inf)
        x, y = cx + dx * (t + reach), cy + dy * (t + reach)
        x = min(max(x, radius + 1), size[0] - radius - 1)
        y = min(max(y, radius + 1), size[1] - radius - 1)
        cost = sum(_overlaps((x, y), radius, o) for o in obstacles)
        if cost == 0:
            return (x, y)
        if cost < best_cost:
            best, best_cost = (x, y), cost
    return best


def _overlaps(centre: tuple[float, float], radius: float, box) -> bool:
    x, y = centre
    nearest_x = min(max(x, box[0]), box[2])
    nearest_y = min(max(y, box[1]), box[3])
    return (x - nearest_x) ** 2 + (y - nearest_y) ** 2 < (radius + 2) ** 2


# --- drawing --------------------------------------------------------------------------------


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _canvas_with_panel(picture: Image.Image, names, parts, font, font_px: int) -> Image.Image:
    probe = ImageDraw.Draw(picture)
    widest = max([probe.textlength(_entry(i, n), font=font) for i, n in enumerate(names)] + [80])
    panel_w = int(widest + 3 * font_px + 2 * font_px)
    lines_h = int((len(names) + 2) * font_px * 1.6)
    canvas = Image.new("RGB", (picture.width + panel_w, max(picture.height, lines_h)), PANEL)
    canvas.paste(picture, (0, 0))
    return canvas


def _entry(index: int, name: str) -> str:
    return f"{index + 1}. {name}"


def _draw_callout(draw: ImageDraw.ImageDraw, callout: Callout, font, radius: float) -> None:
    (lx, ly), (ax, ay) = callout.label, callout.anchor
    length = math.hypot(ax - lx, ay - ly)
    if length > radius:  # the leader starts at the circle's rim
        sx, sy = lx + (ax - lx) * radius / length, ly + (ay - ly) * radius / length
        draw.line((sx, sy, ax, ay), fill=HALO, width=5)
        draw.line((sx, sy, ax, ay), fill=INK, width=2)
        draw.ellipse((ax - 4, ay - 4, ax + 4, ay + 4), fill=INK, outline=HALO, width=1)
    draw.ellipse((lx - radius, ly - radius, lx + radius, ly + radius), fill=HALO, outline=INK,
                 width=2)  # fmt: skip
    draw.text((lx, ly), str(callout.number), fill=INK, font=font, anchor="mm")


def _draw_parts_list(
    draw: ImageDraw.ImageDraw, left: int, names, parts, font, font_px: int
) -> None:
    x = left + font_px
    y = font_px
    draw.text((x, y), "Parts", fill=INK, font=font)
    step = font_px * 1.6
    for i, (name, part) in enumerate(zip(names, parts, strict=True)):
        y += step
        draw.rectangle((x, y + 2, x + font_px - 2, y + font_px), fill=part.color, outline=INK)
        draw.text((x + 1.6 * font_px, y), _entry(i, name), fill=INK, font=font)
    if not names:
        draw.text((x, y + step), "no parts found", fill=INK, font=font)


# --- files ----------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    if b.exists() and a.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _format_for(out: Path) -> str:
    image_format = Image.registered_extensions().get(out.suffix.lower())
    if image_format is None or image_format not in Image.SAVE:
        raise ImageAnalysisError(
            f"cannot tell an image format from '{out.name}'; use a .png, .jpg or .webp name"
        )
    return image_format
