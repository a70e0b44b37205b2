"""``dataset synth``: a trainer-ready folder of parts-first boards, made by the base model itself.

Every board is the parts-first pipeline (``parts.board.make_board``): plan the
layout, draw each part alone with the base model, lay the cut-outs out, unify,
check. Its caption is exact because the plan wrote it (``synth.captions``).

``synth_dataset`` does, in order:

1. resolve the objects (catalog) and the presets (each must have a board layout),
   and plan one board of each pair, so a bad name or a layout that cannot fit the
   size is refused before any drawing;
2. make the schedule: item ``i`` shows pair ``i mod pairs``, so any prefix of the set
   is balanced across objects and presets, and its seed is drawn from (seed, i), so
   the set is the same for the same seed, whatever was made before;
3. read ``plan.jsonl``: the items it lists are done (a rerun makes only the rest);
4. for each missing item, vary the plan (the planner's seed variations, the
   explosion factor, the scale and place of the layout), draw and check the board,
   and keep it when the layout analyser accepts it (up to ``tries`` boards an item);
5. write the image and its ``.txt`` caption (each whole or absent), then its line in
   ``plan.jsonl``, the record a resume trusts.

Parts come from a ``PartBank``: each part of an object is drawn in ``variants``
versions and boards pick among them, so a set of hundreds of boards costs a few
dozen part renders per object plus one light unifying pass per board.
"""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from ..atomic import atomic_path, write_text
from ..errors import GenerationError, InvalidSettingError
from ..parts.board import (
    PART_TRIES,
    BatchRenderer,
    BoardResult,
    PartDraw,
    derived_seed,
    make_board,
    render_batch,
)
from ..parts.catalog import CatalogError, CatalogObject, find_object, load_catalog
from ..parts.cutout import CutoutRejected, cut_out
from ..parts.plan import BoardPlan, PlacedPart, plan_board
from ..prompt.presets import Preset, get_preset
from .captions import DEFAULT_STYLES, caption, parse_styles

PLAN_FILE = "plan.jsonl"  # not metadata.jsonl: the trainer would read that as its captions
ITEM, VARIATION, PART_VARIANT = 1, 2, 3  # first element of a derived seed's path


@dataclass(frozen=True)
class SynthConfig:
    """What to make: which objects, which presets, how many boards, how varied."""

    objects: tuple[str, ...]  # catalog names (key, phrase or alias)
    presets: tuple[str, ...] = ("knolling", "exploded-view")  # each with a board layout
    count: int = 400  # boards (items) in the set
    seed: int = 0  # the whole set is a function of this seed
    styles: tuple[str, ...] = DEFAULT_STYLES  # caption styles, one drawn per item by its seed
    explode: tuple[float, float] = (0.6, 1.0)  # explosion factor range (exploded views)
    # The layout fills this share of the image (drawn per item): the LoRA sees one layout at
    # several scales, placed off centre too, not one framing to memorise.
    scale: tuple[float, float] = (0.8, 1.0)
    variants: int = 4  # drawings of each part the boards choose among
    tries: int = 3  # boards tried per item before it is left out as rejected
    width: int | None = None  # None: the base model's native size
    height: int | None = None

    def __post_init__(self) -> None:
        if not self.objects:
            raise InvalidSettingError("no objects given; name catalog objects, e.g. watch,camera")
        if not self.presets:
            raise InvalidSettingError("no presets given; e.g. knolling,exploded-view")
        if self.count < 1:
            raise InvalidSettingError(f"--count must be at least 1, got {self.count}")
        for name, (low, high), bound in (("explode", self.explode, (0.0, 1.0)),
                                         ("scale", self.scale, (0.3, 1.0))):  # fmt: skip
            if not bound[0] <= low <= high <= bound[1]:
                raise InvalidSettingError(
                    f"--{name} {low}..{high} must be a range within {bound[0]}..{bound[1]}"
                )
        if self.variants < 1 or self.tries < 1:
            raise InvalidSettingError("--variants and --tries must be at least 1")
        object.__setattr__(self, "styles", parse_styles(self.styles))


@dataclass(frozen=True)
class Item:
    """One slot of the set: which object, which preset, and its seed."""

    index: int
    object: CatalogObject
    preset: Preset
    seed: int

    @property
    def stem(self) -> str:
        return f"{self.index:05d}_{self.object.key.replace(' ', '-')}_{self.preset.id}"


