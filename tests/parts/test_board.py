"""The board's steps with a stand-in renderer: retries, fallbacks and the attempts record.

The renderer here draws the demo world's parts with its own drawing code instead of a
diffusion model, so the steps' logic is tested on its own; the engine-backed renderer is
tested with a real model in tests/generate.
"""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFilter

from nano_banana.demo import OBJECTS
from nano_banana.demo.draw import draw_part
from nano_banana.errors import GenerationError, InvalidSettingError
from nano_banana.parts.board import (
    PART,
    PART_TRIES,
    BatchRenderer,
    PartBatching,
    derived_seed,
    make_board,
)
from nano_banana.parts.catalog import load_catalog
from nano_banana.parts.plan import plan_board

SIDE = 128


class WorldRenderer:
    """Draws each part as the demo world does; ``bad`` maps a part name to how many of its
    first renders come out blank, and ``merge`` makes every unifying pass join two parts."""

    def __init__(self, key: str, bad: dict[str, int] | None = None, merge: bool = False):
        self.shapes = {p.name: p for p in next(o for o in OBJECTS if o.key == key).parts}
        self.bad = dict(bad or {})
        self.merge = merge
        self.calls: list[tuple[str, int]] = []

    def render_part(self, part, plan, seed):
        self.calls.append((part.name, seed))
        image = Image.new("RGB", (SIDE, SIDE), "white")
        if self.bad.get(part.name, 0) > 0:
            self.bad[part.name] -= 1
            return image  # nothing drawn: the cut-out is refused
        shape = self.shapes[part.name]
        scale = 0.7 * SIDE / max(shape.size)
        w, h = shape.size[0] * scale, shape.size[1] * scale
        draw_part(ImageDraw.Draw(image), shape, (64 - w / 2, 64 - h / 2, 64 + w / 2, 64 + h / 2))
        return image

    def unify(self, board, plan, seed):
        image = board.filter(ImageFilter.GaussianBlur(0.6))
        if self.merge:
            a, b = plan.parts[0].box, plan.parts[1].box
            ImageDraw.Draw(image).rectangle((a[0], a[1], b[2], b[3]), fill=(20, 20, 20))
        return image


@pytest.fixture(scope="module")
def watch_plan(tmp_path_factory):
    catalog = load_catalog(user_dir=tmp_path_factory.mktemp("catalog"))
    return plan_board(catalog["watch"], "knolling", SIDE, SIDE, seed=2)


def test_a_clean_board_is_accepted_after_one_unifying_pass(watch_plan):
    renderer = WorldRenderer("watch")
    result = make_board(watch_plan, renderer, seed=5)
    assert result.accepted and result.unified
    assert len(result.plan.parts) == len(watch_plan.parts) == result.check.found
    steps = [a.step for a in result.attempts]
    assert steps.count("part") == 7 and steps.count("unify") == 1


def test_a_part_that_fails_to_cut_out_is_drawn_again_with_the_next_seed(watch_plan):
    renderer = WorldRenderer("watch", bad={"crown": 2})
    result = make_board(watch_plan, renderer, seed=5)
    crown = [a for a in result.attempts if a.part == "crown"]
    assert [a.ok for a in crown] == [False, False, True]
    assert len({a.seed for a in crown}) == 3 and "nothing was drawn" in crown[0].problem
    assert result.accepted


def test_a_part_that_never_cuts_out_fails_the_board_with_its_name(watch_plan):
    renderer = WorldRenderer("watch", bad={"dial": PART_TRIES})
    with pytest.raises(GenerationError, match=f"part 'dial'.*{PART_TRIES} tries"):
        make_board(watch_plan, renderer, seed=5)


def test_a_pass_that_merges_parts_falls_back_to_the_composed_board(watch_plan):
    result = make_board(watch_plan, WorldRenderer("watch", merge=True), seed=5)
    unify = [a for a in result.attempts if a.step == "unify"]
    assert len(unify) == 2 and not any(a.ok for a in unify) and "merged" in unify[0].problem
    assert result.accepted and not result.unified  # the composed board passed on its own
    assert result.record()["unified"] is False and len(result.record()["attempts"]) == 9


def test_the_same_seed_gives_the_same_board(watch_plan):
    first = make_board(watch_plan, WorldRenderer("watch"), seed=9)
    again = make_board(watch_plan, WorldRenderer("watch"), seed=9)
    assert first.image.tobytes() == again.image.tobytes() and first.plan == again.plan


def test_seeds_stay_in_range_and_neighbouring_boards_share_no_drawing(watch_plan):
    first, second = WorldRenderer("watch", bad={"crown": 1}), WorldRenderer("watch")
    make_board(watch_plan, first, seed=2**32 - 1)
    make_board(watch_plan, second, seed=0)  # the next seed, wrapped
    seeds = [seed for _, seed in first.calls + second.calls]
    assert all(0 <= seed < 2**32 for seed in seeds) and len(set(seeds)) == len(seeds)


def test_no_unifying_pass_keeps_the_composed_board_checked_once(watch_plan):
    class NoPass(WorldRenderer):
        def unify(self, board, plan, seed):
            return None

    result = make_board(watch_plan, NoPass("watch"), seed=5)
    assert not result.unified and result.accepted
    assert [a.step for a in result.attempts].count("unify") == 0


# --- batches --------------------------------------------------------------------------------------


