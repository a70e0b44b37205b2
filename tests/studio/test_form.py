"""The Create form as data: its board fields make the request, and Reuse puts them back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nano_banana.studio.form import FormValues, size_presets
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
