"""The procedural demo world: ten objects drawn assembled, as knolling flat lays, or exploded.

No model is involved: the pictures are drawn from data (``objects.py``) with
Pillow, deterministically by seed, with ground truth for every part. Names are
imported on first use, so that ``demo.assets`` (where the shipped demo model
lives, read by every ``generate``) does not draw the world in.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".objects": "BACKGROUNDS CAPTION_TEMPLATES OBJECTS ObjectSpec PartSpec",
        ".world": "VIEWS Instance PartTruth Render View WorldWritten generate_world "
        "make_instance object_spec parse_views render_object render_view world_vocabulary "
        "write_world",
    },
)
