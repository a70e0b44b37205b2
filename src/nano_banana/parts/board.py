"""A parts-first board, end to end: plan -> draw each part -> lay them out -> unify -> check.

``make_board`` runs the steps, each a named helper:

1. plan the layout from the catalog (``plan.plan_board``): exact count, names, boxes;
2. draw each part alone on white with the base model and cut it out; a render
   that is not one clean piece is drawn again with the next seed (``PART_TRIES``);
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from ..errors import GenerationError
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


def make_board(plan: BoardPlan, renderer: Renderer, seed: int,
               progress: Progress | None = None) -> BoardResult:  # fmt: skip
    """Draw, compose, unify and check the board ``plan`` describes."""
    attempts: list[Attempt] = []
    cutouts = draw_parts(plan, renderer, seed, attempts, progress)
    composed, placed = compose_board(plan, cutouts)
    return unify_and_check(composed, placed, renderer, seed, attempts)


def draw_parts(plan: BoardPlan, renderer: Renderer, seed: int, attempts: list[Attempt],
               progress: Progress | None = None) -> dict[int, Cutout]:  # fmt: skip
    """Every part's cut-out by number. Copies of a part share one drawing: a pair of ear cups
    should look alike, and it saves a model call per copy."""
    cutouts: dict[int, Cutout] = {}
    drawn: dict[str, Cutout] = {}
    for done, part in enumerate(plan.parts, 1):
        if part.name not in drawn:
            drawn[part.name] = draw_one(part, plan, renderer, seed, attempts)
        cutouts[part.number] = drawn[part.name]
        if progress is not None:
            progress("parts", done, len(plan.parts))
    return cutouts


def draw_one(part: PlacedPart, plan: BoardPlan, renderer: Renderer, seed: int,
             attempts: list[Attempt]) -> Cutout:  # fmt: skip
    """The part's first clean cut-out over ``PART_TRIES`` seeds, or a GenerationError."""
    problems = []
    for n in range(PART_TRIES):
        try_seed = derived_seed(seed, PART, part.number, n)
        try:
            cutout = cut_out(renderer.render_part(part, plan, try_seed))
        except CutoutRejected as rejected:
            attempts.append(Attempt("part", try_seed, False, part.name, rejected.reason))
            problems.append(rejected.reason)
            continue
        attempts.append(Attempt("part", try_seed, True, part.name))
        return cutout
    raise GenerationError(
        f"could not draw the part '{part.name}' as one clean piece on white in {PART_TRIES} "
        f"tries ({'; '.join(problems)}); name it differently with --parts, or try another seed"
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
