"""The parts catalog: what an object is made of, as data files a user can extend.

Each object is a TOML file (``assets/catalog/watch.toml``; a user adds or
overrides one in ``catalog/`` beside their presets) listing its parts in
assembly order, each with a count, a relative size and a few words of look.
Parts-first boards plan their layout from it, so the part count, the names and
the order on a board come from here, never from what a model happens to draw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..datafiles import read_data_files
from ..errors import CatalogError
from ..options import reject_unknown
from ..prompt.presets import user_preset_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

AXES = ("vertical", "horizontal")
MAX_COUNT = 24  # copies of one part: more would not fit a board's cells legibly
MAX_PARTS = 40  # pieces on one board, copies included
_OBJECT_FIELDS = {"phrase", "aliases", "pieces", "axis", "part"}
_PART_FIELDS = {"name", "count", "size", "look"}
_ID = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,63}$")


@dataclass(frozen=True)
class CatalogPart:
    """One kind of part: ``count`` identical copies of it go on the board."""

    name: str
    size: tuple[float, float]  # width, height, relative to the object's other parts
    look: str = ""  # material and colour words for the part's own render
    count: int = 1


@dataclass(frozen=True)
class CatalogObject:
    """An object and its parts, in assembly order (the exploded view's order along its axis)."""

    key: str
    phrase: str  # how prompts and captions name it ("a mechanical watch")
    parts: tuple[CatalogPart, ...]
    aliases: tuple[str, ...] = ()
    pieces: str = "parts"  # what captions call the parts ("sewing panels")
    axis: str = "vertical"  # the exploded view's axis
    source: str = ""  # the file it came from, for messages

    @property
    def piece_count(self) -> int:
        return sum(part.count for part in self.parts)


def user_catalog_dir() -> Path:
    """The user's catalog folder: ``catalog/`` beside their preset folder."""
    return user_preset_dir().parent / "catalog"


def load_catalog(user_dir: Path | None = None) -> dict[str, CatalogObject]:
    """Shipped objects, then the user's (a user file overrides a shipped one of the same name)."""
    folder = user_dir if user_dir is not None else user_catalog_dir()
    objects = (
        parse_catalog_file(*entry) for entry in read_data_files("catalog", folder, CatalogError)
    )
    return {obj.key: obj for obj in objects}


# --- parsing -----------------------------------------------------------------------------------


def parse_catalog_file(stem: str, text: str, source: str) -> CatalogObject:
    """One object from its TOML text; every problem names the file and, where known, the line."""
    key = stem.replace("-", " ").replace("_", " ").strip().lower()
    if not _ID.match(key):
        raise CatalogError(f"catalog file {source}: name must be lowercase letters, digits or '-'")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog file {source} is not valid TOML: {exc}") from None
    where = _Where(source, text)
    _reject_unknown(data, _OBJECT_FIELDS, where, None)
    raw_parts = data.get("part")
    if not isinstance(raw_parts, list) or not raw_parts:
        raise CatalogError(f"{where.at(None, 'part')}: list at least one [[part]]")
    parts = tuple(_parse_part(raw, where, i) for i, raw in enumerate(raw_parts))
    obj = CatalogObject(
        key=key,
        phrase=_text(data, "phrase", where, None, required=True),
        parts=parts,
        aliases=_aliases(data, where),
        pieces=_text(data, "pieces", where, None) or "parts",
        axis=_choice(data, "axis", AXES, where),
        source=source,
    )
    _check_totals(obj, where)
    return obj


def _parse_part(raw: object, where: _Where, index: int) -> CatalogPart:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where.at(index, None)}: each [[part]] must be a table")
    _reject_unknown(raw, _PART_FIELDS, where, index)
    count = raw.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise CatalogError(
            f"{where.at(index, 'count')}: count must be a whole number from 1 to {MAX_COUNT}"
        )
    return CatalogPart(
        name=_text(raw, "name", where, index, required=True),
        size=_size(raw.get("size"), where, index),
        look=_text(raw, "look", where, index),
        count=count,
    )


def _size(value: object, where: _Where, index: int) -> tuple[float, float]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(0 < v <= 1000 for v in value)
    )
    if not ok:
        raise CatalogError(
            f"{where.at(index, 'size')}: size must be [width, height], two positive numbers"
        )
    return float(value[0]), float(value[1])  # type: ignore[index]


def _text(data: dict, key: str, where: _Where, index: int | None, required: bool = False) -> str:
    if key not in data:
        if required:
            raise CatalogError(f"{where.at(index, None)}: missing '{key}'")
        return ""
    value = data[key]
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise CatalogError(f"{where.at(index, key)}: '{key}' must be a one-line text")
    return value.strip()


def _aliases(data: dict, where: _Where) -> tuple[str, ...]:
    value = data.get("aliases", [])
    if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
        raise CatalogError(f"{where.at(None, 'aliases')}: aliases must be a list of words")
    return tuple(a.strip().lower() for a in value)


