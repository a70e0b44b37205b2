"""The parts catalog: shipped objects parse, bad files are refused with their path and line."""

from __future__ import annotations

import pytest

from nano_banana.parts.catalog import (
    CatalogError,
    find_object,
    load_catalog,
    parse_catalog_file,
    parse_parts,
    resolve_object,
)

DESIGN_OBJECTS = ("watch", "speaker", "jacket", "controller", "camera", "sneaker")

GOOD = """phrase = "a thing"
axis = "horizontal"

[[part]]
name = "lid"
size = [2, 1]
look = "red plastic lid"

[[part]]
name = "screw"
count = 4
size = [0.2, 0.5]
"""


def test_shipped_catalog_covers_the_design_and_a_dozen_more(tmp_path):
    catalog = load_catalog(user_dir=tmp_path)
    assert set(DESIGN_OBJECTS) <= set(catalog)
    assert len(set(catalog) - set(DESIGN_OBJECTS)) >= 12
    for obj in catalog.values():
        assert obj.phrase and obj.parts and all(p.look for p in obj.parts), obj.key
    assert catalog["jacket"].pieces == "sewing panels"


def test_a_good_file_parses_with_counts_sizes_and_order():
    obj = parse_catalog_file("thing", GOOD, "thing.toml")
    assert [p.name for p in obj.parts] == ["lid", "screw"]  # assembly order is file order
    assert obj.parts[1].count == 4 and obj.piece_count == 5
    assert obj.parts[0].size == (2.0, 1.0) and obj.axis == "horizontal"


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            lambda t: t.replace('look = "red', 'colour = "red'),
            ["line 7", "part 1", "unknown field(s) colour"],
        ),
        (lambda t: t.replace("count = 4", "count = 0"), ["line 11", "part 2", "count must be"]),
        (
            lambda t: t.replace("size = [2, 1]", 'size = [2, "x"]'),
            ["line 6", "part 1", "size must be"],
        ),
        (lambda t: t.replace("size = [2, 1]", "size = [2, -1]"), ["line 6", "size must be"]),
        (lambda t: t.replace('name = "lid"\n', ""), ["part 1", "missing 'name'"]),
        (lambda t: t.replace('"horizontal"', '"diagonal"'), ["line 2", "axis must be one of"]),
        (lambda t: t.replace('phrase = "a thing"\n', ""), ["missing 'phrase'"]),
        (lambda t: t.replace('name = "screw"', 'name = "lid"'), ["'lid' is listed twice"]),
        (lambda t: t.replace("count = 4", "count = 40"), ["count must be a whole number"]),
        (lambda t: t + "\n[[part]\n", ["not valid TOML"]),
        (lambda t: t.split("[[part]]")[0], ["at least one [[part]]"]),
    ],
)
def test_a_bad_file_is_refused_with_its_path_and_line(edit, fragments):
    with pytest.raises(CatalogError) as info:
        parse_catalog_file("thing", edit(GOOD), "/home/me/catalog/thing.toml")
    message = str(info.value)
    assert "/home/me/catalog/thing.toml" in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_user_file_adds_an_object_and_overrides_a_shipped_one(tmp_path):
    (tmp_path / "thing.toml").write_text(GOOD)
    (tmp_path / "watch.toml").write_text(GOOD.replace("a thing", "my watch"))
    catalog = load_catalog(user_dir=tmp_path)
    assert catalog["thing"].source.endswith("thing.toml")
    assert catalog["watch"].phrase == "my watch"


def test_a_user_file_that_is_not_text_is_one_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe phrase")
    with pytest.raises(CatalogError, match="bad.toml cannot be read as UTF-8"):
        load_catalog(user_dir=tmp_path)


@pytest.mark.parametrize(
    ("prompt", "key"),
    [
        ("a complex mechanical watch", "watch"),
        ("A Wireless Bluetooth Speaker!", "speaker"),
        ("a denim jacket with all sewing patterns", "jacket"),
        ("exploded gamepad", "controller"),
        ("a pop-up toaster", "toaster"),
        ("a hooded sweatshirt", None),
        ("a watch next to a camera", "watch"),  # the object mentioned first
        ("a keyboard and a mouse", "keyboard"),
        ("a mouse and a keyboard", "mouse"),
    ],
)
def test_a_prompt_finds_its_object(prompt, key, tmp_path):
    found = find_object(prompt, load_catalog(user_dir=tmp_path))
    assert (found.key if found else None) == key


def test_parts_option_sets_the_parts_and_keeps_known_sizes(tmp_path):
    catalog = load_catalog(user_dir=tmp_path)
    obj = resolve_object("a mechanical watch", "case, dial, strap x2, crown, buckle", catalog)
    assert [(p.name, p.count) for p in obj.parts] == [
        ("case", 1), ("dial", 1), ("strap", 2), ("crown", 1), ("buckle", 1)
    ]  # fmt: skip
    assert obj.parts[0].size == catalog["watch"].parts[2].size  # the catalog's case
    assert obj.phrase == "a mechanical watch" and obj.source == "--parts"
    custom = resolve_object("a hooded sweatshirt", "hood, body, sleeve x2", catalog)
    assert custom.key == "custom" and custom.piece_count == 4


@pytest.mark.parametrize(
    ("parts", "fragment"),
    [
        (" , ", "--parts is empty"),
        ("case x0", "a count is a whole number"),
        ("a, a", "listed twice"),
    ],
)
def test_bad_parts_lists_are_refused(parts, fragment):
    with pytest.raises(CatalogError, match=fragment):
        parse_parts(parts)


def test_an_unknown_object_says_how_to_give_its_parts(tmp_path):
    with pytest.raises(CatalogError) as info:
        resolve_object("a hooded sweatshirt", None, load_catalog(user_dir=tmp_path))
    assert "--parts" in str(info.value) and "known objects:" in str(info.value)
