"""The parts list as an editable table (the studio's): rows from the catalog or a parts list,
and back to the request's ``parts``, refusing what --parts would refuse."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from nano_banana.parts.catalog import CatalogError, load_catalog, parse_parts, resolve_object
from nano_banana.parts.labels import NOT_IN_CATALOG, table_parts, table_rows


@pytest.fixture(scope="module")
def watch(tmp_path_factory):
    return load_catalog(user_dir=tmp_path_factory.mktemp("no-user-catalog"))["watch"]


def test_a_table_starts_from_the_catalog_or_the_parts_given(watch):
    rows = table_rows(watch)
    assert rows[0] == {"part": "strap top", "count": 1}
    assert [r["part"] for r in rows] == [p.name for p in watch.parts]
    assert table_rows(watch, "case, strap x2") == [
        {"part": "case", "count": 1},
        {"part": "strap", "count": 2},
    ]
    assert table_rows(None) == []  # an object the catalog does not know: the user lists it


def test_an_unedited_catalog_table_leaves_the_parts_to_the_catalog(watch):
    assert table_parts(table_rows(watch), watch) is None
    reordered = list(reversed(table_rows(watch)))  # the order is an exploded view's order
    assert table_parts(reordered, watch).startswith("buckle, strap bottom")


@pytest.mark.parametrize(
    ("rows", "parts", "read_back"),
    [
        ([{"part": "case", "count": 1}, {"part": "strap", "count": 2}], "case, strap x2",
         [("case", 1), ("strap", 2)]),
        ([{"part": " case ", "count": None}, {"part": None, "count": None}], "case",
         [("case", 1)]),  # blank cells: a count of 1, a row skipped
        ([{"part": "lens", "count": math.nan}, {"part": "", "count": 3}], "lens",
         [("lens", 1)]),  # a table's number column leaves NaN in a blank cell
        ([{"part": "gear", "count": np.int64(3)}, {"part": "pin", "count": 2.0}],
         "gear x3, pin x2", [("gear", 3), ("pin", 2)]),
        ([{"part": "model x2", "count": 1}], "model x2 x1",
         [("model x2", 1)]),  # not read as two of "model"
    ],
)  # fmt: skip
def test_table_rows_become_a_parts_list_that_reads_back_the_same(rows, parts, read_back):
    assert table_parts(rows, None) == parts
    assert [(p.name, p.count) for p in parse_parts(parts).parts] == read_back


@pytest.mark.parametrize(
    ("rows", "use_watch", "fragment"),
    [
        ([], False, NOT_IN_CATALOG),
        ([{"part": "", "count": 1}], False, NOT_IN_CATALOG),
        ([], True, "table is empty"),
        ([{"part": "a, b", "count": 1}], False, "row 1: a part name cannot contain a comma"),
        ([{"part": "x", "count": 1}, {"part": "y", "count": 0}], False, "row 2 (y)"),
        ([{"part": "x", "count": 2.5}], False, "whole number from 1 to 24"),
        ([{"part": "x", "count": 25}], False, "whole number from 1 to 24"),
        ([{"part": "x", "count": True}], False, "whole number"),
        ([{"part": "x", "count": 1}, {"part": "x", "count": 1}], False, "listed twice"),
    ],
)
def test_a_table_that_cannot_be_a_parts_list_is_refused(watch, rows, use_watch, fragment):
    with pytest.raises(CatalogError, match=re.escape(fragment)):
        table_parts(rows, watch if use_watch else None)


def test_the_tables_parts_resolve_to_the_catalogs_sizes_and_looks(watch, tmp_path):
    rows = [r for r in table_rows(watch) if r["part"] in ("case", "dial")]
    parts = table_parts(rows, watch)
    obj = resolve_object("a mechanical watch", parts, load_catalog(user_dir=tmp_path))
    assert [p.name for p in obj.parts] == ["dial", "case"]
    assert obj.parts[1].look == next(p.look for p in watch.parts if p.name == "case")