def _choice(data: dict, key: str, choices: tuple[str, ...], where: _Where) -> str:
    value = data.get(key, choices[0])
    if value not in choices:
        raise CatalogError(f"{where.at(None, key)}: {key} must be one of {', '.join(choices)}")
    return value


def _reject_unknown(data: dict, known: set[str], where: _Where, index: int | None) -> None:
    """The shared unknown-keys check, placed at the line of the first unknown field."""
    first = min(set(data) - known, default=None)
    if first is not None:
        reject_unknown(data, known, where=where.at(index, first), what="field", error=CatalogError)


def _check_totals(obj: CatalogObject, where: _Where) -> None:
    names = [part.name for part in obj.parts]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CatalogError(f"{where.source}: part '{repeated[0]}' is listed twice; use count")
    if obj.piece_count > MAX_PARTS:
        raise CatalogError(
            f"{where.source}: {obj.piece_count} pieces; a board holds at most {MAX_PARTS}"
        )


class _Where:
    """Finds the line of a field in a catalog file, for messages (TOML parsers give none)."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines = text.splitlines()

    def at(self, part_index: int | None, key: str | None) -> str:
        line = self._line(part_index, key)
        place = f"catalog file {self.source}" + (f", line {line}" if line else "")
        return place + (f", part {part_index + 1}" if part_index is not None else "")

    def _line(self, part_index: int | None, key: str | None) -> int | None:
        start, end = 0, len(self.lines)
        headers = [i for i, line in enumerate(self.lines) if line.strip() == "[[part]]"]
        if part_index is not None and part_index < len(headers):
            start = headers[part_index]
            end = headers[part_index + 1] if part_index + 1 < len(headers) else end
        elif part_index is None and headers:
            end = headers[0]
        if key is None:
            return start + 1 if part_index is not None else None
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start, end):
            if pattern.match(self.lines[i]):
                return i + 1
        return None


def part_words(name: str, look: str, phrase: str) -> str:
    """How a lone part is named when it is drawn: its look, then what it is part of."""
    what = f"the {name} of {phrase}"
    return f"{look}, {what}" if look else what


# --- finding an object, and --parts --------------------------------------------------------------


def find_object(prompt: str, catalog: dict[str, CatalogObject]) -> CatalogObject | None:
    """The catalog object a prompt names (its key, phrase or an alias): the one mentioned first,
    the longest name where two start at the same word ("mechanical watch" over "watch")."""
    text = " " + re.sub(r"[^a-z0-9]+", " ", prompt.lower()) + " "
    best: tuple[int, int, CatalogObject] | None = None
    for obj in catalog.values():
        for name in (obj.key, obj.phrase.lower(), *obj.aliases):
            words = re.sub(r"[^a-z0-9]+", " ", name).strip()
            at = text.find(f" {words} ") if words else -1
            if at >= 0 and (best is None or (at, -len(words)) < best[:2]):
                best = (at, -len(words), obj)
    return best[2] if best else None


COUNTED_PART = re.compile(r"^(?P<name>.+?)\s*(?:[x×]\s*(?P<count>\d+))?$")


def parse_parts(text: str, phrase: str = "") -> CatalogObject:
    """``--parts "case, dial, strap x2, crown"`` as a catalog object (no sizes known: all equal)."""
    parts = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        match = COUNTED_PART.match(item)
        name, count = match["name"].strip(), int(match["count"] or 1)
        if not 1 <= count <= MAX_COUNT:
            raise CatalogError(
                f"--parts: '{item}': a count is a whole number from 1 to {MAX_COUNT}"
            )
        parts.append(CatalogPart(name=name, size=(1.0, 1.0), count=count))
    if not parts:
        raise CatalogError('--parts is empty; list the parts, e.g. --parts "case, dial, strap x2"')
    obj = CatalogObject(
        key="custom", phrase=phrase or "the object", parts=tuple(parts), source="--parts"
    )
    _check_totals(obj, _Where("--parts", ""))
    return obj


def resolve_object(
    prompt: str, parts: str | None, catalog: dict[str, CatalogObject]
) -> CatalogObject:
    """The parts of what ``prompt`` names: ``--parts`` if given, else the catalog, else a clear error."""
    if parts:
        found = find_object(prompt, catalog)
        custom = parse_parts(parts, phrase=found.phrase if found else prompt.strip())
        if found is None:
            return custom
        known = {part.name: part for part in found.parts}  # keep the catalog's size and look
        merged = tuple(
            replace(known[p.name], count=p.count) if p.name in known else p for p in custom.parts
        )
        return replace(found, parts=merged, source="--parts")
    found = find_object(prompt, catalog)
    if found is None:
        known = ", ".join(sorted(catalog))
        raise CatalogError(
            f"'{prompt.strip()}' is not in the parts catalog; list its parts with "
            f'--parts "part, part x2, ..." or add a file to {user_catalog_dir()} '
            f"(known objects: {known})"
        )
    return found
