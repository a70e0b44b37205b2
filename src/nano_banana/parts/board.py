"""A parts-first board, end to end: plan -> draw each part -> lay them out -> unify -> check.

``make_board`` runs the steps, each a named helper:

1. plan the layout from the catalog (``plan.plan_board``): exact count, names, boxes;
2. draw each part alone on white with the base model and cut it out; a render
   that is not one clean piece is drawn again with the next seed (``PART_TRIES``).
   Parts are drawn in rounds, one try each, and a round's parts of one render size
   share a model call (``PartBatching`` caps how many);
3. compose the cut-outs into their boxes (``compose.compose_board``);
4. unify the board with a light image-to-image pass (one light, soft contact
   shadows), then check it against the plan; a pass that lost or merged a part
   is retried with the next seed (``UNIFY_TRIES``), and when none is accepted the
   composed board itself is checked: the result is the first accepted image, or
   the best attempt returned with what failed. Every attempt is recorded.

The model work goes through a ``Renderer`` (the engine adapter in
``generate.boards`` is the real one), so the steps here are plain functions of
images and plans.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..errors import GenerationError, InvalidSettingError
from .check import BoardCheck, check_board
from .compose import compose_board
from .cutout import Cutout, CutoutRejected, cut_out
from .plan import BoardPlan, PlacedPart

PART_TRIES = 4  # seeds tried per part before the board fails (a clean cut-out is the norm)
UNIFY_TRIES = 2  # unifying passes tried before falling back to the composed board


def derived_seed(seed: int, *path: int) -> int:
    """A seed for one step of a board (``path``: which step, which part, which try), drawn from
    the board's seed so that boards of neighbouring seeds share no drawing."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


PART, UNIFY = 1, 2  # the first element of a derived seed's path


class Renderer(Protocol):
    """The two model calls a board needs."""

    def render_part(self, part: PlacedPart, plan: BoardPlan, seed: int) -> Image.Image:
        """The part alone on a white background."""
        ...

    def unify(self, board: Image.Image, plan: BoardPlan, seed: int) -> Image.Image | None:
        """The board through a light image-to-image pass; None when there is no pass (strength 0)."""
        ...


@dataclass(frozen=True)
class PartDraw:
    """One drawing asked of a renderer: a part and the seed it is drawn with."""

    part: PlacedPart
    seed: int


@runtime_checkable
class BatchRenderer(Renderer, Protocol):
    """A renderer that draws several parts of one render size in one model call. A renderer
    without these methods (a test's stand-in) has its parts drawn one call each."""

    def part_size(self, part: PlacedPart, plan: BoardPlan) -> tuple[int, int] | None:
        """(width, height) the part is drawn at; None when unknown (drawn alone)."""
        ...

    def render_parts(self, draws: Sequence[PartDraw], plan: BoardPlan) -> list[Image.Image]:
        """``render_part`` of each draw (all of one size), in order, from one model call."""
        ...


