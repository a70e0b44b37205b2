"""The procedural demo world: ten objects drawn assembled, as knolling flat lays, or exploded.

No model is involved: the pictures are drawn from data (``objects.py``) with
Pillow, deterministically by seed, with ground truth for every part.
"""

from .objects import BACKGROUNDS, CAPTION_TEMPLATES, OBJECTS, ObjectSpec, PartSpec
from .world import (
    VIEWS,
    Instance,
    PartTruth,
    Render,
    View,
    WorldWritten,
    generate_world,
    make_instance,
    object_spec,
    parse_views,
    render_object,
    render_view,
    world_vocabulary,
    write_world,
)

__all__ = [
    "BACKGROUNDS",
    "CAPTION_TEMPLATES",
    "OBJECTS",
    "VIEWS",
    "Instance",
    "ObjectSpec",
    "PartSpec",
    "PartTruth",
    "Render",
    "View",
    "WorldWritten",
    "generate_world",
    "make_instance",
    "object_spec",
    "parse_views",
    "render_object",
    "render_view",
    "world_vocabulary",
    "write_world",
]
