"""Evaluation: the classifier knows the world's objects; eval reports LoRA off and on side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nano_banana.analysis.evaluation import (
    ARMS,
    EvalConfig,
    EvalReport,
    EvalRow,
    ObjectClassifier,
    arrangement_signature,
    colour_features,
    evaluate,
    judge_image,
    make_request,
    shape_features,
    summary_rows,
    with_generator_flaws,
    write_report,
)
from nano_banana.analysis.layout import analyze_layout
from nano_banana.demo import OBJECTS, render_object
from nano_banana.errors import InvalidSettingError


@pytest.fixture(scope="module")
def classifier():
    return ObjectClassifier.fit_on_world(instances=6)


def test_classifier_recognises_every_object_in_every_view(classifier):
    assert classifier.holdout_accuracy >= 0.9
    for spec in OBJECTS:
        for view in ("assembled", "knolling", "exploded"):
            assert classifier.predict(render_object(spec.key, view, seed=999).image) == spec.key


def test_classifier_recognises_renders_drawn_with_generator_flaws(classifier):
    """Blur, dark rims and colour casts (what a small model adds) must not change the answer."""
    rng = np.random.default_rng(3)
    hits = []
    for spec in OBJECTS:
        for view in ("assembled", "knolling", "exploded"):
            clean = render_object(spec.key, view, seed=321).image
            flawed = with_generator_flaws(clean, rng)
            assert (
                flawed.size == clean.size
                and np.abs(np.asarray(flawed, float) - np.asarray(clean, float)).mean() > 1
            )  # the copy really differs
            hits.append(classifier.predict(flawed) == spec.key)
    assert np.mean(hits) >= 0.9, hits


def test_shape_features_say_where_the_foreground_is():
    canvas = np.full((64, 64, 3), 255, np.uint8)
    assert not shape_features(canvas).any()  # nothing on white
    canvas[:8, :8] = 0  # one part filling the top-left cell of the 8 x 8 grid
    shape = shape_features(canvas)
    assert shape.shape == (64,) and np.isclose(np.linalg.norm(shape), 1.0)
    assert shape[0] == shape.max() and np.isclose(shape[1:].sum(), 0)


def test_colour_features_ignore_the_background():
    white = Image.new("RGB", (64, 64), "white")
    assert not colour_features(white).any()
    grey = Image.new("RGB", (64, 64), (90, 90, 90))
    assert not colour_features(grey).any()


def test_both_arms_share_all_settings_but_the_lora_scale():
    config = EvalConfig(seeds=2, steps=5, cfg=4.0, lora_scale=0.9)
    off, on = (make_request(config, "a sneaker", 3, arm) for arm in ARMS)
    assert (off.lora_scale, on.lora_scale) == (0.0, 0.9)
    assert off.to_dict() | {"lora_scale": 0} == on.to_dict() | {"lora_scale": 0}


@pytest.mark.parametrize("bad", [{"seeds": 0}, {"lora_scale": 0.0}, {"lora_scale": 3.0}])
def test_bad_eval_settings_are_refused(bad):
    with pytest.raises(InvalidSettingError):
        EvalConfig(**bad)


def test_default_prompts_are_the_world_objects():
    assert [key for _, key in EvalConfig().prompt_list()] == [o.key for o in OBJECTS]
    assert EvalConfig(prompts=("a kettle",)).prompt_list() == [("a kettle", None)]


class FakeEngine:
    """Draws the world's ground truth instead of a model: knolling with the LoRA, assembled without."""

    base_name = "fake"

    def __init__(self, loras=True):
        self.loras = (
            {"structure": type("L", (), {"path": __import__("pathlib").Path("s.safetensors")})()}
            if loras
            else {}
        )

    def generate(self, request):
        key = next((o.key for o in OBJECTS if o.phrase == request.prompt), "watch")
        view = "knolling" if request.lora_scale > 0 else "assembled"
        image = render_object(key, view, seed=request.seed).image
        return type("R", (), {"image": image})()