class BatchWorldRenderer(WorldRenderer):
    """``WorldRenderer`` that also batches: ``sizes`` maps a part name to its render size
    (default ``SIDE``), and ``batches`` records every model call as its (name, seed) pairs,
    a part drawn alone as a batch of one."""

    def __init__(self, key: str, sizes: dict[str, int] | None = None, **kw):
        super().__init__(key, **kw)
        self.sizes = sizes or {}
        self.batches: list[list[tuple[str, int]]] = []

    def part_size(self, part, plan):
        side = self.sizes.get(part.name, SIDE)
        return side, side

    def render_part(self, part, plan, seed):
        self.batches.append([(part.name, seed)])
        return super().render_part(part, plan, seed)

    def render_parts(self, draws, plan):
        assert len({self.part_size(d.part, plan) for d in draws}) == 1  # one size a call
        self.batches.append([(d.part.name, d.seed) for d in draws])
        return [super(BatchWorldRenderer, self).render_part(d.part, plan, d.seed) for d in draws]


def test_a_renderer_with_the_batch_methods_is_a_batch_renderer_and_the_stand_ins_are_not():
    assert isinstance(BatchWorldRenderer("watch"), BatchRenderer)
    assert not isinstance(WorldRenderer("watch"), BatchRenderer)


@pytest.mark.parametrize(("max_pixels", "sizes", "batch_lengths"), [
    (PartBatching().max_pixels, {}, [7]),  # one size, under the cap: one call
    (0, {}, [1] * 7),  # batching off: a call a part
    (3 * SIDE * SIDE, {}, [3, 3, 1]),  # the cap cuts the group
    (8 * SIDE * SIDE, {"dial": 2 * SIDE, "case": 2 * SIDE}, [5, 2]),  # a group per size
    (3 * SIDE * SIDE, {"dial": 2 * SIDE}, [3, 3, 1]),  # a part over the cap is drawn alone
])  # fmt: skip
def test_parts_are_batched_by_render_size_under_the_cap(watch_plan, max_pixels, sizes,
                                                        batch_lengths):  # fmt: skip
    renderer = BatchWorldRenderer("watch", sizes)
    result = make_board(watch_plan, renderer, seed=5, batching=PartBatching(max_pixels))
    names = [name for batch in renderer.batches for name, _ in batch]
    assert sorted(names) == sorted({p.name for p in watch_plan.parts}) and result.accepted
    assert sorted(len(b) for b in renderer.batches) == sorted(batch_lengths)


def test_batches_follow_the_plans_order_within_each_size(watch_plan):
    renderer = BatchWorldRenderer("watch", {"movement": 2 * SIDE})
    make_board(watch_plan, renderer, seed=5)
    names = [name for batch in renderer.batches for name, _ in batch]
    distinct = list(dict.fromkeys(p.name for p in watch_plan.parts))
    assert names == [n for n in distinct if n != "movement"] + ["movement"]


def test_a_batched_board_is_the_one_by_one_board_with_the_same_record(watch_plan):
    """Seeds belong to the part and the try, not to the batch, and the attempts are recorded
    part by part as before: batching changes the calls, not the board or its record."""
    batched = make_board(watch_plan, BatchWorldRenderer("watch", bad={"crown": 2}), seed=5)
    single = make_board(watch_plan, WorldRenderer("watch", bad={"crown": 2}), seed=5)
    assert batched.record() == single.record()
    assert batched.image.tobytes() == single.image.tobytes()


def test_a_part_that_fails_in_a_batch_is_drawn_again_with_its_next_seed(watch_plan):
    renderer = BatchWorldRenderer("watch", bad={"crown": 2, "dial": 1})
    result = make_board(watch_plan, renderer, seed=5)
    crown = next(p for p in watch_plan.parts if p.name == "crown")
    dial = next(p for p in watch_plan.parts if p.name == "dial")
    first, second, third = renderer.batches  # one batch a round: all, then the failures
    assert len(first) == 7
    assert second == [(dial.name, derived_seed(5, PART, dial.number, 1)),
                      (crown.name, derived_seed(5, PART, crown.number, 1))]  # fmt: skip
    assert third == [(crown.name, derived_seed(5, PART, crown.number, 2))]
    crown_tries = [a for a in result.attempts if a.part == "crown"]
    assert [a.ok for a in crown_tries] == [False, False, True] and result.accepted
    parts = [a.part for a in result.attempts if a.step == "part"]
    assert parts == sorted(parts, key=lambda n: [p.name for p in watch_plan.parts].index(n))


def test_a_part_that_never_cuts_out_in_a_batch_fails_the_board_with_its_name(watch_plan):
    renderer = BatchWorldRenderer("watch", bad={"dial": PART_TRIES})
    with pytest.raises(GenerationError, match=f"part 'dial'.*{PART_TRIES} tries"):
        make_board(watch_plan, renderer, seed=5)
    assert [len(b) for b in renderer.batches] == [7] + [1] * (PART_TRIES - 1)


def test_progress_counts_the_board_parts_drawn_after_each_batch(watch_plan):
    events = []
    renderer = BatchWorldRenderer("watch", bad={"crown": 1})
    make_board(watch_plan, renderer, seed=5, progress=lambda *e: events.append(e),
               batching=PartBatching(3 * SIDE * SIDE))  # fmt: skip
    total = len(watch_plan.parts)
    assert [e[0] for e in events] == ["parts"] * len(renderer.batches)
    assert [e[1] for e in events] == sorted(e[1] for e in events) and events[-1][1:] == (
        total,
        total,
    )


@pytest.mark.parametrize("max_pixels", [-1, 1.5, True])
def test_a_batching_cap_that_is_not_a_whole_number_is_refused(max_pixels):
    with pytest.raises(InvalidSettingError, match="max_pixels"):
        PartBatching(max_pixels)
