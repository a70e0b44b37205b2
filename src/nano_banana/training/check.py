"""``dataset check``: everything wrong with a training folder, with paths, before any training.

Finds undecodable, truncated and corrupt images, decompression bombs, missing or
empty captions, images far below the training resolution, exact duplicates and
broken metadata rows, and shows how the good images fall into aspect buckets.
Training runs the same check and refuses a dataset with problems unless told to
skip the bad items (then it lists what it skipped).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import (
    MAX_PIXELS,
    DatasetError,
    ImageProblem,
    RawItem,
    TrainItem,
    bucket_for,
    discover_items,
    inspect_image,
    place,
)

# Report order: what stops an image from being read at all comes first.
KINDS = (
    "undecodable",
    "unreadable",
    "truncated",
    "corrupt",
    "decompression bomb",
    "missing image",
    "bad metadata",
    "missing caption",
    "empty caption",
    "too small",
    "duplicate",
)


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    path: str  # the file (or metadata file) concerned
    message: str  # one line a user can act on


@dataclass
class DatasetReport:
    """The outcome of a check: the usable items, and every problem with its path."""

    folder: Path
    resolution: int
    items: list[TrainItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    images_found: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.items)

    @property
    def buckets(self) -> Counter:
        return Counter(item.bucket for item in self.items)

    def problems_by_kind(self) -> dict[str, list[Problem]]:
        out: dict[str, list[Problem]] = {}
        for problem in sorted(self.problems, key=lambda p: (_kind_order(p.kind), p.path)):
            out.setdefault(problem.kind, []).append(problem)
        return out

    def summary(self) -> dict[str, Any]:
        """Small JSON-able description, stored in the LoRA's metadata and the model card."""
        return {
            "images": len(self.items),
            "skipped": len({p.path for p in self.problems}),
            "buckets": {f"{w}x{h}": n for (w, h), n in sorted(self.buckets.items())},
        }

    def format(self) -> str:
        """The human report: problems grouped by kind with paths, then the bucket table."""
        lines = [
            f"dataset '{self.folder}': {self.images_found} image(s) found, {len(self.items)} usable"
        ]
        for kind, problems in self.problems_by_kind().items():
            lines.append(f"  {kind}: {len(problems)}")
            lines += [f"    {p.message}" for p in problems]
        if self.items:
            lines.append(f"  buckets at resolution {self.resolution} (width x height: images):")
            for (w, h), n in sorted(self.buckets.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    {w}x{h}: {n}")
        if not self.problems:
            lines.append("  no problems found")
        return "\n".join(lines)

    def usable_items(self, skip_bad: bool) -> list[TrainItem]:
        """The items to train on; refuse (``DatasetError``) when there are problems and not ``skip_bad``."""
        if self.problems and not skip_bad:
            raise DatasetError(
                f"{len(self.problems)} problem(s) in the dataset; fix them or pass --skip-bad "
                f"to train without those items:\n{self.format()}"
            )
        if not self.items:
            raise DatasetError(f"no usable images in '{self.folder}':\n{self.format()}")
        return self.items


def _kind_order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def check_dataset(
    folder: str | Path,
    *,
    resolution: int = 1024,
    caption_ext: str = ".txt",
    min_size_fraction: float = 0.5,
    upscale: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> DatasetReport:
    """Read every image and caption of ``folder`` once and report what is wrong."""
    folder = Path(folder)
    raw_items, listing_problems = discover_items(folder, caption_ext)
    report = DatasetReport(folder, resolution, images_found=len(raw_items))
    report.problems += [Problem(p.kind, str(folder), p.message) for p in listing_problems]
    min_area = (min_size_fraction * resolution) ** 2
    first_by_hash: dict[str, Path] = {}
    for raw in raw_items:
        problems, item = _check_item(raw, resolution, min_area, upscale, max_pixels, first_by_hash)
        report.problems += problems
        if item is not None and not problems:
            report.items.append(item)
    return report


def _check_item(
    raw: RawItem,
    resolution: int,
    min_area: float,
    upscale: bool,
    max_pixels: int,
    first_by_hash: dict[str, Path],
) -> tuple[list[Problem], TrainItem | None]:
    path = str(raw.path)
    problems = _caption_problems(raw)
    try:
        info = inspect_image(raw.path, max_pixels)
    except ImageProblem as exc:
        return problems + [Problem(exc.kind, path, exc.message)], None
    if info.width * info.height < min_area:
        side = round(min_area**0.5)
        problems.append(
            Problem(
                "too small",
                path,
                f"{path}: {info.width}x{info.height} is far below the training resolution "
                f"{resolution} (need about {side}x{side} or more)",
            )
        )
    if info.sha256 in first_by_hash:
        first = first_by_hash[info.sha256]
        problems.append(Problem("duplicate", path, f"{path}: exact duplicate of {first}"))
    else:
        first_by_hash[info.sha256] = raw.path
    bucket = bucket_for(info.width, info.height, resolution, upscale)
    item = TrainItem(
        raw.path, raw.caption or "", info.sha256, place(info.width, info.height, bucket)
    )
    return problems, item


def _caption_problems(raw: RawItem) -> list[Problem]:
    path = str(raw.path)
    if raw.caption is None:
        return [Problem("missing caption", path, f"{path}: no caption ({raw.caption_source})")]
    if not raw.caption:
        return [Problem("empty caption", path, f"{path}: caption is empty ({raw.caption_source})")]
    return []
