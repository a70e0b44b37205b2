"""The Create form as data: its board fields make the request, a blank prompt makes none, the
seed lock decides the seed, a press makes a request per image, a photo sets the strength, and
Reuse puts settings back and says what it changed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nano_banana.errors import InvalidSettingError
from nano_banana.gallery.record import InitImage
from nano_banana.settings import MAX_SEED
from nano_banana.studio.form import (
    MAX_IMAGES_PER_CLICK,
    FormValues,
    new_seed,
    next_seed,
    size_presets,
)
from record_fixtures import make_record

SIZES = size_presets((1024, 1024))


@pytest.mark.parametrize(
    ("board", "expected"),
    [
        ({}, {"compose": False, "parts": None, "explode": 1.0, "strength": None}),
        ({"compose": True}, {"compose": True, "parts": None, "explode": 1.0, "strength": None}),
        ({"compose": True, "parts": "case, strap x2", "explode": 0.4, "strength": 0.2},
         {"compose": True, "parts": "case, strap x2", "explode": 0.4, "strength": 0.2}),
    ],
)  # fmt: skip
def test_reuse_puts_a_boards_settings_back_and_they_make_the_same_request(board, expected):
    record = make_record(preset="exploded-view")
    record = replace(record, request=replace(record.request, **board))
    form = FormValues.from_record(record, SIZES, loaded=[])
    request = form.to_request(SIZES, lora=None)
    assert {name: getattr(request, name) for name in expected} == expected
    assert form.f_parts_prompt == record.request.prompt  # the list belongs to this prompt


def test_board_fields_stay_out_of_a_plain_request():
    form = FormValues(f_prompt="a watch", f_size=next(iter(SIZES)), f_parts="case",
                      f_explode=0.3, f_strength=0.5)  # fmt: skip
    request = form.to_request(SIZES, lora=None)
    assert (request.compose, request.parts, request.explode, request.strength) == (
        False, None, 1.0, None
    )  # fmt: skip
    on = replace(form, f_compose=True, f_parts="  ")
    assert on.to_request(SIZES, lora=None).parts is None  # a blank list: the catalog's


def test_a_blank_prompt_makes_no_request():
    for prompt in ("", "   \n "):
        form = FormValues(f_prompt=prompt, f_size=next(iter(SIZES)))
        with pytest.raises(InvalidSettingError, match="the prompt is empty"):
            form.to_request(SIZES, lora=None)


def test_the_seed_lock_decides_whether_the_seed_is_kept():
    form = FormValues(f_prompt="a watch", f_size=next(iter(SIZES)), f_seed=42)
    assert form.to_request(SIZES, lora=None).seed is None  # unlocked: a new seed per image
    assert replace(form, f_seed_lock=True).to_request(SIZES, lora=None).seed == 42
    assert next_seed(42) == 43 and next_seed(MAX_SEED) == 0
    assert 0 <= new_seed() <= MAX_SEED


def test_reuse_locks_the_seed_resets_the_output_and_says_what_changed():
    record = make_record(prompt="a mechanical watch", seed=1234, preset="exploded-view")
    before = FormValues(f_mode="compare", f_prompt="a camera", f_size=next(iter(SIZES)),
                        f_steps=record.request.steps, f_preset="knolling")  # fmt: skip
    after = FormValues.from_record(record, SIZES, loaded=[])
    assert (after.f_seed, after.f_seed_lock, after.f_mode) == (1234, True, "generate")
    titles = {"exploded-view": "Exploded view"}
    said = after.changes(before, SIZES, titles)
    assert said[0] == "seed 1234 locked"  # always first: the setting a reuse fixes unasked
    assert "output single image" in said and "scenario Exploded view" in said
    assert "prompt 'a mechanical watch'" in said
    assert not any("steps" in s for s in said)  # unchanged settings are not listed
    assert after.changes(after, SIZES, titles) == ["seed 1234 locked"]


def test_a_press_makes_one_request_per_image_with_seeds_counting_up_from_a_locked_one():
    form = FormValues(f_prompt="a watch", f_size=next(iter(SIZES)), f_count=3)
    assert [r.seed for r in form.to_requests(SIZES, lora=None)] == [None] * 3  # drawn when queued
    locked = replace(form, f_seed_lock=True, f_seed=MAX_SEED - 1)
    assert [r.seed for r in locked.to_requests(SIZES, lora=None)] == [MAX_SEED - 1, MAX_SEED, 0]
    assert len(replace(form, f_mode="sweep").to_requests(SIZES, lora=None)) == 1
    assert len(replace(form, f_count=99).to_requests(SIZES, lora=None)) == MAX_IMAGES_PER_CLICK


def test_a_photo_sets_the_strength_and_reuse_keeps_what_a_record_does_not_hold():
    form = FormValues(f_prompt="a watch", f_size=next(iter(SIZES)), f_photo_strength=0.45)
    assert form.to_request(SIZES, lora=None).strength is None  # no photo: none
    assert form.to_request(SIZES, lora=None, photo=True).strength == 0.45
    current = replace(form, f_count=4)
    plain = FormValues.from_record(make_record(), SIZES, [], current)
    assert (plain.f_count, plain.f_photo_strength) == (4, 0.45)  # not in the record: kept
    record = make_record()
    record = replace(record, request=replace(record.request, strength=0.7),
                     init_image=InitImage("a" * 64, 30, 20))  # fmt: skip
    photo = FormValues.from_record(record, SIZES, [], current)
    assert (photo.f_photo_strength, photo.f_strength) == (0.7, None)  # the photo's, not a board's
    assert "photo strength 0.7" in photo.changes(current, SIZES, {})
