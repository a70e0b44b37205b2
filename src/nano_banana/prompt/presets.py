"""Scenario presets: prompt templates, trigger words and negative prompts, as data files.

The shipped presets live in ``nano_banana/assets/presets/*.toml``; a user adds or
overrides presets by dropping TOML files of the same shape into their preset
folder (``NANO_BANANA_PRESETS`` or the per-user config folder). The file name
is the preset's id (``exploded-view.toml`` -> ``--preset exploded-view``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_config_dir

from ..datafiles import read_data_files
from ..errors import PresetError
from ..options import reject_unknown

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PRESET_ENV = "NANO_BANANA_PRESETS"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FIELDS = {"title", "description", "trigger", "template", "negative", "examples", "board"}
# How a parts-first board (``--compose``) lays out the parts for a preset (see parts/plan.py).
BOARD_LAYOUTS = ("knolling", "exploded", "panels", "repair")


@dataclass(frozen=True)
class Preset:
    id: str
    title: str
    description: str
    trigger: str  # trigger words the LoRA was trained with; "" for none
    template: str  # contains {prompt}; may contain {trigger}, else trigger words lead
    negative: str  # default negative prompt
    examples: tuple[str, ...]
    source: str  # file it came from, for messages
    board: str = ""  # the parts-first board layout (one of BOARD_LAYOUTS); "" for none

    def render(self, prompt: str) -> str:
        """The final prompt for ``prompt``: trigger words and template applied."""
        text = self.template.replace("{prompt}", prompt.strip())
        if "{trigger}" in self.template:
            text = text.replace("{trigger}", self.trigger)
        elif self.trigger:
            text = f"{self.trigger}, {text}"
        return _tidy(text)


def _tidy(text: str) -> str:
    """Remove the empty slots a blank prompt or trigger leaves (", ,", leading commas)."""
    text = re.sub(r"(\s*,\s*)+,", ",", text)
    text = re.sub(r"^[\s,]+|[\s,]+$", "", text)
    return re.sub(r"[ \t]{2,}", " ", text)


def user_preset_dir() -> Path:
    return Path(os.environ.get(PRESET_ENV) or Path(user_config_dir("nano-banana")) / "presets")


class Presets(dict):
    """Presets by id, and in ``problems`` the user's preset files that are broken, by id.

    One bad file in the user's folder must not block every command: it fails only
    when its preset is asked for (``get_preset``), and ``nano-banana presets`` lists it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.problems: dict[str, str] = {}

    def refuse(self, preset_id: str, problem: str) -> None:
        """Mark ``preset_id`` broken; a shipped preset of that id is not used in its place
        (the user meant to change it)."""
        self.pop(preset_id, None)
        self.problems[preset_id] = problem


def load_presets(user_dir: Path | None = None) -> Presets:
    """Shipped presets, then the user's (which may override a shipped id); a broken user
    file is set aside in ``problems`` (a broken shipped one is a bug and raises)."""
    folder = user_dir if user_dir is not None else user_preset_dir()
    presets = Presets()
    unreadable: dict[str, PresetError] = {}
    for preset_id, text, source in read_data_files("presets", folder, PresetError, unreadable):
        try:
            presets[preset_id] = parse_preset(preset_id, text, source)
        except PresetError as exc:
            if source.startswith("built-in"):
                raise
            presets.refuse(preset_id, str(exc))
    for preset_id, exc in unreadable.items():
        presets.refuse(preset_id, str(exc))
    return presets


def parse_preset(preset_id: str, text: str, source: str) -> Preset:
    """Parse and validate one preset file; every problem names the file."""
    if not _ID.match(preset_id):
        raise PresetError(
            f"preset file {source}: name must be lowercase letters, digits, '-' or '_'"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"preset file {source} is not valid TOML: {exc}") from None
    reject_unknown(data, _FIELDS, where=f"preset file {source}", what="key", error=PresetError)
    template = _string(data, "template", source, required=True)
    if "{prompt}" not in template:
        raise PresetError(f"preset file {source}: template must contain {{prompt}}")
    examples = data.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise PresetError(f"preset file {source}: examples must be a list of strings")
    return Preset(
        id=preset_id,
        title=_string(data, "title", source) or preset_id,
        description=_string(data, "description", source),
        trigger=_string(data, "trigger", source),
        template=template,
        negative=_string(data, "negative", source),
        examples=tuple(examples),
        source=source,
        board=_board(data, source),
    )


def _board(data: dict, source: str) -> str:
    board = _string(data, "board", source)
    if board and board not in BOARD_LAYOUTS:
        raise PresetError(
            f"preset file {source}: board must be one of {', '.join(BOARD_LAYOUTS)}, got '{board}'"
        )
    return board


def _string(data: dict, key: str, source: str, required: bool = False) -> str:
    if key not in data:
        if required:
            raise PresetError(f"preset file {source}: missing '{key}'")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise PresetError(f"preset file {source}: '{key}' must be a string")
    return value


def get_preset(presets: dict[str, Preset], preset_id: str) -> Preset:
    """The preset ``preset_id``; a broken file of that name is named with its problem."""
    if not isinstance(preset_id, str):
        raise PresetError(f"preset must be a name, got {type(preset_id).__name__}")
    if preset_id in presets:
        return presets[preset_id]
    problem = getattr(presets, "problems", {}).get(preset_id)
    if problem is not None:
        raise PresetError(problem)
    raise PresetError(f"unknown preset '{preset_id}'; choose one of: {', '.join(sorted(presets))}")
