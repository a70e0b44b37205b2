"""Remaking a saved image: one set of rules for `generate --from`, the studio's Reuse and overrides."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nano_banana.errors import CatalogError, InvalidSettingError
from nano_banana.gallery.record import GenerationRecord, LoraUse
from nano_banana.generate.reproduce import (
    apply_overrides,
    keep_loaded_loras,
    model_differences,
    plan_settings,
    plan_text,
    read_plan_file,
    request_from_record,
    reused_lora_names,
    settings_line,
    settings_rows,
)
from nano_banana.parts.catalog import load_catalog
from nano_banana.parts.plan import BoardPlan, plan_board
from nano_banana.settings import GenerationRequest, LoraWeight, Sampler

SAVED = GenerationRequest(
    prompt="a watch",
    preset="knolling",
    lora_scale=0.6,
    loras=(LoraWeight("structure", 1.0), LoraWeight("style", 0.5)),
    cfg=5.0,
    steps=12,
    width=64,
    height=64,
    seed=42,
).validated()


def record_of(request: GenerationRequest = SAVED, **changes) -> GenerationRecord:
    uses = tuple(
        LoraUse(lw.name, f"{lw.name}.safetensors", f"{lw.name}-sha" * 4, lw.weight, 0.6)
        for lw in request.loras or ()
    )
    fields = dict(
        request=request,
        prompt_used="knolling, a watch",
        negative_used="",
        prompt_tokens=4,
        prompt_truncated=False,
        base_model="tiny-sdxl",
        loras=uses,
        duration_s=1.25,
    )
    return GenerationRecord(**{**fields, **changes})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, SAVED),  # rule 1: everything carries over, the seed too
        ({name: None for name in ("prompt", "cfg", "seed", "sampler")}, SAVED),  # None: not given
        ({"prompt": "a camera"}, replace(SAVED, prompt="a camera")),
        ({"prompt": ""}, replace(SAVED, prompt="")),  # an empty prompt is a prompt
        ({"negative_prompt": "blur"}, replace(SAVED, negative_prompt="blur")),
        ({"steps": 3, "cfg": 7.5}, replace(SAVED, steps=3, cfg=7.5)),
        ({"sampler": Sampler.DDIM}, replace(SAVED, sampler=Sampler.DDIM)),
        ({"lora_scale": 0.0}, replace(SAVED, lora_scale=0.0)),
        ({"seed": "7"}, replace(SAVED, seed=7)),  # as typed on the command line
        ({"seed": 7}, replace(SAVED, seed=7)),
        ({"seed": "random"}, replace(SAVED, seed=None)),  # drawn when validated
        ({"seed": " Random "}, replace(SAVED, seed=None)),
    ],
)
def test_overrides_replace_the_recorded_settings_field_by_field(overrides, expected):
    assert request_from_record(record_of(), overrides) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seed": "-1"}, "seed -1 is out of range"),
        ({"seed": "lucky"}, "seed must be a whole number"),
        ({"loras": ()}, "cannot override loras"),  # LoRAs follow what is loaded (rule 3)
        ({"guidance": 3}, "cannot override guidance"),
    ],
)
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(InvalidSettingError, match=message):
        apply_overrides(SAVED, overrides)


@pytest.mark.parametrize(
    ("recorded", "loaded", "kept"),
    [
        (None, ["structure"], None),  # "every loaded LoRA" stays that
        ((LoraWeight("structure"), LoraWeight("style", 0.5)), ["structure", "style"], None),
        (
            (LoraWeight("structure"), LoraWeight("style", 0.5)),
            ["style"],
            (LoraWeight("style", 0.5),),
        ),
        ((LoraWeight("structure"),), [], ()),
        ((), ["structure"], ()),  # made without a LoRA: stays without
    ],
)
def test_recorded_lora_weights_are_kept_for_loras_loaded_under_the_same_name(
    recorded, loaded, kept
):
    request = replace(SAVED, loras=recorded)
    kept = recorded if kept is None else kept
    assert keep_loaded_loras(request, loaded).loras == kept


@pytest.mark.parametrize(
    ("loaded", "names"),
    [
        (["structure", "style"], ["structure", "style"]),  # the record's order
        (["style", "structure"], ["structure", "style"]),
        (["style"], ["style"]),
        (["other"], []),
    ],
)
def test_reused_lora_names_follow_the_record(loaded, names):
    assert reused_lora_names(record_of(), loaded) == names


BOTH = {"structure-sha" * 4, "style-sha" * 4}


@pytest.mark.parametrize(
    ("base", "loaded_sha", "count", "fragment"),
    [
        ("tiny-sdxl", BOTH, 0, None),
        ("other", BOTH, 1, "image was made with base 'tiny-sdxl', now using 'other'"),
        ("tiny-sdxl", {"structure-sha" * 4}, 1, "LoRA style.safetensors (sha256 style-shasty)"),
        ("other", set(), 3, "which is not loaded now"),
    ],
)
def test_model_differences_say_why_an_image_may_not_come_back(base, loaded_sha, count, fragment):
    found = model_differences(record_of(), base, loaded_sha)
    assert len(found) == count
    assert fragment is None or any(fragment in note for note in found), found


def test_the_summary_names_every_setting_that_made_the_image():
    rows = settings_rows(record_of())
    assert rows == {
        "Scenario": "knolling",
        "Seed": "42",
        "Size": "64×64",
        "Steps": "12",
        "CFG": "5",
        "Sampler": "Euler a",
        "LoRA": "structure × 0.6, style × 0.6",
        "Model": "tiny-sdxl",
        "Time": "1.2 s",
    }
    assert settings_rows(record_of(replace(SAVED, loras=())))["LoRA"] == "none"
    assert settings_line(record_of()) == "seed 42, 12 steps, 1.2 s"


def test_the_studio_form_remakes_what_generate_from_remakes():
    """Reuse in the studio and `generate --from` give the same request for a studio image."""
    from nano_banana.studio.form import FormValues

    studio_made = replace(SAVED, loras=(LoraWeight("structure", 1.0),), negative_prompt="blur")
    record = record_of(studio_made)
    sizes = {"1:1 · 64×64": (64, 64)}
    form = FormValues.from_record(record, sizes, ["structure"])
    cli = keep_loaded_loras(request_from_record(record), ["structure"])
    assert form.to_request(sizes, form.f_lora) == cli
    gone = FormValues.from_record(record, sizes, ["other"])  # its LoRA is not loaded now
    assert gone.f_lora == "none" and gone.f_seed == 42
    assert keep_loaded_loras(request_from_record(record), ["other"]).loras == ()


# --- board plans (rule 5) -----------------------------------------------------------------


@pytest.fixture
def plan(tmp_path) -> BoardPlan:
    return plan_board(load_catalog(user_dir=tmp_path)["watch"], "knolling", 64, 64, seed=0)


@pytest.mark.parametrize(
    ("overrides", "kept"),
    [
        ({}, True),  # --from alone redraws the recorded (maybe edited) plan
        ({"seed": "7", "steps": 3, "strength": 0.2, "compose": None}, True),  # same plan, redrawn
        ({"prompt": "a camera"}, False),  # another object
        ({"parts": "case, strap x2"}, False),
        ({"explode": 0.5}, False),
        ({"preset": "exploded-view"}, False),
        ({"width": 128}, False),
        ({"parts": "case", "plan": "{}"}, True),  # a plan given with them is the plan drawn
    ],
)
def test_a_recorded_plan_is_kept_unless_another_is_asked_for(plan, overrides, kept):
    record = record_of(replace(SAVED, compose=True, plan=plan.to_json()))
    request = request_from_record(record, overrides)
    assert (request.plan is not None) is kept
    if "plan" in overrides:
        assert request.plan == overrides["plan"]


def test_a_plan_file_round_trips_one_line_per_part(plan, tmp_path):
    text = plan_text(plan)
    assert BoardPlan.from_json(text) == plan
    part_lines = [line for line in text.splitlines() if line.startswith('    {"number": ')]
    assert [json.loads(line.rstrip(","))["name"] for line in part_lines] == [
        p.name for p in plan.parts
    ]
    path = tmp_path / "plan.json"
    path.write_text(text.replace('"name": "crown"', '"name": "winding crown"'))
    settings = plan_settings(path, {"seed": "3", "width": None, "compose": None})
    assert settings["compose"] is True and settings["seed"] == "3"
    assert (settings["width"], settings["height"]) == (64, 64)  # the plan's size, where unset
    edited = BoardPlan.from_json(settings["plan"])
    assert "winding crown" in edited.part_names() and "crown" not in edited.part_names()
    assert plan_settings(path, {"width": 128})["width"] == 128  # given: kept, refused when drawn


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read the board plan"),
        ("not json", "the board plan is not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"record": {"board": {}}}', "write its plan alone with nano-banana show IMAGE"),
        ('{"parts": []}', "the board plan is not valid"),
    ],
)
def test_a_bad_plan_file_is_refused_naming_it(tmp_path, content, fragment):
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CatalogError, match=fragment) as caught:
        read_plan_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_plan_with_a_part_off_the_board_is_refused(plan, tmp_path):
    data = plan.to_dict()
    data["parts"][0]["box"] = [0, 0, 65, 10]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CatalogError, match="is outside the board"):
        read_plan_file(path)
