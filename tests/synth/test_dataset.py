"""``dataset synth``: a balanced, deterministic, resumable set of parts-first boards.

Most tests draw with ``BoxRenderer`` (each part a flat rectangle on white) in place of
the base model, so the set's logic is tested on its own in well under a second a board;
one test at the end makes a small set with the shipped demo model.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from nano_banana.errors import InvalidSettingError, NanoBananaError
from nano_banana.parts.board import PART_TRIES, make_board
from nano_banana.parts.catalog import CatalogError
from nano_banana.parts.plan import BoardPlan, plan_board
from nano_banana.prompt.presets import PresetError
from nano_banana.synth import dataset
from nano_banana.synth.captions import caption
from nano_banana.synth.dataset import (
    PLAN_FILE,
    PartBank,
    SynthConfig,
    draw_item,
    make_set,
    parse_range,
    placed_on,
    prepare_synth,
    read_done,
    resolve_objects,
    resolve_presets,
    schedule,
    summarise,
    vary_plan,
    write_item,
)

SIDE = 128


class BoxRenderer:
    """Each part as a rectangle of its box's shape, coloured by the seed, on white.

    ``blank`` names objects whose parts come out as nothing drawn (never a clean cut-out);
    ``calls`` records every part render as (object, part, seed)."""

    def __init__(self, blank: tuple[str, ...] = ()):
        self.blank = blank
        self.calls: list[tuple[str, str, int]] = []

    def render_part(self, part, plan, seed):
        self.calls.append((plan.object, part.name, seed))
        image = Image.new("RGB", (SIDE, SIDE), "white")
        if plan.object in self.blank:
            return image
        w, h = part.box[2] - part.box[0], part.box[3] - part.box[1]
        scale = 0.7 * SIDE / max(w, h)
        w, h, c = max(4, w * scale), max(4, h * scale), SIDE / 2
        colour = tuple(random.Random(seed).randrange(20, 160) for _ in range(3))
        ImageDraw.Draw(image).rectangle((c - w / 2, c - h / 2, c + w / 2, c + h / 2), fill=colour)
        return image

    def unify(self, board, plan, seed):
        return None  # no unifying pass: the composed board is checked as it is


class FakeEngine:
    """What ``prepare_synth`` reads from an engine: its presets and native size."""

    def __init__(self, presets):
        self.presets = presets
        self.native_size = (SIDE, SIDE)


@pytest.fixture
def engine(presets):
    return FakeEngine(presets)


@pytest.fixture
def renderer(monkeypatch):
    """The ``BoxRenderer`` every board of ``make_set`` draws with."""
    drawn = BoxRenderer()
    monkeypatch.setattr(dataset, "board_renderers", lambda *args: lambda preset: drawn)
    return drawn


def items_of(catalog, presets, objects=("watch",), preset_ids=("knolling",), count=1, seed=0):
    return schedule([catalog[o] for o in objects], [presets[p] for p in preset_ids], count, seed)


def make(engine, catalog, out, **settings):
    config = SynthConfig(
        **({"objects": ("watch", "sneaker"), "count": 4, "variants": 2} | settings)
    )
    return make_set(engine, prepare_synth(engine, config, out, catalog))


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / PLAN_FILE).read_text().splitlines()]


# --- the config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "message"), [
    ({"objects": ()}, "no objects"), ({"presets": ()}, "no presets"),
    ({"count": 0}, "--count must be at least 1"), ({"count": -3}, "--count"),
    ({"explode": (0.5, 1.2)}, "--explode 0.5..1.2"), ({"explode": (0.9, 0.6)}, "--explode"),
    ({"explode": (-0.1, 0.5)}, "--explode"), ({"scale": (0.2, 1.0)}, "--scale 0.2..1.0"),
    ({"scale": (1.0, 0.8)}, "--scale"), ({"variants": 0}, "--variants"), ({"tries": 0}, "--tries"),
    ({"styles": "preset,long"}, "unknown caption style 'long'"), ({"styles": ""}, "no caption"),
])  # fmt: skip
def test_bad_settings_are_refused_with_the_flag_named(bad, message):
    with pytest.raises(InvalidSettingError, match=message):
        SynthConfig(**({"objects": ("watch",)} | bad))


def test_styles_given_as_text_are_parsed():
    assert SynthConfig(objects=("watch",), styles="short, parts").styles == ("short", "parts")


@pytest.mark.parametrize(
    ("text", "pair"), [("0.6,1.0", (0.6, 1.0)), ("0.7", (0.7, 0.7)), (" 0.5 , 1 ", (0.5, 1.0))]
)
def test_parse_range_reads_low_high_or_one_number(text, pair):
    assert parse_range(text, "--explode") == pair


@pytest.mark.parametrize("text", ["a,b", "1,2,3", "", "0.5,"])
def test_parse_range_refuses_anything_else(text):
    with pytest.raises(InvalidSettingError, match="--explode takes LOW,HIGH"):
        parse_range(text, "--explode")


# --- the schedule --------------------------------------------------------------------------------


def test_the_schedule_takes_the_pairs_in_turn_objects_fastest(catalog, presets):
    objects, preset_ids = ("watch", "sneaker", "camera"), ("knolling", "exploded-view")
    items = items_of(catalog, presets, objects, preset_ids, count=14)
    assert [i.index for i in items] == list(range(14))
    assert [i.object.key for i in items[:4]] == ["watch", "sneaker", "camera", "watch"]
    assert [i.preset.id for i in items[:7]] == ["knolling"] * 3 + ["exploded-view"] * 3 + [
        "knolling"
    ]
    pairs = Counter((i.object.key, i.preset.id) for i in items[:12])
    assert len(pairs) == 6 and set(pairs.values()) == {2}  # any whole round is balanced
    assert items[5].stem == "00005_camera_exploded-view"


def test_an_items_seed_depends_on_the_set_seed_and_its_index_only(catalog, presets):
    short = items_of(catalog, presets, count=5, seed=3)
    long = items_of(catalog, presets, ("watch", "sneaker"), ("knolling", "repair-manual"), 40, 3)
    assert [i.seed for i in short] == [i.seed for i in long[:5]]
    assert len({i.seed for i in long}) == 40
    other = items_of(catalog, presets, count=5, seed=4)
    assert not {i.seed for i in short} & {i.seed for i in other}


# --- one item's plan --------------------------------------------------------------------------------


@pytest.mark.parametrize("preset_id", ["knolling", "exploded-view"])
def test_varied_plans_stay_on_the_board_at_their_scale_and_explosion(catalog, presets, preset_id):
    config = SynthConfig(objects=("watch",), explode=(0.3, 0.7), scale=(0.5, 0.7))
    plans = []
    for item in items_of(catalog, presets, preset_ids=(preset_id,), count=6):
        for tried in range(3):
            plan = vary_plan(item, config, 256, 192, tried)
            assert (plan.width, plan.height) == (256, 192)
            boxes = [p.box for p in plan.parts]
            assert all(0 <= b[0] < b[2] <= 256 and 0 <= b[1] < b[3] <= 192 for b in boxes)
            span = (max(b[2] for b in boxes) - min(b[0] for b in boxes),
                    max(b[3] for b in boxes) - min(b[1] for b in boxes))  # fmt: skip
            assert span[0] <= 0.7 * 256 and span[1] <= 0.7 * 192  # drawn at most at the scale
            if preset_id == "exploded-view":
                assert 0.3 <= plan.explode <= 0.7
            plans.append(plan)
            assert vary_plan(item, config, 256, 192, tried) == plan  # a function of its seed
    lefts = {min(p.box[0] for p in plan.parts) for plan in plans}
    assert len({tuple(p.box for p in plan.parts) for plan in plans}) == len(plans)
    assert len(lefts) > 5  # placed at several places, not always centred


def test_placed_on_moves_every_box_by_one_offset_within_the_board(catalog):
    plan = plan_board(catalog["sneaker"], "knolling", 100, 80, seed=1)
    for n in range(20):
        moved = placed_on(plan, 140, 110, random.Random(n))
        assert (moved.width, moved.height) == (140, 110)
        offsets = {(m.box[0] - p.box[0], m.box[1] - p.box[1], m.box[2] - p.box[2],
                    m.box[3] - p.box[3]) for m, p in zip(moved.parts, plan.parts, strict=True)}  # fmt: skip
        ((dx, dy, dx2, dy2),) = offsets
        assert (dx, dy) == (dx2, dy2) and 0 <= dx <= 40 and 0 <= dy <= 30
    assert placed_on(plan, 100, 80, random.Random(0)).parts == plan.parts  # no room: unmoved


def test_a_full_scale_plan_is_the_planners_own(catalog, presets):
    item = items_of(catalog, presets)[0]
    config = SynthConfig(objects=("watch",), scale=(1.0, 1.0))
    plan = vary_plan(item, config, SIDE, SIDE, 0)
    assert plan == plan_board(item.object, "knolling", SIDE, SIDE, plan.seed, explode=1.0)


# --- the part bank -------------------------------------------------------------------------------------


def test_the_part_bank_draws_each_part_once_per_variant(catalog, presets):
    drawn = BoxRenderer()
    bank = PartBank(lambda preset: drawn, variants=2, seed=0)
    bank.preset = presets["knolling"]
    watch = plan_board(catalog["watch"], "knolling", SIDE, SIDE, seed=0)
    dial = next(p for p in watch.parts if p.name == "dial")
    images = [bank.render_part(dial, watch, seed) for seed in range(10)]
    assert len(drawn.calls) == 2  # ten boards, two drawings
    assert images[0] is images[2] is images[8] and images[1] is images[9]
    assert images[0].tobytes() != images[1].tobytes()
    # Another part, or the same part name of another object, is drawn on its own.
    moved = replace(watch, parts=tuple(replace(p, box=(0, 0, 9, 9)) for p in watch.parts))
    assert bank.render_part(dial, moved, 4) is images[0]  # the plan's boxes do not matter
    other = replace(watch, object="camera")
    bank.render_part(dial, other, 0)
    assert len(drawn.calls) == 3 and drawn.calls[-1][0] == "camera"


def test_the_part_bank_keeps_the_first_drawing_that_cuts_out(catalog, presets):
    class FirstTwoBlank(BoxRenderer):
        def render_part(self, part, plan, seed):
            image = super().render_part(part, plan, seed)
            return Image.new("RGB", image.size, "white") if len(self.calls) <= 2 else image

    drawn = FirstTwoBlank()
    bank = PartBank(lambda preset: drawn, variants=1, seed=0)
    watch = plan_board(catalog["watch"], "knolling", SIDE, SIDE, seed=0)
    image = bank.render_part(watch.parts[0], watch, 0)
    assert len(drawn.calls) == 3 and len({seed for *_, seed in drawn.calls}) == 3
    assert image.getextrema() != ((255, 255),) * 3
    assert bank.render_part(watch.parts[0], watch, 5) is image and len(drawn.calls) == 3


class BatchBoxRenderer(BoxRenderer):
    """``BoxRenderer`` that batches: ``batches`` records each model call's part names, and a
    part named in ``blank_once`` comes out blank the first time it is drawn."""

    def __init__(self, blank_once: tuple[str, ...] = ()):
        super().__init__()
        self.blank_once = set(blank_once)
        self.batches: list[list[str]] = []

    def part_size(self, part, plan):
        return SIDE, SIDE

    def render_part(self, part, plan, seed):
        image = super().render_part(part, plan, seed)
        if part.name in self.blank_once:
            self.blank_once.discard(part.name)
            return Image.new("RGB", image.size, "white")
        return image

    def render_parts(self, draws, plan):
        self.batches.append([d.part.name for d in draws])
        return [self.render_part(d.part, plan, d.seed) for d in draws]


def test_the_part_bank_draws_a_boards_missing_variants_in_one_batch(catalog, presets):
    drawn = BatchBoxRenderer()
    bank = PartBank(lambda preset: drawn, variants=1, seed=0)
    watch = plan_board(catalog["watch"], "knolling", SIDE, SIDE, seed=0)
    result = make_board(watch, bank, seed=3)
    assert [len(b) for b in drawn.batches] == [7] and len(drawn.calls) == 7
    one_by_one = make_board(watch, PartBank(lambda preset: BoxRenderer(), 1, 0), seed=3)
    assert result.image.tobytes() == one_by_one.image.tobytes()  # the same variant seeds
    make_board(watch, bank, seed=4)  # every variant is in the bank: nothing drawn again
    assert len(drawn.batches) == 1 and len(drawn.calls) == 7


def test_a_variant_that_fails_in_the_banks_batch_is_drawn_again_with_its_next_seed(catalog):
    drawn = BatchBoxRenderer(blank_once=("dial",))
    bank = PartBank(lambda preset: drawn, variants=1, seed=0)
    watch = plan_board(catalog["watch"], "knolling", SIDE, SIDE, seed=0)
    assert make_board(watch, bank, seed=3).accepted
    assert [len(b) for b in drawn.batches] == [7] and len(drawn.calls) == 8
    key = ("watch", "dial", 0)
    assert drawn.calls[-1] == ("watch", "dial", bank.variant_seed(key, 1))
    assert ("watch", "dial", bank.variant_seed(key, 0)) in drawn.calls[:7]  # in the batch


# --- one item ---------------------------------------------------------------------------------------------


def test_an_item_is_drawn_and_accepted_on_its_first_plan(catalog, presets):
    item = items_of(catalog, presets, preset_ids=("exploded-view",))[0]
    config = SynthConfig(objects=("watch",), variants=2)
    bank = PartBank(lambda preset: BoxRenderer(), config.variants, config.seed)
    result, drawn = draw_item(item, config, bank, SIDE, SIDE)
    assert drawn == 1 and result.accepted and bank.preset is item.preset
    assert result.plan == vary_plan(item, config, SIDE, SIDE, 0)
    assert result.image.size == (SIDE, SIDE)


def test_an_item_with_no_clean_part_is_left_out_after_its_tries(catalog, presets):
    item = items_of(catalog, presets)[0]
    config = SynthConfig(objects=("watch",), tries=3, variants=1)
    drawn = BoxRenderer(blank=("watch",))
    result, boards = draw_item(item, config, PartBank(lambda p: drawn, 1, 0), SIDE, SIDE)
    assert result is None and boards == 3
    # The first board tries every part in rounds, so each part's one variant is drawn
    # PART_TRIES times; the item's later boards reuse them instead of drawing them again.
    assert len(drawn.calls) == len(item.object.parts) * PART_TRIES


# --- writing and resuming ----------------------------------------------------------------------------------


def test_an_accepted_item_writes_its_image_caption_and_plan_row(tmp_path, catalog, presets):
    item = items_of(catalog, presets, ("sneaker",), ("exploded-view",))[0]
    config = SynthConfig(objects=("sneaker",))
    result, drawn = draw_item(item, config, PartBank(lambda p: BoxRenderer(), 1, 0), SIDE, SIDE)
    row = write_item(tmp_path, item, result, drawn, "parts")
    assert row["file"] == "00000_sneaker_exploded-view.png"
    assert Image.open(tmp_path / row["file"]).size == (SIDE, SIDE)
    text = (tmp_path / "00000_sneaker_exploded-view.txt").read_text()
    assert text == row["caption"] + "\n" == caption(result.plan, item.preset, "parts") + "\n"
    assert BoardPlan.from_dict(row["plan"]) == result.plan and row["check"]["planned"] == 6
    assert rows_of(tmp_path) == [json.loads(json.dumps(row))]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000_sneaker_exploded-view.png", "00000_sneaker_exploded-view.txt", PLAN_FILE,
    ]  # fmt: skip


def test_a_rejected_item_writes_only_its_row(tmp_path, catalog, presets):
    item = items_of(catalog, presets)[0]
    row = write_item(tmp_path, item, None, 3, "short")
    assert row == {"index": 0, "object": "watch", "preset": "knolling", "seed": item.seed,
                   "boards_drawn": 3, "file": None}  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == [PLAN_FILE]


def test_read_done_skips_torn_lines_and_rows_whose_image_is_gone(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    lines = [
        {"index": 0, "file": "a.png", "boards_drawn": 1},
        {"index": 1, "file": None, "boards_drawn": 3},  # rejected: done, not redrawn
        {"index": 2, "file": "gone.png", "boards_drawn": 1},  # deleted image: redo
    ]
    text = "\n".join(json.dumps(r) for r in lines) + '\n{"index": 3, "file": "b.p'
    (tmp_path / PLAN_FILE).write_text(text)
    assert sorted(read_done(tmp_path)) == [0, 1]
    assert read_done(tmp_path / "nothing-here") == {}


def test_a_set_is_written_balanced_with_captions_from_its_plans(
    tmp_path, engine, catalog, renderer
):
    progress = []
    config = SynthConfig(objects=("watch", "sneaker"), count=6, variants=2)
    report = make_set(engine, prepare_synth(engine, config, tmp_path / "set", catalog),
                      progress=lambda *a: progress.append(a))  # fmt: skip
    out = tmp_path / "set"
    assert (report.items, report.accepted, report.rejected, report.made_now) == (6, 6, 0, 6)
    assert report.boards_drawn == 6 and report.acceptance == 1.0
    assert report.per_pair == {"watch / knolling": 2, "sneaker / knolling": 2,
                               "watch / exploded-view": 1, "sneaker / exploded-view": 1}  # fmt: skip
    assert progress[-1] == (6, 6, 6) and [p[0] for p in progress] == list(range(1, 7))
    rows = rows_of(out)
    assert [r["index"] for r in rows] == list(range(6))
    for row in rows:
        plan = BoardPlan.from_dict(row["plan"])
        preset = engine.presets[row["preset"]]
        assert (out / row["file"]).is_file() and plan.object == row["object"]
        assert row["caption"] == caption(plan, preset, row["style"])
        assert (out / row["file"]).with_suffix(".txt").read_text() == row["caption"] + "\n"
    assert len(list(out.glob("*.png"))) == len(list(out.glob("*.txt"))) == 6
    # Two variants of each part: 7 watch parts and 6 sneaker parts, at most twice each.
    assert len(renderer.calls) <= 2 * (7 + 6)
    assert "6 of 6 boards kept" in report.format() and "  watch / knolling: 2" in report.format()


def test_the_same_seed_makes_the_same_set_and_another_seed_another(tmp_path, engine, catalog,
                                                                   renderer):  # fmt: skip
    make(engine, catalog, tmp_path / "a")
    make(engine, catalog, tmp_path / "b")
    make(engine, catalog, tmp_path / "c", seed=1)
    a, b, c = (rows_of(tmp_path / n) for n in "abc")
    assert a == b
    assert all((tmp_path / "a" / r["file"]).read_bytes() == (tmp_path / "b" / r["file"]).read_bytes()
               for r in a)  # fmt: skip
    assert [r["plan"] for r in a] != [r["plan"] for r in c]


def test_a_rerun_makes_only_what_is_missing(tmp_path, engine, catalog, renderer):
    out = tmp_path / "set"
    first = make(engine, catalog, out)
    rows = rows_of(out)
    kept = {r["file"]: (out / r["file"]).read_bytes() for r in rows}
    assert make(engine, catalog, out).made_now == 0 and rows_of(out) == rows  # finished: nothing
    # A deleted image is made again, the same as before; nothing else is.
    (out / rows[2]["file"]).unlink()
    again = make(engine, catalog, out)
    assert again.made_now == 1 and again.accepted == first.accepted == 4
    assert json.loads((out / PLAN_FILE).read_text().splitlines()[-1]) == rows[2]  # the same item
    assert all((out / name).read_bytes() == data for name, data in kept.items())
    # A larger count adds the new items only, and they continue the balance.
    more = make(engine, catalog, out, count=6)
    assert more.made_now == 2 and more.items == 6
    assert [(r["index"], r["object"], r["preset"]) for r in rows_of(out)[-2:]] == [
        (4, "watch", "knolling"),
        (5, "sneaker", "knolling"),
    ]


def test_the_row_after_a_torn_last_line_is_kept(tmp_path, engine, catalog, renderer):
    """A crash mid-write leaves a last line with no newline: the next row must still be read."""
    out = tmp_path / "set"
    make(engine, catalog, out, count=2)
    with (out / PLAN_FILE).open("a") as f:
        f.write('{"index": 2, "obj')  # item 2's row, torn
    assert make(engine, catalog, out, count=3).made_now == 1
    assert sorted(read_done(out)) == [0, 1, 2]  # item 2's new row is readable
    assert make(engine, catalog, out, count=3).made_now == 0


def test_a_rejected_item_is_recorded_and_not_retried(tmp_path, engine, catalog, monkeypatch):
    drawn = BoxRenderer(blank=("sneaker",))
    monkeypatch.setattr(dataset, "board_renderers", lambda *args: lambda preset: drawn)
    out = tmp_path / "set"
    report = make(engine, catalog, out, tries=2)
    assert (report.accepted, report.rejected, report.boards_drawn) == (2, 2, 1 + 2 + 1 + 2)
    assert [r["file"] is None for r in rows_of(out)] == [False, True, False, True]
    assert "2 left out" in report.format()
    calls = len(drawn.calls)
    assert make(engine, catalog, out, tries=2).made_now == 0 and len(drawn.calls) == calls


def test_summarise_counts_only_the_sets_items(tmp_path):
    done = {
        0: {"object": "watch", "preset": "knolling", "boards_drawn": 2, "file": "a.png"},
        1: {"object": "watch", "preset": "knolling", "boards_drawn": 3, "file": None},
        7: {"object": "sneaker", "preset": "knolling", "boards_drawn": 1, "file": "b.png"},
    }  # item 7 was made by a run with a larger count
    report = summarise(tmp_path, done, count=2, made=1, seconds=1.0)
    assert (report.accepted, report.rejected, report.boards_drawn) == (1, 1, 5)
    assert report.per_pair == {"watch / knolling": 1} and report.acceptance == 0.2
    assert summarise(tmp_path, {}, 2, 0, 0.0).acceptance == 0.0


# --- refusals before drawing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "error", "message"), [
    ({"objects": ("watch", "wat")}, CatalogError, "'wat' is not in the parts catalog"),
    ({"presets": ("knolling", "part")}, InvalidSettingError,
     "preset 'part' has no board layout; use one that has .*exploded-view.*knolling"),
    ({"presets": ("kniolling",)}, PresetError, "unknown preset 'kniolling'"),
    ({"width": 16, "height": 16}, CatalogError, "do not fit a 16x16"),
])  # fmt: skip
def test_bad_names_and_sizes_are_refused_before_anything_is_written(tmp_path, engine, catalog,
                                                                    settings, error, message):  # fmt: skip
    config = SynthConfig(**({"objects": ("watch",), "count": 2} | settings))
    with pytest.raises(error, match=message):
        prepare_synth(engine, config, tmp_path / "set", catalog)
    assert issubclass(error, NanoBananaError)  # the shells print it as one line
    assert not (tmp_path / "set").exists()


def test_an_out_path_that_is_a_file_is_refused(tmp_path, engine, catalog):
    (tmp_path / "set").write_text("not a folder")
    with pytest.raises(InvalidSettingError, match="exists and is not a folder"):
        prepare_synth(engine, SynthConfig(objects=("watch",)), tmp_path / "set", catalog)
    assert (tmp_path / "set").read_text() == "not a folder"


def test_objects_are_found_by_alias_and_named_once(catalog, presets):
    found = resolve_objects(("watch", "a mechanical watch", "sneaker"), catalog)
    assert [o.key for o in found] == ["watch", "sneaker"]
    chosen = resolve_presets(("knolling", "knolling", "repair-manual"), presets)
    assert [p.id for p in chosen] == ["knolling", "repair-manual"]


# --- with the demo model --------------------------------------------------------------------------------------


def test_the_demo_model_makes_a_set_the_same_way_twice(tmp_path, demo_engine):
    """Three boards, then one redone, with the demo model's recommended settings at 10 steps
    (about 8 s on one CPU thread)."""
    from nano_banana.generate.spec import EngineSpec
    from nano_banana.synth.dataset import synth_dataset

    request = replace(EngineSpec().request_defaults(), steps=10)
    config = SynthConfig(objects=("watch", "sneaker"), count=3, variants=1, tries=1)
    out = tmp_path / "set"
    report = synth_dataset(demo_engine, config, out, request=request)
    rows = rows_of(out)
    assert report.made_now == 3 and [r["index"] for r in rows] == [0, 1, 2]
    assert [(r["object"], r["preset"]) for r in rows] == [
        ("watch", "knolling"), ("sneaker", "knolling"), ("watch", "exploded-view")
    ]  # fmt: skip
    kept = [r for r in rows if r["file"]]
    assert kept, "the demo base should draw at least one board its analyser accepts"
    for row in kept:
        assert Image.open(out / row["file"]).size == demo_engine.native_size
        text = (out / row["file"]).with_suffix(".txt").read_text()
        assert text.startswith(demo_engine.presets[row["preset"]].trigger)
    # Delete one image: a rerun makes that item alone, and makes it the same (same seed).
    victim = kept[0]
    before = (out / victim["file"]).read_bytes()
    (out / victim["file"]).unlink()
    again = synth_dataset(demo_engine, config, out, request=request)
    assert again.made_now == 1 and again.accepted == report.accepted
    assert rows_of(out)[-1] == victim and (out / victim["file"]).read_bytes() == before