@dataclass(frozen=True)
class PartBatching:
    """How many parts of one render size share a model call."""

    # Pixels drawn per call: one 1024 px image's worth. SDXL denoises that in half precision
    # on a 24 GB GPU with room to spare (its UNet batch of 2 for guidance included), and the
    # UNet's activations grow with the pixels, so four parts at 512 px fit where one 1024 px
    # image does (each image's attention is smaller still). Images are decoded one by one, so
    # the VAE's peak does not grow. Not measured on a GPU here; 0 draws one part per call.
    max_pixels: int = 1024 * 1024

    def __post_init__(self) -> None:
        value = self.max_pixels
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidSettingError(f"max_pixels must be a whole number >= 0, got {value!r}")

    def cap(self, size: tuple[int, int] | None) -> int:
        """Parts per call at ``size``: at least one, however large the part."""
        if size is None:
            return 1
        return max(1, self.max_pixels // (size[0] * size[1]))


@dataclass(frozen=True)
class Attempt:
    """One try at a step, kept in the board's record."""

    step: str  # "part" or "unify"
    seed: int
    ok: bool
    part: str | None = None
    problem: str | None = None


@dataclass
class BoardResult:
    image: Image.Image
    plan: BoardPlan  # boxes where the parts really are
    check: BoardCheck
    unified: bool  # False when the composed board was kept (no pass was accepted)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.check.accepted

    def record(self) -> dict:
        """What goes into the PNG beside the plan: the check and every attempt."""
        record = {
            "plan": self.plan.to_dict(), "accepted": self.accepted, "unified": self.unified,
            "check": self.check.to_dict(), "attempts": [a.__dict__ for a in self.attempts],
        }  # fmt: skip
        return json.loads(json.dumps(record))  # plain JSON data (lists, not tuples), as read back


Progress = Callable[[str, int, int], None]  # (what, done, total)


def make_board(plan: BoardPlan, renderer: Renderer, seed: int, progress: Progress | None = None,
               batching: PartBatching | None = None) -> BoardResult:  # fmt: skip
    """Draw, compose, unify and check the board ``plan`` describes."""
    attempts: list[Attempt] = []
    cutouts = draw_parts(plan, renderer, seed, attempts, progress, batching)
    composed, placed = compose_board(plan, cutouts)
    return unify_and_check(composed, placed, renderer, seed, attempts)


def draw_parts(plan: BoardPlan, renderer: Renderer, seed: int, attempts: list[Attempt],
               progress: Progress | None = None,
               batching: PartBatching | None = None) -> dict[int, Cutout]:  # fmt: skip
    """Every part's cut-out by number, or a GenerationError naming the first part (in plan
    order) with no clean cut-out in ``PART_TRIES`` seeds.

    Copies of a part share one drawing: a pair of ear cups should look alike, and it saves a
    model call per copy. Try ``n`` of every part still without a cut-out is one round, drawn
    in batches (``part_batches``); a part's seeds are the same however it is batched, and its
    attempts are recorded together, in plan order, as when parts were drawn one by one.
    """
    batching = batching or PartBatching()
    first_copies: dict[str, PlacedPart] = {}
    for part in plan.parts:
        first_copies.setdefault(part.name, part)
    distinct = list(first_copies.values())
    tries: dict[str, list[Attempt]] = {part.name: [] for part in distinct}
    drawn: dict[str, Cutout] = {}
    pending = distinct
    for n in range(PART_TRIES):
        draws = [PartDraw(part, derived_seed(seed, PART, part.number, n)) for part in pending]
        for batch in part_batches(renderer, draws, plan, batching):
            for draw, image in zip(batch, render_batch(renderer, batch, plan), strict=True):
                cutout = try_cut_out(image, draw, tries[draw.part.name])
                if cutout is not None:
                    drawn[draw.part.name] = cutout
            if progress is not None:
                progress("parts", sum(p.name in drawn for p in plan.parts), len(plan.parts))
        pending = [part for part in pending if part.name not in drawn]
        if not pending:
            break
    attempts.extend(attempt for part in distinct for attempt in tries[part.name])
    if pending:
        raise part_failed(pending[0], tries[pending[0].name])
    return {part.number: drawn[part.name] for part in plan.parts}


def part_batches(renderer: Renderer, draws: list[PartDraw], plan: BoardPlan,
                 batching: PartBatching) -> list[list[PartDraw]]:  # fmt: skip
    """``draws`` grouped by render size (one call draws one size), each group cut into batches
    of at most ``batching.cap`` parts, in the order each size first appears."""
    groups: dict[tuple[int, int] | None, list[PartDraw]] = {}
    for draw in draws:
        size = renderer.part_size(draw.part, plan) if isinstance(renderer, BatchRenderer) else None
        groups.setdefault(size, []).append(draw)
    batches = []
    for size, group in groups.items():
        cap = batching.cap(size)
        batches += [group[i : i + cap] for i in range(0, len(group), cap)]
    return batches


def render_batch(
    renderer: Renderer, draws: Sequence[PartDraw], plan: BoardPlan
) -> list[Image.Image]:
    """The renders of ``draws``: one call when the renderer batches, else one call each."""
    if len(draws) > 1 and isinstance(renderer, BatchRenderer):
        return renderer.render_parts(draws, plan)
    return [renderer.render_part(draw.part, plan, draw.seed) for draw in draws]


def try_cut_out(image: Image.Image, draw: PartDraw, tries: list[Attempt]) -> Cutout | None:
    """The render's cut-out, or None when it is refused; the attempt is added to ``tries``."""
    try:
        cutout = cut_out(image)
    except CutoutRejected as rejected:
        tries.append(Attempt("part", draw.seed, False, draw.part.name, rejected.reason))
        return None
    tries.append(Attempt("part", draw.seed, True, draw.part.name))
    return cutout


def part_failed(part: PlacedPart, tries: list[Attempt]) -> GenerationError:
    """The board's error for a part none of whose tries cut out, with each try's reason."""
    problems = "; ".join(attempt.problem or "" for attempt in tries)
    return GenerationError(
        f"could not draw the part '{part.name}' as one clean piece on white in {PART_TRIES} "
        f"tries ({problems}); name it differently with --parts, or try another seed"
    )


def unify_and_check(composed: Image.Image, plan: BoardPlan, renderer: Renderer, seed: int,
                    attempts: list[Attempt]) -> BoardResult:  # fmt: skip
    """The first unified board that passes its check, else the composed one if it passes,
    else the best attempt with what failed."""
    tried: list[BoardResult] = []
    for n in range(UNIFY_TRIES):
        unify_seed = derived_seed(seed, UNIFY, n)
        image = renderer.unify(composed, plan, unify_seed)
        if image is None:  # no unifying pass asked for: the composed board is the result
            break
        check = check_board(image, plan)
        attempts.append(
            Attempt(
                "unify", unify_seed, check.accepted, problem="; ".join(check.problems()) or None
            )
        )
        tried.append(BoardResult(image, plan, check, True, attempts))
        if check.accepted:
            return tried[-1]
    tried.append(BoardResult(composed, plan, check_board(composed, plan), False, attempts))
    accepted = [r for r in tried if r.accepted]
    return (
        accepted[0] if accepted else max(tried, key=lambda r: (r.check.exact_count, r.check.score))
    )