@dataclass
class SynthReport:
    """What a run made: the set's totals (this run's and earlier runs' items together)."""

    out_dir: Path
    items: int  # slots in the set
    accepted: int  # boards kept
    rejected: int  # items left out: no board passed its check in ``tries``
    boards_drawn: int  # boards drawn in all, retries included
    made_now: int  # items finished by this run (0 on a rerun of a finished set)
    seconds: float
    per_pair: dict[str, int] = field(default_factory=dict)  # "object / preset" -> accepted

    @property
    def acceptance(self) -> float:
        """The share of drawn boards the analyser accepted."""
        return self.accepted / self.boards_drawn if self.boards_drawn else 0.0

    def format(self) -> str:
        lines = [
            f"{self.accepted} of {self.items} boards kept in {self.out_dir} "
            f"({self.rejected} left out; the analyser accepted {100 * self.acceptance:.0f}% "
            f"of {self.boards_drawn} boards drawn); {self.made_now} made now in "
            f"{self.seconds:.0f} s",
        ]
        lines += [f"  {pair}: {n}" for pair, n in sorted(self.per_pair.items())]
        return "\n".join(lines)


Progress = Callable[[int, int, int], None]  # (items done, items, accepted)


def parse_range(text: str, flag: str) -> tuple[float, float]:
    """ "LOW,HIGH" (or one number for both) as a pair of floats."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise InvalidSettingError(f"{flag} takes LOW,HIGH (e.g. 0.6,1.0), got {text!r}")
    return values[0], values[1]


# --- 1. objects, presets and a plan of each pair ------------------------------------------------


def resolve_objects(names: tuple[str, ...], catalog: dict[str, CatalogObject]):
    objects = []
    for name in names:
        found = find_object(name, catalog)
        if found is None:
            raise CatalogError(
                f"'{name}' is not in the parts catalog (known: {', '.join(sorted(catalog))})"
            )
        objects.append(found)
    return list({o.key: o for o in objects}.values())


def resolve_presets(ids: tuple[str, ...], presets: dict[str, Preset]) -> list[Preset]:
    chosen = [get_preset(presets, i) for i in dict.fromkeys(ids)]
    for preset in chosen:
        if not preset.board:
            with_board = ", ".join(sorted(p.id for p in presets.values() if p.board))
            raise InvalidSettingError(
                f"preset '{preset.id}' has no board layout; use one that has ({with_board})"
            )
    return chosen


def check_pairs(objects, presets, width: int, height: int) -> None:
    """Plan one board of every pair: a layout that cannot fit the size fails here, not later."""
    for obj in objects:
        for preset in presets:
            plan_board(obj, preset.board, width, height, 0)


# --- 2. the schedule --------------------------------------------------------------------------


def schedule(objects: list[CatalogObject], presets: list[Preset], count: int,
             seed: int) -> list[Item]:  # fmt: skip
    """``count`` items taking the (object, preset) pairs in turn, each with its own seed."""
    pairs = [(o, p) for p in presets for o in objects]
    # Objects vary fastest, so a short set still shows every object.
    return [Item(i, *pairs[i % len(pairs)], derived_seed(seed, ITEM, i)) for i in range(count)]


# --- 3. what is done --------------------------------------------------------------------------


def read_done(out_dir: Path) -> dict[int, dict[str, Any]]:
    """The finished items' records by index; a torn last line (a crash mid-write) is redone."""
    path = out_dir / PLAN_FILE
    done: dict[int, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("file") is None or (out_dir / row["file"]).is_file():
            done[int(row["index"])] = row
    return done


# --- 4. one item -------------------------------------------------------------------------------


def vary_plan(item: Item, config: SynthConfig, width: int, height: int, tried: int) -> BoardPlan:
    """The item's plan: the planner's own seed variations, an explosion factor and a scale."""
    seed = derived_seed(item.seed, VARIATION, tried)
    rng = random.Random(seed)
    explode = rng.uniform(*config.explode)
    scale = rng.uniform(*config.scale)
    inner_w, inner_h = round(width * scale), round(height * scale)
    try:
        plan = plan_board(item.object, item.preset.board, inner_w, inner_h, seed, explode=explode)
    except CatalogError:  # too small at this scale: the full size always fits (checked above)
        plan = plan_board(item.object, item.preset.board, width, height, seed, explode=explode)
    return placed_on(plan, width, height, rng)


def placed_on(plan: BoardPlan, width: int, height: int, rng: random.Random) -> BoardPlan:
    """``plan`` moved onto a ``width`` x ``height`` board at a random place that keeps it whole."""
    dx = round(rng.uniform(0, width - plan.width))
    dy = round(rng.uniform(0, height - plan.height))
    parts = tuple(
        replace(p, box=(p.box[0] + dx, p.box[1] + dy, p.box[2] + dx, p.box[3] + dy))
        for p in plan.parts
    )
    return replace(plan, width=width, height=height, parts=parts)


class PartBank:
    """A ``BatchRenderer`` that draws each part of an object in ``variants`` versions and reuses
    them.

    A board asks for a part with a seed; the seed picks a variant, and the variant's own seeds
    (from the object, the part and the variant number) decide the drawing, so two boards that
    pick the same variant share one render. A variant is the first of ``PART_TRIES`` drawings
    that cuts out cleanly, so a board that picks it draws nothing again. The variants one of
    the board's batches needs are drawn together, a round per try.
    """

    def __init__(self, renderer_for: Callable[[Preset], Any], variants: int, seed: int):
        self.renderer_for = renderer_for
        self.variants = variants
        self.seed = seed
        self.drawings: dict[tuple[str, str, int], Image.Image] = {}
        self.preset: Preset | None = None

    def part_size(self, part: PlacedPart, plan: BoardPlan) -> tuple[int, int] | None:
        renderer = self.renderer_for(self.preset)
        return renderer.part_size(part, plan) if isinstance(renderer, BatchRenderer) else None

    def render_part(self, part: PlacedPart, plan: BoardPlan, seed: int) -> Image.Image:
        return self.render_parts([PartDraw(part, seed)], plan)[0]

    def render_parts(self, draws: Sequence[PartDraw], plan: BoardPlan) -> list[Image.Image]:
        keys = [(plan.object, d.part.name, d.seed % self.variants) for d in draws]
        parts = {key: d.part for key, d in zip(keys, draws, strict=True)}
        self.draw_variants({k: p for k, p in parts.items() if k not in self.drawings}, plan)
        return [self.drawings[key] for key in keys]

    def draw_variants(
        self, missing: dict[tuple[str, str, int], PlacedPart], plan: BoardPlan
    ) -> None:
        """Each missing variant's first drawing that cuts out, over ``PART_TRIES`` seeds (its
        last when none does: the board's own check then refuses it and says why)."""
        renderer = self.renderer_for(self.preset)
        pending = missing
        for n in range(PART_TRIES):
            if not pending:
                return
            draws = [PartDraw(part, self.variant_seed(key, n)) for key, part in pending.items()]
            for key, image in zip(pending, render_batch(renderer, draws, plan), strict=True):
                self.drawings[key] = image
            pending = {key: part for key, part in pending.items()
                       if not cuts_out(self.drawings[key])}  # fmt: skip

    def variant_seed(self, key: tuple[str, str, int], n: int) -> int:
        """The seed of try ``n`` at the variant ``key`` (object, part name, variant)."""
        obj, name, variant = key
        return derived_seed(self.seed, PART_VARIANT, zlib.crc32(f"{obj}/{name}".encode()),
                            variant, n)  # fmt: skip

    def unify(self, board: Image.Image, plan: BoardPlan, seed: int) -> Image.Image | None:
        return self.renderer_for(self.preset).unify(board, plan, seed)


def cuts_out(image: Image.Image) -> bool:
    try:
        cut_out(image)
    except CutoutRejected:
        return False
    return True


def draw_item(item: Item, config: SynthConfig, bank: PartBank, width: int,
              height: int) -> tuple[BoardResult | None, int]:  # fmt: skip
    """The item's first accepted board over ``config.tries`` plans, and how many were drawn."""
    bank.preset = item.preset
    for tried in range(config.tries):
        try:
            plan = vary_plan(item, config, width, height, tried)
        except CatalogError:  # this seed's spacing leaves a part too small even at full size
            continue
        try:
            result = make_board(plan, bank, derived_seed(item.seed, VARIATION, tried, 1))
        except GenerationError:  # a part with no clean drawing: this board is not made
            continue
        if result.accepted:
            return result, tried + 1
    return None, config.tries


# --- 5. writing ---------------------------------------------------------------------------------


def write_item(out_dir: Path, item: Item, result: BoardResult | None, drawn: int,
               style: str) -> dict[str, Any]:  # fmt: skip
    """The image and caption (each whole or absent), then the item's line in plan.jsonl."""
    row: dict[str, Any] = {
        "index": item.index, "object": item.object.key, "preset": item.preset.id,
        "seed": item.seed, "boards_drawn": drawn, "file": None,
    }  # fmt: skip
    if result is not None:
        text = caption(result.plan, item.preset, style)
        with atomic_path(out_dir / f"{item.stem}.png") as tmp:
            result.image.save(tmp, format="PNG")
        write_text(out_dir / f"{item.stem}.txt", text + "\n")
        row |= {"file": f"{item.stem}.png", "caption": text, "style": style,
                "plan": result.plan.to_dict(), "check": result.check.to_dict()}  # fmt: skip
    append_line(out_dir / PLAN_FILE, json.dumps(row, ensure_ascii=False))
    return row


def append_line(path: Path, line: str) -> None:
    """One line appended and flushed to disk: a crash loses at most the line being written (a
    torn last line is ended first, so it stays one unreadable line and takes no row with it)."""
    with path.open("a", encoding="utf-8") as f:
        torn = f.tell() > 0 and not ends_with_newline(path)
        f.write(("\n" if torn else "") + line + "\n")
        f.flush()
        os.fsync(f.fileno())


def ends_with_newline(path: Path) -> bool:
    """Whether the file's last byte is a newline: one byte read, however long the file."""
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


# --- all together ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthJob:
    """A checked set to make: its items and board size (``prepare_synth``)."""

    out_dir: Path
    config: SynthConfig
    items: list[Item]
    width: int
    height: int


def prepare_synth(engine, config: SynthConfig, out_dir: str | Path,
                  catalog: dict | None = None) -> SynthJob:  # fmt: skip
    """Steps 1-2: every name resolved and every pair planned once, before anything is drawn."""
    objects, presets = check_names(config, engine.presets, catalog, out_dir)
    native_w, native_h = engine.native_size
    width, height = config.width or native_w, config.height or native_h
    check_pairs(objects, presets, width, height)
    return SynthJob(Path(out_dir), config, schedule(objects, presets, config.count, config.seed),
                    width, height)  # fmt: skip


def check_names(config: SynthConfig, presets: dict[str, Preset], catalog: dict | None = None,
                out_dir: str | Path | None = None):  # fmt: skip
    """The objects and presets ``config`` names (and a usable ``out_dir``), or a one-line error:
    cheap, so a shell checks them before it loads a model."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise InvalidSettingError(f"--out '{out}' exists and is not a folder")
    catalog = catalog if catalog is not None else load_catalog()
    return resolve_objects(config.objects, catalog), resolve_presets(config.presets, presets)


def make_set(engine, job: SynthJob, request=None, progress: Progress | None = None) -> SynthReport:
    """Steps 3-5: draw, check and write every item ``plan.jsonl`` does not list yet."""
    started = time.monotonic()
    config, out = job.config, job.out_dir
    out.mkdir(parents=True, exist_ok=True)
    done = read_done(out)
    renderers = board_renderers(engine, request, job.width, job.height)
    bank = PartBank(renderers, config.variants, config.seed)
    made = 0
    for item in job.items:
        if item.index not in done:
            style = config.styles[item.seed % len(config.styles)]  # not the index: pairs cycle
            result, drawn = draw_item(item, config, bank, job.width, job.height)
            done[item.index] = write_item(out, item, result, drawn, style)
            made += 1
        if progress is not None:
            progress(len([i for i in done if i < config.count]), config.count,
                     sum(1 for r in done.values() if r["file"]))  # fmt: skip
    return summarise(out, done, config.count, made, time.monotonic() - started)


def synth_dataset(engine, config: SynthConfig, out_dir: str | Path, request=None,
                  progress: Progress | None = None, catalog: dict | None = None) -> SynthReport:  # fmt: skip
    """Make (or finish) the set ``config`` describes in ``out_dir`` with ``engine``'s base model.

    ``request`` holds the generation settings (steps, CFG, sampler: the model's recommended
    ones); every LoRA is off. The module's docstring lists the steps."""
    job = prepare_synth(engine, config, out_dir, catalog)
    return make_set(engine, job, request, progress)


def board_renderers(engine, request, width: int, height: int) -> Callable[[Preset], Any]:
    """The engine's renderer for a preset's boards: ``request``'s settings with every LoRA off
    (the set is what a structure LoRA will learn from, so none may shape it)."""
    from ..generate.boards import EngineRenderer
    from ..settings import GenerationRequest

    base = replace(request or GenerationRequest(), prompt="", lora_scale=0.0, width=width,
                   height=height, compose=False, parts=None, plan=None)  # fmt: skip
    renderers: dict[str, EngineRenderer] = {}

    def renderer_for(preset: Preset) -> EngineRenderer:
        if preset.id not in renderers:
            renderers[preset.id] = EngineRenderer(engine, replace(base, preset=preset.id))
        return renderers[preset.id]

    return renderer_for


def summarise(out: Path, done: dict[int, dict], count: int, made: int,
              seconds: float) -> SynthReport:  # fmt: skip
    rows = [r for i, r in done.items() if i < count]
    kept = [r for r in rows if r["file"]]
    per_pair = Counter(f"{r['object']} / {r['preset']}" for r in kept)
    return SynthReport(
        out_dir=out, items=count, accepted=len(kept), rejected=len(rows) - len(kept),
        boards_drawn=sum(r["boards_drawn"] for r in rows), made_now=made, seconds=seconds,
        per_pair=dict(per_pair),
    )  # fmt: skip
