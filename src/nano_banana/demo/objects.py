"""The demo world's objects, backgrounds and caption templates, as data.

Every object is a handful of named parts drawn as bold flat-colour shapes, so
that a tiny diffusion model can learn them in minutes and a colour/shape
classifier can tell the objects apart. Coordinates are in object units with the
assembled object centred on (0, 0) and y pointing down; only ratios matter,
because every view scales the parts to fit the canvas.

To add an object, append an ``ObjectSpec`` to ``OBJECTS``: give each part an
assembled position that overlaps a neighbour by at least ~10% of its size (so
the assembled view stays one blob under size jitter) and a colour far from
white (so the part stands out on a white flat lay).
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

SHAPES = ("rect", "rounded", "ellipse", "capsule", "polygon")
DETAILS = ("dot", "ring", "bar", "stripes", "square", "buttons4")


@dataclass(frozen=True)
class Detail:
    """A bold second-tone mark centred in a part (no fine detail: tiny models blur it)."""

    kind: str  # one of DETAILS
    color: RGB
    size: float = 0.45  # fraction of the part's smaller side


@dataclass(frozen=True)
class PartSpec:
    """One named part: its shape, size, colour and place in the assembled object."""

    name: str
    shape: str  # one of SHAPES; an "ellipse" with equal sides is a circle, kept so by jitter
    size: tuple[float, float]  # width, height in object units
    color: RGB
    at: tuple[float, float]  # centre in the assembled object, object units
    z: int = 0  # drawing order in the assembled view (higher is in front)
    points: tuple[tuple[float, float], ...] = ()  # polygon corners in the unit box, spanning 0..1
    detail: Detail | None = None


@dataclass(frozen=True)
class ObjectSpec:
    """An object of the world: its caption phrase and its parts."""

    key: str  # short file-name-safe id
    phrase: str  # how captions name it
    pieces: str  # what captions call its parts ("parts", "sewing panels")
    parts: tuple[PartSpec, ...]


# Polygon outlines, in the unit box (x right, y down), each touching all four sides.
_PLUS = ((0.33, 0), (0.67, 0), (0.67, 0.33), (1, 0.33), (1, 0.67), (0.67, 0.67), (0.67, 1),
         (0.33, 1), (0.33, 0.67), (0, 0.67), (0, 0.33), (0.33, 0.33))  # fmt: skip
_CONTROLLER = ((0.08, 0), (0.92, 0), (1, 0.25), (1, 0.95), (0.82, 1), (0.68, 0.62),
               (0.32, 0.62), (0.18, 1), (0, 0.95), (0, 0.25))  # fmt: skip
_CARD = ((0, 0), (0.7, 0), (1, 0.25), (1, 1), (0, 1))
_BACK_PANEL = ((0.15, 0), (0.85, 0), (1, 0.12), (1, 1), (0, 1), (0, 0.12))
_FRONT_LEFT = ((0, 0.12), (0.45, 0), (1, 0.1), (1, 1), (0, 1))
_FRONT_RIGHT = ((0, 0.1), (0.55, 0), (1, 0.12), (1, 1), (0, 1))
_SLEEVE_LEFT = ((0.3, 0), (1, 0), (0.85, 1), (0, 1))
_SLEEVE_RIGHT = ((0, 0), (0.7, 0), (1, 1), (0.15, 1))
_COLLAR = ((0, 0), (1, 0), (0.85, 1), (0.5, 0.55), (0.15, 1))
_POCKET = ((0, 0), (1, 0), (1, 0.7), (0.5, 1), (0, 0.7))
_UPPER = ((0, 0.55), (0.25, 0.42), (0.45, 0.15), (0.6, 0), (0.8, 0), (0.95, 0.1), (1, 0.3),
          (1, 1), (0, 1))  # fmt: skip
_TONGUE = ((0.2, 0), (0.8, 0), (1, 1), (0, 1))
_LACES = ((0.15, 0), (1, 0), (0.85, 1), (0, 1))
_HEADBAND = ((0, 1), (0, 0.45), (0.15, 0.12), (0.35, 0), (0.65, 0), (0.85, 0.12), (1, 0.45),
             (1, 1), (0.84, 1), (0.84, 0.55), (0.7, 0.32), (0.3, 0.32), (0.16, 0.55),
             (0.16, 1))  # fmt: skip
_SHADE = ((0.3, 0), (0.7, 0), (1, 1), (0, 1))

WATCH = ObjectSpec(
    key="watch",
    phrase="a mechanical watch",
    pieces="parts",
    parts=(
        PartSpec("strap top", "rounded", (2.4, 3.8), (122, 74, 42), (0, -3.3), 0),
        PartSpec("strap bottom", "rounded", (2.4, 3.8), (122, 74, 42), (0, 3.3), 0),
        PartSpec(
            "buckle",
            "rounded",
            (2.4, 1.3),
            (150, 152, 164),
            (0, 5.2),
            1,
            detail=Detail("bar", (90, 90, 100), 0.35),
        ),  # fmt: skip
        PartSpec("case", "ellipse", (4.4, 4.4), (214, 162, 48), (0, 0), 2),
        PartSpec("crown", "rounded", (1.5, 1.6), (176, 116, 28), (2.45, 0), 1),
        PartSpec(
            "movement",
            "ellipse",
            (3.8, 3.8),
            (226, 118, 44),
            (0, 0),
            1,
            detail=Detail("ring", (150, 70, 20), 0.6),
        ),  # fmt: skip
        PartSpec(
            "dial",
            "ellipse",
            (3.5, 3.5),
            (32, 52, 124),
            (0, 0),
            3,
            detail=Detail("dot", (230, 190, 80), 0.3),
        ),  # fmt: skip
    ),
)

CAMERA = ObjectSpec(
    key="camera",
    phrase="a professional camera",
    pieces="parts",
    parts=(
        PartSpec("body", "rounded", (7.0, 4.4), (52, 52, 58), (0, 0), 1),
        PartSpec(
            "lens",
            "ellipse",
            (4.0, 4.0),
            (120, 122, 134),
            (0, 0.3),
            2,
            detail=Detail("dot", (50, 82, 156), 0.55),
        ),  # fmt: skip
        PartSpec(
            "lens cap",
            "ellipse",
            (3.0, 3.0),
            (22, 22, 24),
            (2.9, 1.9),
            3,
            detail=Detail("ring", (150, 150, 156), 0.6),
        ),  # fmt: skip
        PartSpec(
            "battery",
            "rect",
            (1.6, 2.6),
            (236, 146, 36),
            (-2.2, 0.6),
            0,
            detail=Detail("bar", (40, 40, 40), 0.35),
        ),  # fmt: skip
        PartSpec(
            "memory card", "polygon", (1.4, 1.8), (40, 112, 204), (-2.6, -0.5), 0, points=_CARD
        ),  # fmt: skip
        PartSpec("strap", "capsule", (9.5, 1.1), (196, 40, 44), (0, -2.2), 0),
    ),
)

CONTROLLER = ObjectSpec(
    key="controller",
    phrase="a game controller",
    pieces="parts",
    parts=(
        PartSpec("shell", "polygon", (9.0, 5.0), (118, 64, 176), (0, 0), 1, points=_CONTROLLER),
        PartSpec(
            "direction pad", "polygon", (1.9, 1.9), (36, 36, 42), (-2.6, -0.8), 2, points=_PLUS
        ),  # fmt: skip
        PartSpec(
            "face buttons",
            "ellipse",
            (2.1, 2.1),
            (64, 64, 70),
            (2.6, -0.8),
            2,
            detail=Detail("buttons4", (0, 0, 0), 0.9),
        ),  # fmt: skip
        PartSpec(
            "left thumbstick",
            "ellipse",
            (1.6, 1.6),
            (28, 28, 32),
            (-1.3, 0.4),
            2,
            detail=Detail("dot", (110, 110, 122), 0.5),
        ),  # fmt: skip
        PartSpec(
            "right thumbstick",
            "ellipse",
            (1.6, 1.6),
            (28, 28, 32),
            (1.3, 0.4),
            2,
            detail=Detail("dot", (110, 110, 122), 0.5),
        ),  # fmt: skip
        PartSpec("left trigger", "rounded", (2.3, 1.1), (240, 132, 36), (-3.0, -2.55), 0),
        PartSpec("right trigger", "rounded", (2.3, 1.1), (240, 132, 36), (3.0, -2.55), 0),
    ),
)

SPEAKER = ObjectSpec(
    key="speaker",
    phrase="a wireless bluetooth speaker",
    pieces="parts",
    parts=(
        PartSpec("housing", "rounded", (4.4, 7.0), (22, 152, 150), (0, 0), 1),
        PartSpec(
            "grille",
            "rounded",
            (3.6, 5.4),
            (44, 62, 72),
            (0, 0.1),
            2,
            detail=Detail("stripes", (92, 116, 128), 0.8),
        ),  # fmt: skip
        PartSpec(
            "driver",
            "ellipse",
            (3.0, 3.0),
            (26, 26, 30),
            (0, -0.8),
            0,
            detail=Detail("dot", (160, 160, 170), 0.4),
        ),  # fmt: skip
        PartSpec(
            "battery",
            "rect",
            (1.7, 3.0),
            (242, 204, 40),
            (0, 1.4),
            0,
            detail=Detail("bar", (40, 40, 40), 0.3),
        ),  # fmt: skip
        PartSpec(
            "circuit board",
            "rect",
            (3.0, 2.1),
            (36, 140, 76),
            (0, 0.2),
            0,
            detail=Detail("square", (24, 24, 24), 0.5),
        ),  # fmt: skip
        PartSpec("top cap", "ellipse", (4.8, 1.5), (244, 112, 60), (0, -3.5), 2),
        PartSpec("bottom cap", "ellipse", (4.8, 1.5), (244, 112, 60), (0, 3.5), 2),
    ),
)

JACKET = ObjectSpec(
    key="jacket",
    phrase="a denim jacket",
    pieces="sewing panels",
    parts=(
        PartSpec("back", "polygon", (6.0, 7.0), (52, 88, 156), (0, 0.2), 0, points=_BACK_PANEL),
        PartSpec(
            "front left", "polygon", (3.1, 7.0), (76, 116, 190), (-1.45, 0.3), 1, points=_FRONT_LEFT
        ),  # fmt: skip
        PartSpec(
            "front right",
            "polygon",
            (3.1, 7.0),
            (76, 116, 190),
            (1.45, 0.3),
            1,
            points=_FRONT_RIGHT,
        ),  # fmt: skip
        PartSpec(
            "left sleeve", "polygon", (2.1, 6.6), (38, 66, 128), (-3.6, 0.6), 0, points=_SLEEVE_LEFT
        ),  # fmt: skip
        PartSpec(
            "right sleeve",
            "polygon",
            (2.1, 6.6),
            (38, 66, 128),
            (3.6, 0.6),
            0,
            points=_SLEEVE_RIGHT,
        ),  # fmt: skip
        PartSpec("collar", "polygon", (3.4, 1.3), (24, 40, 88), (0, -3.15), 2, points=_COLLAR),
        PartSpec(
            "pocket",
            "polygon",
            (1.6, 1.6),
            (124, 162, 220),
            (-1.5, -0.9),
            3,
            points=_POCKET,
            detail=Detail("dot", (196, 118, 52), 0.35),
        ),  # fmt: skip
    ),
)

SNEAKER = ObjectSpec(
    key="sneaker",
    phrase="a sneaker",
    pieces="parts",
    parts=(
        PartSpec("upper", "polygon", (7.0, 3.6), (212, 46, 52), (0.2, -0.7), 1, points=_UPPER),
        PartSpec("tongue", "polygon", (1.9, 2.1), (136, 24, 40), (1.3, -2.3), 0, points=_TONGUE),
        PartSpec("laces", "polygon", (2.7, 1.1), (250, 212, 36), (0.3, -1.3), 2, points=_LACES),
        PartSpec("midsole", "rounded", (7.4, 1.1), (238, 172, 92), (0.2, 1.2), 2),
        PartSpec("outsole", "rounded", (7.6, 0.9), (48, 48, 54), (0.2, 1.8), 1),
        PartSpec("insole", "capsule", (6.4, 1.1), (58, 122, 204), (0.2, 0.3), 0),
    ),
)

# The four objects below came with the parts-first boards: their part names are the catalog's
# (assets/catalog/*.toml), a counted part drawn once per copy, so a board of the catalog's parts
# and the world's own views name the same things.
TOASTER = ObjectSpec(
    key="toaster",
    phrase="a toaster",
    pieces="parts",
    parts=(
        PartSpec("top cover", "rounded", (6.0, 1.2), (168, 172, 184), (0, -2.4), 3,
                 detail=Detail("bar", (60, 60, 66), 0.3)),
        PartSpec("heating element", "rect", (4.6, 3.0), (214, 150, 84), (-0.3, -0.4), 0,
                 detail=Detail("stripes", (150, 80, 40), 0.8)),
        PartSpec("heating element", "rect", (4.6, 3.0), (214, 150, 84), (0.3, 0.4), 0,
                 detail=Detail("stripes", (150, 80, 40), 0.8)),
        PartSpec("bread rack", "rect", (4.6, 3.2), (120, 122, 134), (0, 0), 1,
                 detail=Detail("stripes", (70, 70, 80), 0.7)),
        PartSpec("housing", "rounded", (6.2, 4.2), (132, 200, 158), (0, 0), 2),
        PartSpec("lever", "rounded", (1.4, 0.8), (30, 30, 34), (3.5, -0.6), 3),
        PartSpec("crumb tray", "rect", (5.4, 0.6), (186, 188, 198), (0, 1.9), 3),
        PartSpec("base", "rounded", (6.4, 0.8), (40, 40, 46), (0, 2.4), 1),
    ),
)  # fmt: skip

HEADPHONES = ObjectSpec(
    key="headphones",
    phrase="a pair of over-ear headphones",
    pieces="parts",
    parts=(
        PartSpec("headband", "polygon", (7.0, 2.6), (46, 46, 52), (0, -1.7), 1, points=_HEADBAND),
        PartSpec("ear cup", "rounded", (2.4, 3.2), (226, 104, 140), (-3.0, 0.9), 2),
        PartSpec("ear cup", "rounded", (2.4, 3.2), (226, 104, 140), (3.0, 0.9), 2),
        PartSpec("ear cushion", "rounded", (2.2, 3.0), (66, 58, 64), (-2.4, 0.9), 1),
        PartSpec("ear cushion", "rounded", (2.2, 3.0), (66, 58, 64), (2.4, 0.9), 1),
        PartSpec("driver", "ellipse", (2.0, 2.0), (150, 150, 162), (-2.6, 0.9), 0,
                 detail=Detail("dot", (40, 40, 44), 0.45)),
        PartSpec("driver", "ellipse", (2.0, 2.0), (150, 150, 162), (2.6, 0.9), 0,
                 detail=Detail("dot", (40, 40, 44), 0.45)),
        PartSpec("cable", "capsule", (5.0, 0.6), (46, 46, 52), (-1.6, 2.6), 0),
    ),
)  # fmt: skip

SMARTPHONE = ObjectSpec(
    key="smartphone",
    phrase="a smartphone",
    pieces="parts",
    parts=(
        PartSpec("screen", "rounded", (3.0, 6.2), (24, 28, 44), (0, 0), 3,
                 detail=Detail("bar", (60, 110, 200), 0.15)),
        PartSpec("frame", "rounded", (3.4, 6.6), (172, 176, 188), (0, 0), 2),
        PartSpec("logic board", "rect", (2.0, 3.6), (40, 150, 84), (0, -1.0), 1,
                 detail=Detail("square", (24, 24, 24), 0.5)),
        PartSpec("battery", "rect", (2.6, 4.2), (34, 34, 40), (0, 1.0), 1,
                 detail=Detail("bar", (236, 146, 36), 0.25)),
        PartSpec("camera module", "rounded", (1.1, 1.1), (60, 60, 68), (0.9, -2.6), 0,
                 detail=Detail("ring", (150, 150, 160), 0.6)),
        PartSpec("sim tray", "rect", (0.6, 1.4), (190, 190, 200), (1.8, -0.8), 1),
        PartSpec("back glass", "rounded", (3.0, 6.2), (96, 150, 214), (0.2, 0.2), 0),
    ),
)  # fmt: skip

DESK_LAMP = ObjectSpec(
    key="desk-lamp",
    phrase="a desk lamp",
    pieces="parts",
    parts=(
        PartSpec("shade", "polygon", (3.0, 2.2), (214, 64, 52), (1.0, -4.4), 2, points=_SHADE),
        PartSpec("bulb", "ellipse", (1.0, 1.4), (246, 206, 90), (1.0, -3.0), 1),
        PartSpec("upper arm", "rect", (0.8, 4.0), (62, 62, 70), (0, -2.0), 1),
        PartSpec("spring", "rect", (0.5, 2.0), (150, 150, 162), (0.6, -2.0), 2),
        PartSpec("lower arm", "rect", (0.8, 4.0), (62, 62, 70), (0, 1.6), 1),
        PartSpec("base", "rounded", (3.2, 1.2), (44, 44, 50), (0, 3.9), 2),
        PartSpec("power cord", "capsule", (2.6, 0.7), (44, 44, 50), (-1.6, 4.1), 0),
    ),
)  # fmt: skip

OBJECTS: tuple[ObjectSpec, ...] = (
    WATCH, CAMERA, CONTROLLER, SPEAKER, JACKET, SNEAKER,
    TOASTER, HEADPHONES, SMARTPHONE, DESK_LAMP,
)  # fmt: skip


@dataclass(frozen=True)
class Background:
    """A backdrop for product shots; a gradient runs from ``top`` to ``bottom``."""

    name: str  # as captions say it, before the word "background"
    top: RGB
    bottom: RGB
    weight: float  # relative frequency among assembled views


BACKGROUNDS: tuple[Background, ...] = (
    Background("white", (255, 255, 255), (255, 255, 255), 3.0),
    Background("light grey", (224, 224, 228), (224, 224, 228), 1.0),
    Background("beige", (236, 224, 200), (236, 224, 200), 1.0),
    Background("pastel pink", (246, 212, 222), (246, 212, 222), 1.0),
    Background("pastel blue", (206, 224, 246), (206, 224, 246), 1.0),
    Background("pastel green", (212, 238, 214), (212, 238, 214), 1.0),
    Background("dark grey", (46, 46, 52), (46, 46, 52), 1.0),
    Background("grey gradient", (252, 252, 252), (196, 196, 204), 1.0),
)

# Flat lays and exploded views are always on (near-)white: a grey level in this range.
LAYOUT_WHITE_RANGE = (248, 255)

# Caption templates per view. Placeholders: {object}, {pieces}, {background}, {axis}.
# The knolling and exploded templates must keep their trigger phrases verbatim.
KNOLLING_TRIGGER = "disassemble, knolling, flat lay, white background"
EXPLODED_TRIGGER = "exploded view, component breakdown"
CAPTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "assembled": (
        "{object}, product photo, {background} background",
        "{object}, studio product shot, {background} background",
    ),
    # The first of each is the scenario preset's own wording (presets/*.toml), so the
    # LoRA learns on the prompts the presets will send it.
    "knolling": (
        KNOLLING_TRIGGER + ", {object}, all {pieces} separated and arranged in a neat grid, "
        "top-down view",
        KNOLLING_TRIGGER + ", {object}, {pieces} arranged neatly in rows and columns",
    ),
    "exploded": (
        EXPLODED_TRIGGER + ", {object}, {pieces} separated along one axis, white background, "
        "industrial design diagram",
        EXPLODED_TRIGGER + ", {object}, {pieces} spread along one {axis} axis, white background",
    ),
}