def test_eval_reports_both_arms_and_writes_json_and_grid(tmp_path, classifier):
    config = EvalConfig(prompts=("a mechanical watch", "a sneaker"), seeds=2)
    report = evaluate(FakeEngine(), config, classifier=classifier)
    summary = report.summary()
    assert summary["lora on"]["disassembled"] == 1.0
    assert summary["lora off"]["disassembled"] == 0.0
    assert summary["lora on"]["recognised"] == 1.0
    assert len(report.rows) == 2 * 2 * 2
    assert [row[0] for row in summary_rows(report)][0] == "disassembled layout"
    paths = write_report(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert set(data["summary"]) == set(ARMS)
    # each row says why a "no" verdict is no: an assembled object is too few parts
    off_rows = [r for r in data["rows"] if r["arm"] == "lora off"]
    assert all(any("at least 3" in reason for reason in r["reasons"]) for r in off_rows)
    assert all(not r["reasons"] for r in data["rows"] if r["arm"] == "lora on")
    grid = Image.open(paths["grid"])
    assert grid.width > 4 * 128 and grid.height > 2 * 128


def test_eval_needs_a_lora(classifier):
    with pytest.raises(InvalidSettingError, match="LoRA"):
        evaluate(FakeEngine(loras=False), EvalConfig(seeds=1), classifier=classifier)


def test_summary_of_unknown_prompts_has_no_recognition():
    report = EvalReport(config={"preset": "knolling"}, base="b", loras=[], classifier_accuracy=1.0)
    for arm in ARMS:
        report.rows.append(
            EvalRow("a toaster", None, 0, arm, True, 80, 4, "grid", None, None, None, 1.0)
        )
    assert report.summary()["lora on"]["recognised"] is None
    assert np.isclose(report.summary()["lora off"]["mean_score"], 80)


class FailingBoards(FakeEngine):
    """Draws the two plain arms; every board fails to draw, as a model that cannot draw a part."""

    native_size = (128, 128)

    def generate(self, request):
        if request.compose:
            from nano_banana.errors import GenerationError

            raise GenerationError("could not draw the part 'crown' as one clean piece")
        return super().generate(request)


def test_a_board_that_cannot_be_drawn_counts_as_a_failure_with_its_reason(classifier):
    config = EvalConfig(prompts=("a mechanical watch",), seeds=2, compose=True)
    report = evaluate(FailingBoards(), config, classifier=classifier)
    boards = [r for r in report.rows if r.arm == "composed"]
    assert len(boards) == 2 and not any(r.verdict or r.exact_count for r in boards)
    assert all("could not draw the part 'crown'" in r.reasons[-1] for r in boards)
    assert report.summary()["composed"]["disassembled"] == 0.0


def test_eval_compose_arm_compares_each_board_with_its_plan(demo_engine, classifier, tmp_path):
    config = EvalConfig(prompts=("a mechanical watch",), seeds=2, steps=20, cfg=1.5, compose=True)
    report = evaluate(demo_engine, config, classifier=classifier)
    assert report.arms == ("lora off", "lora on", "composed")
    boards = [r for r in report.rows if r.arm == "composed"]
    assert all(r.callouts == 7 and 0 <= r.callouts_right <= 7 for r in boards)
    assert all(r.exact_count == (r.parts == 7) for r in boards)
    summary = report.summary()["composed"]
    assert summary["arrangements"] == 2.0  # two seeds, two plans
    assert summary["exact_count"] is not None and report.summary()["lora on"]["exact_count"] is None
    labels = [row[0] for row in summary_rows(report)]
    assert "exact part count (boards)" in labels and len(summary_rows(report)[0]) == 4
    grid = Image.open(write_report(report, tmp_path)["grid"])
    assert grid.width > 6 * 128


# --- arrangements: how many different layouts each arm draws for a prompt ----------------------


def row_board(order: str, shift: int = 0) -> Image.Image:
    """Three squares in a row, large (L), medium (M) and small (S) in ``order``."""
    image = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(image)
    for i, size in enumerate({"L": 64, "M": 44, "S": 28}[k] for k in order):
        cx, cy = 48 + 80 * i + shift, 128 + shift
        draw.rectangle((cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2),
                       fill=(40, 90, 160))  # fmt: skip
    return image


def test_the_arrangement_signature_tells_part_orders_apart():
    first, again = analyze_layout(row_board("LMS")), analyze_layout(row_board("LMS"))
    assert first.verdict and first.arrangement == "axis"
    signature = arrangement_signature(first)
    assert signature == arrangement_signature(again)
    assert signature == arrangement_signature(analyze_layout(row_board("LMS", shift=3)))
    others = {arrangement_signature(analyze_layout(row_board(o))) for o in ("SML", "MLS")}
    assert len(others) == 2 and signature not in others


def test_only_an_image_judged_a_layout_gets_an_arrangement_key():
    board = row_board("LMS")
    row = judge_image(board, "a thing", None, 0, "lora on", None, 0.1)
    assert row.verdict and row.arrangement_key == arrangement_signature(analyze_layout(board))
    lone = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(lone).rectangle((100, 100, 160, 160), fill=(40, 90, 160))
    assert judge_image(lone, "a thing", None, 0, "lora off", None, 0.1).arrangement_key is None


def test_every_arm_counts_the_fewest_arrangements_over_its_prompts():
    report = EvalReport(config={"preset": "knolling"}, base="b", loras=[], classifier_accuracy=None)
    drawn = {  # (arm, prompt) -> the boards drawn for its seeds; "" is not a layout
        ("lora off", "a lamp"): ["LMS", "LMS"],  # one arrangement
        ("lora off", "a kettle"): ["LMS", "SML"],
        ("lora on", "a lamp"): ["LMS", "SML", ""],  # two; the blank image adds none
        ("lora on", "a kettle"): ["SML", "MLS"],
    }
    for (arm, prompt), orders in drawn.items():
        for seed, order in enumerate(orders):
            image = row_board(order) if order else Image.new("RGB", (256, 256), "white")
            report.rows.append(judge_image(image, prompt, None, seed, arm, None, 0.1))
    summary = report.summary()
    assert summary["lora off"]["arrangements"] == 1.0
    assert summary["lora on"]["arrangements"] == 2.0
    assert summary["lora on"]["exact_count"] is None  # the board measures stay composed-only
    labels = {row[0]: row[1:] for row in summary_rows(report)}
    assert labels["fewest arrangements of a prompt"] == ("1.0", "2.0")


def test_a_prompt_with_no_layout_has_no_arrangements():
    report = EvalReport(config={"preset": "knolling"}, base="b", loras=[], classifier_accuracy=None)
    blank = Image.new("RGB", (256, 256), "white")
    for arm in ARMS:
        report.rows.append(judge_image(blank, "a lamp", None, 0, arm, None, 0.1))
        report.rows.append(judge_image(row_board("LMS"), "a kettle", None, 0, arm, None, 0.1))
    assert {report.summary()[arm]["arrangements"] for arm in ARMS} == {0.0}
    empty = EvalReport(config={"preset": "knolling"}, base="b", loras=[], classifier_accuracy=None)
    assert empty.summary()["lora on"]["arrangements"] is None
