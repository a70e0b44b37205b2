"""Presets are data: shipped TOML files, user overrides, and precise errors for bad files."""

import pytest

from nano_banana.errors import PresetError
from nano_banana.prompt.presets import get_preset, load_presets

REQUIRED = {
    "knolling",
    "exploded-view",
    "fashion-flat-lay",
    "repair-manual",
    "product-breakdown",
    "none",
}
SCENARIOS = [
    "mechanical watch",
    "wireless bluetooth speaker",
    "denim jacket",
    "game controller",
    "professional camera",
]


def test_shipped_presets_cover_the_scenarios(tmp_path):
    presets = load_presets(tmp_path)
    assert set(presets) >= REQUIRED
    examples = " ".join(e for p in presets.values() for e in p.examples)
    for scenario in SCENARIOS:
        assert scenario in examples
    for p in presets.values():
        assert "{prompt}" in p.template
        assert p.examples


def test_trigger_words_wrap_the_prompt(tmp_path):
    presets = load_presets(tmp_path)
    final = presets["knolling"].render("a mechanical watch")
    assert final.startswith("disassemble, knolling, flat lay, white background, a mechanical watch")
    assert presets["none"].render("  raw text ") == "raw text"
    assert (
        presets["exploded-view"].render("").startswith("exploded view, component breakdown, parts")
    )


def test_user_folder_adds_and_overrides(tmp_path):
    (tmp_path / "blueprint.toml").write_text('template = "blueprint of {prompt}"\ntrigger = "bp"\n')
    (tmp_path / "none.toml").write_text('template = "{prompt}, mine"\n')
    presets = load_presets(tmp_path)
    assert presets["blueprint"].render("a lamp") == "bp, blueprint of a lamp"
    assert presets["none"].render("x") == "x, mine"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('template = "no slot"', "must contain {prompt}"),
        ('template = "{prompt}"\ncolour = "red"', "unknown key"),
        ("template = ", "not valid TOML"),
        ('trigger = "x"', "missing 'template'"),
        ('template = "{prompt}"\nexamples = "one"', "examples must be a list"),
    ],
)
def test_bad_preset_files_name_the_file(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    presets = load_presets(tmp_path)  # the other presets still load
    assert "knolling" in presets and "bad" not in presets
    with pytest.raises(PresetError, match="bad.toml") as info:
        get_preset(presets, "bad")
    assert message in str(info.value)


def test_a_broken_user_file_blocks_only_its_own_preset(tmp_path):
    (tmp_path / "latin.toml").write_bytes('template = "caf\xe9 {prompt}"\n'.encode("latin-1"))
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "Bad Name.toml").write_text('template = "{prompt}"\n')
    (tmp_path / "knolling.toml").write_text("template = ")  # a broken override of a shipped one
    (tmp_path / "mine.toml").write_text('template = "mine: {prompt}"\n')

    presets = load_presets(tmp_path)
    assert get_preset(presets, "mine").render("x") == "mine: x"
    assert get_preset(presets, "none").render("x") == "x"
    assert sorted(presets.problems) == ["Bad Name", "folder", "knolling", "latin"]
    for preset_id, fragment in [("latin", "UTF-8"), ("folder", "folder.toml"),
                                ("knolling", "not valid TOML")]:  # fmt: skip
        with pytest.raises(PresetError, match=fragment):
            get_preset(presets, preset_id)  # the shipped knolling is not used in its place


def test_unknown_preset_lists_choices(tmp_path):
    with pytest.raises(PresetError, match="unknown preset 'knoling'; choose one of: .*knolling"):
        get_preset(load_presets(tmp_path), "knoling")
