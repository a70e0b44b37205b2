"""What the built-in demo model can draw: the demo world's ten objects, and nothing else.

The demo model was trained only on the procedural world (``demo.objects``), so a
prompt naming anything else gives generic blobs. The Create page says so: it
lists the objects, notes a prompt that names none of them, and offers only the
scenario examples the demo can draw. A prompt is matched as the parts catalog
matches it (the object's phrase, key or the catalog's aliases: "wristwatch").
No Streamlit here, so tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..demo.assets import demo_settings_path
from ..demo.objects import OBJECTS
from ..errors import CatalogError
from ..generate.spec import EngineSpec
from ..parts.catalog import CatalogObject, find_object, load_catalog


@dataclass(frozen=True)
class DemoObjects:
    """The demo world's objects as the parts catalog names them (with its aliases)."""

    objects: dict[str, CatalogObject]

    @classmethod
    def load(cls) -> DemoObjects:
        """The ten objects; a broken user catalog file only costs the aliases."""
        try:
            catalog = load_catalog()
        except CatalogError:
            catalog = {}
        objects = {}
        for spec in OBJECTS:
            key = spec.key.replace("-", " ")  # the catalog's key for a file named desk-lamp.toml
            known = catalog.get(key)
            aliases = known.aliases if known is not None else ()
            objects[key] = CatalogObject(key=key, phrase=spec.phrase, parts=(), aliases=aliases)
        return cls(objects)

    @property
    def phrases(self) -> list[str]:
        return [obj.phrase for obj in self.objects.values()]

    def named_in(self, prompt: str) -> str | None:
        """The demo object ``prompt`` names (its phrase), or None when it names none of them."""
        found = find_object(prompt, self.objects)
        return found.phrase if found is not None else None

    def drawable(self, examples: tuple[str, ...]) -> tuple[str, ...]:
        """The examples that name an object the demo can draw, in their order."""
        return tuple(e for e in examples if self.named_in(e) is not None)


def demo_objects_for(spec: EngineSpec) -> DemoObjects | None:
    """The demo's objects when ``spec`` runs a demo model (the shipped one, which the CLI
    resolves to its folder, or one rebuilt with ``demo build``), else None."""
    return DemoObjects.load() if demo_settings_path(spec.resolve().base) else None


def unknown_object_note(prompt: str, compose: bool) -> str:
    """What to tell a user whose prompt names no object the demo knows."""
    text = " ".join(prompt.split())
    if compose:
        return (
            f"The demo model does not know '{text}'. On a parts-first board its parts come "
            "from the parts list below, each drawn as a generic part."
        )
    return (
        f"The demo model does not know '{text}': expect generic shapes, not that object. "
        "Pick one it draws, or turn on the parts-first board and list the parts."
    )
