"""Evaluation: does the LoRA make disassembled layouts? Measured, LoRA off vs on.

``evaluate`` renders every prompt of a prompt set over many seeds twice, with
the loaded LoRAs switched off (``lora_scale=0``) and on, with everything else
equal, and judges each image with

* the layout analysis (``analysis.analyze_layout``): verdict, score, parts,
  grid or one-axis arrangement;
* an object classifier that does not know which model made the image
  (``ObjectClassifier``): the foreground's colour histogram and coarse shape,
  k nearest neighbours, fitted on the demo world's own renders of all three views and on
  copies of them with a generator's usual flaws (blur, dark rims, colour casts).

It works on any base + LoRA; the classifier only knows the demo world's ten
objects, so for other prompts "recognised" is reported as not applicable.
``write_report`` writes ``eval.json`` and ``eval_grid.png``; ``summary_table``
is the side-by-side table the CLI prints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..atomic import atomic_path, write_text
from ..errors import GenerationError, InvalidSettingError
from ..settings import GenerationRequest, Sampler
from .layout import analyze_layout

ARMS = ("lora off", "lora on")
COMPOSED = (
    "composed"  # the third arm with --compose: parts-first boards (LoRA in the unifying pass)
)
GOOD_CALLOUT_IOU = 0.7  # a plan box this close to the part the analyser found is a right callout


@dataclass(frozen=True)
class EvalConfig:
    """What to render: prompts x seeds, each with the LoRA off and on."""

    prompts: tuple[str, ...] = ()  # empty: the demo world's ten objects
    seeds: int = 16  # per prompt; the targets ask for at least 16
    first_seed: int = 0  # seeds are first_seed, first_seed + 1, ...
    preset: str = "knolling"
    lora_scale: float = 1.0  # strength of the "on" arm
    steps: int | None = None  # None: the request default (the demo's, for the demo model)
    cfg: float | None = None
    sampler: Sampler | None = None  # None: the request default
    width: int | None = None  # None: the model's native size
    height: int | None = None
    grid_seeds: int = 4  # seeds per prompt shown in the picture grid
    compose: bool = False  # add a third arm: parts-first boards of the same prompts and seeds

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise InvalidSettingError(f"seeds must be at least 1, got {self.seeds}")
        if not 0 < self.lora_scale <= 2:
            raise InvalidSettingError(
                f"lora scale of the 'on' arm must be in (0, 2], got {self.lora_scale}"
            )

    @property
    def arms(self) -> tuple[str, ...]:
        return (*ARMS, COMPOSED) if self.compose else ARMS

    def prompt_list(self) -> list[tuple[str, str | None]]:
        """(prompt, demo object key or None) pairs."""
        from ..demo import OBJECTS

        if not self.prompts:
            return [(o.phrase, o.key) for o in OBJECTS]
        keys = {o.phrase: o.key for o in OBJECTS} | {o.key: o.key for o in OBJECTS}
        return [(p, keys.get(p.strip().lower())) for p in self.prompts]


# --- the object classifier ---------------------------------------------------------------

BINS = 6  # per colour channel: 216 bins tell the objects' palettes apart
BACKGROUND_DISTANCE = 48.0  # RGB distance from the border colour below which a pixel is background
NEIGHBOURS = 5  # votes per prediction: each object looks different in each view
FLAWED_COPIES = 2  # generator-like copies of each world render in the fitting set
SHAPE_CELLS = 8  # the shape feature: share of foreground in each cell of an 8 x 8 grid
# Colours alone drift with a small model (its parts come out darker or tinted); the shape
# of the foreground, its parts and their layout, does not. Both features have unit length,
# and at 1.5x the shape outweighs a colour drift (chosen on the demo model's images of
# seeds 100+, never the eval's seeds 0..15).
SHAPE_WEIGHT = 1.5


def image_features(image: Image.Image | np.ndarray) -> np.ndarray:
    """What the classifier compares: the colour histogram, then the weighted shape."""
    rgb = _as_float_rgb(image)
    mask = _foreground(rgb)  # found once, used by both features
    return np.concatenate([_colour_histogram(rgb, mask), SHAPE_WEIGHT * _occupancy(mask)])


def shape_features(image: Image.Image | np.ndarray) -> np.ndarray:
    """Foreground share of each cell of a SHAPE_CELLS grid, scaled to unit length."""
    return _occupancy(_foreground(_as_float_rgb(image)))


def colour_features(image: Image.Image | np.ndarray) -> np.ndarray:
    """Square-rooted, softly binned colour histogram of the foreground's inner pixels.

    Soft (trilinear) binning keeps a slightly shifted colour near its old bins; the
    foreground is eroded by a pixel so blurry edges, a mix of part and background,
    do not count as colours of their own.
    """
    rgb = _as_float_rgb(image)
    return _colour_histogram(rgb, _foreground(rgb))


def _occupancy(mask: np.ndarray) -> np.ndarray:
    cells = SHAPE_CELLS
    h, w = (side // cells * cells for side in mask.shape)
    grid = mask[:h, :w].astype(np.float32).reshape(cells, h // cells, cells, w // cells)
    occupancy = grid.mean(axis=(1, 3))
    norm = np.linalg.norm(occupancy)
    return (occupancy / norm if norm > 0 else occupancy).ravel()


def _colour_histogram(rgb: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    mask = _inner(foreground)
    if not mask.any():
        return np.zeros(BINS**3, dtype=np.float32)
    hist = _soft_histogram(rgb[mask])
    return np.sqrt(hist / hist.sum())


def _as_float_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    return rgb.astype(np.float32)


def _foreground(rgb: np.ndarray) -> np.ndarray:
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return np.linalg.norm(rgb - np.median(border, axis=0), axis=2) > BACKGROUND_DISTANCE


def _inner(mask: np.ndarray) -> np.ndarray:
    """The mask eroded by one pixel, unless that leaves too little to go on."""
    eroded = np.asarray(Image.fromarray(mask).filter(ImageFilter.MinFilter(3)))
    return eroded if eroded.sum() >= 20 else mask


def _soft_histogram(pixels: np.ndarray) -> np.ndarray:
    """Each pixel spread over the 8 bins around it, weighted by closeness."""
    position = pixels / 255 * (BINS - 1)
    low = np.floor(position).astype(int)
    frac = position - low
    hist = np.zeros(BINS**3, dtype=np.float64)
    for corner in np.ndindex(2, 2, 2):
        step = np.array(corner)
        idx = np.minimum(low + step, BINS - 1)
        weight = np.prod(np.where(step == 1, frac, 1 - frac), axis=1)
        np.add.at(hist, idx[:, 0] * BINS * BINS + idx[:, 1] * BINS + idx[:, 2], weight)
    return hist.astype(np.float32)


def with_generator_flaws(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A world render as a small diffusion model tends to draw it: dark rims around the
    parts (often), soft edges and a colour cast. Fitting on such copies keeps the
    classifier from calling every blurry image the darkest object."""
    rgb = np.asarray(image.convert("RGB")).astype(np.float32)
    mask = _foreground(rgb)
    if rng.random() < 0.7:
        rim = np.asarray(Image.fromarray(mask).filter(ImageFilter.MaxFilter(3))) & ~mask
        rgb[rim] *= rng.uniform(0.2, 0.6)
    soft = Image.fromarray(rgb.astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.6, 1.6))
    )
    cast = np.asarray(soft).astype(np.float32) * rng.uniform(0.8, 1.1, 3) + rng.uniform(-15, 15, 3)
    return Image.fromarray(np.clip(cast, 0, 255).astype(np.uint8))


@dataclass
class ObjectClassifier:
    """k nearest neighbours on colour and shape; knows nothing about which model drew an image."""

    keys: list[str]  # the object of each fitted example
    features: np.ndarray  # examples x features
    holdout_accuracy: float = float("nan")  # on other renders with generator flaws

    @classmethod
    def fit_on_world(cls, instances: int = 30, seed: int = 7, size: int = 128) -> ObjectClassifier:
        """Fit on ``instances`` renders of every object in every view plus flawed copies;
        check on as many other renders, flawed the same way."""
        feats, keys = _world_features(instances * 6, seed, size, FLAWED_COPIES)
        model = cls(keys, feats)
        test_feats, test_keys = _world_features(instances * 6, seed + 1, size, 1, originals=False)
        hits = [model.predict_features(f) == k for f, k in zip(test_feats, test_keys, strict=True)]
        model.holdout_accuracy = float(np.mean(hits))
        return model

    def predict_features(self, features: np.ndarray) -> str:
        nearest = np.argsort(((self.features - features) ** 2).sum(1))[:NEIGHBOURS]
        votes: dict[str, int] = {}
        for i in nearest:  # ties go to the nearer neighbour: dicts keep insertion order
            votes[self.keys[i]] = votes.get(self.keys[i], 0) + 1
        return max(votes, key=votes.__getitem__)

    def predict(self, image: Image.Image) -> str:
        return self.predict_features(image_features(image))


def _world_features(count: int, seed: int, size: int, copies: int, originals: bool = True):
    from ..demo import generate_world

    rng = np.random.default_rng(seed)
    feats, keys = [], []
    views = ("assembled", "knolling", "exploded")  # the objects, not their parts alone
    for _, render in generate_world(count, seed=seed, size=size, views=views):
        images = [render.image] if originals else []
        images += [with_generator_flaws(render.image, rng) for _ in range(copies)]
        feats += [image_features(image) for image in images]
        keys += [render.object] * len(images)
    return np.stack(feats), keys


# --- running ----------------------------------------------------------------------------------


@dataclass
class EvalRow:
    prompt: str
    object: str | None
    seed: int
    arm: str  # one of EvalConfig.arms
    verdict: bool
    score: int
    parts: int
    arrangement: str
    axis: str | None
    predicted: str | None
    recognised: bool | None  # None when the prompt is not a demo object
    seconds: float
    reasons: tuple[str, ...] = ()  # the analyser's reasons for a "no" verdict
    # composed boards only (None otherwise): parts found == parts planned, and the plan's
    # callout boxes right (IoU >= GOOD_CALLOUT_IOU with a found part)
    exact_count: bool | None = None
    callouts_right: int | None = None
    callouts: int | None = None
    # what layout the image shows (None when it is not one): the plan's boxes for a board,
    # else the analyser's parts (arrangement_signature)
    arrangement_key: str | None = None


@dataclass
class EvalReport:
    config: dict[str, Any]
    base: str
    loras: list[str]
    classifier_accuracy: float | None  # None when no prompt named a demo object (none fitted)
    rows: list[EvalRow] = field(default_factory=list)
    images: dict[tuple[str, int, str], Image.Image] = field(default_factory=dict, repr=False)

    @property
    def arms(self) -> tuple[str, ...]:
        return (*ARMS, COMPOSED) if self.config.get("compose") else ARMS

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Per arm: share of images judged a disassembled layout, on one axis, recognised, ..."""
        out = {}
        for arm in self.arms:
            rows = [r for r in self.rows if r.arm == arm]
            known = [r for r in rows if r.recognised is not None]
            out[arm] = {
                "images": len(rows),
                "disassembled": _share(r.verdict for r in rows),
                "mean_score": float(np.mean([r.score for r in rows])) if rows else None,
                "mean_parts": float(np.mean([r.parts for r in rows])) if rows else None,
                "grid": _share(r.arrangement == "grid" for r in rows),
                "one_axis": _share(r.arrangement == "axis" for r in rows),
                "recognised": _share(r.recognised for r in known) if known else None,
                "seconds_per_image": float(np.mean([r.seconds for r in rows])) if rows else None,
                **_board_summary(rows),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "base": self.base, "loras": self.loras,
                "classifier_holdout_accuracy": self.classifier_accuracy,
                "summary": self.summary(), "rows": [asdict(r) for r in self.rows]}  # fmt: skip


def _board_summary(rows: list[EvalRow]) -> dict[str, float | None]:
    """Composed boards' own measures (None for the other arms), and every arm's arrangements."""
    boards = [r for r in rows if r.exact_count is not None]
    per_prompt: dict[str, set[str]] = {}
    for r in rows:  # an image not judged a layout has no arrangement to count
        keys = per_prompt.setdefault(r.prompt, set())
        if r.arrangement_key is not None:
            keys.add(r.arrangement_key)
    arrangements = float(min(len(k) for k in per_prompt.values())) if per_prompt else None
    if not boards:
        return {"exact_count": None, "callouts_right": None, "arrangements": arrangements}
    right = sum(r.callouts_right or 0 for r in boards)
    total = sum(r.callouts or 0 for r in boards)
    return {
        "exact_count": _share(r.exact_count for r in boards),
        "callouts_right": right / total if total else None,
        "arrangements": arrangements,
    }


def _share(flags) -> float | None:
    flags = list(flags)
    return float(np.mean(flags)) if flags else None


def evaluate(engine, config: EvalConfig = EvalConfig(),
             classifier: ObjectClassifier | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvalReport:  # fmt: skip
    """Render prompts x seeds with the LoRAs off and on; judge every image."""
    if not engine.loras:
        raise InvalidSettingError("eval compares LoRA off and on: load a LoRA (--lora FILE)")
    prompts = config.prompt_list()
    # Fitting takes seconds and only demo objects can be recognised: skip it for other prompts.
    if classifier is None and any(key is not None for _, key in prompts):
        classifier = ObjectClassifier.fit_on_world()
    report = EvalReport(
        config=asdict(config), base=engine.base_name,
        loras=[lf.path.name for lf in engine.loras.values()],
        classifier_accuracy=classifier.holdout_accuracy if classifier else None,
    )  # fmt: skip
    jobs = [(p, key, config.first_seed + i, arm) for p, key in prompts
            for i in range(config.seeds) for arm in config.arms]  # fmt: skip
    for done, (prompt, key, seed, arm) in enumerate(jobs, 1):
        request = make_request(config, prompt, seed, arm)
        started = time.perf_counter()
        image, board = _render(engine, request)
        seconds = time.perf_counter() - started
        row = judge_image(image, prompt, key, seed, arm, classifier, seconds)
        report.rows.append(judge_board(row, board) if arm == COMPOSED else row)
        if seed - config.first_seed < config.grid_seeds:
            report.images[(prompt, seed, arm)] = image
        if progress is not None:
            progress(done, len(jobs))
    return report


def _render(engine, request: GenerationRequest) -> tuple[Image.Image, dict | None]:
    """The image and, for a board, its record; a board that could not be drawn is a blank
    image with the reason (it counts as a failure, it does not stop the evaluation)."""
    if not request.compose:
        return engine.generate(request).image, None
    try:
        result = engine.generate(request)
    except GenerationError as exc:
        side = request.width or min(engine.native_size)
        return Image.new("RGB", (side, request.height or side), "white"), {"error": str(exc)}
    return result.image, result.record.board


def judge_board(row: EvalRow, board: dict | None) -> EvalRow:
    """A composed board's row, from the check its record already holds (the analyser's parts
    against the plan, on this same image)."""
    from ..parts.plan import BoardPlan

    if board is None or "error" in board:
        reason = (board or {}).get("error", "no board")
        return replace(row, verdict=False, exact_count=False, callouts_right=0, callouts=0,
                       reasons=(*row.reasons, reason), arrangement_key=None)  # fmt: skip
    plan, check = BoardPlan.from_dict(board["plan"]), board["check"]
    key = json.dumps(sorted((p.name, p.copy, p.box) for p in plan.parts))
    return replace(row, exact_count=check["found"] == check["planned"], callouts=len(plan.parts),
                   callouts_right=sum(iou >= GOOD_CALLOUT_IOU for iou in check["ious"]),
                   arrangement_key=key)  # fmt: skip


def make_request(config: EvalConfig, prompt: str, seed: int, arm: str) -> GenerationRequest:
    """The arms share every setting but the LoRA scale (and composing, for the third)."""
    settings: dict[str, Any] = {"prompt": prompt, "preset": config.preset, "seed": seed,
                                "lora_scale": 0.0 if arm == ARMS[0] else config.lora_scale,
                                "compose": arm == COMPOSED}  # fmt: skip
    for name in ("steps", "cfg", "sampler", "width", "height"):
        if getattr(config, name) is not None:
            settings[name] = getattr(config, name)
    return GenerationRequest(**settings)


def judge_image(image: Image.Image, prompt: str, key: str | None, seed: int, arm: str,
                classifier: ObjectClassifier | None, seconds: float) -> EvalRow:  # fmt: skip
    layout = analyze_layout(image)
    predicted = classifier.predict(image) if key is not None and classifier else None
    return EvalRow(prompt, key, seed, arm, layout.verdict, layout.score, layout.part_count,
                   layout.arrangement, layout.axis, predicted,
                   None if key is None else predicted == key, round(seconds, 3),
                   layout.reasons,
                   arrangement_key=arrangement_signature(layout) if layout.verdict else None)  # fmt: skip


SIGNATURE_CELLS = (
    3  # a part's centre is placed in a 3 x 3 grid from the image's corner to the parts' far edge
)


def arrangement_signature(layout) -> str:
    """What tells two layouts apart, from the analyser's parts: the kind of layout, then each
    part in reading order as (its size rank, the cell of its centre). A LoRA that learned one
    layout per object draws the same signature for every seed; one that learned the rule of
    a layout draws its parts in several orders and places."""
    parts = layout.parts
    if not parts:
        return layout.arrangement
    ranks = {id(p): r for r, p in enumerate(sorted(parts, key=lambda p: -p.area))}
    side = max(max(p.bbox[2], p.bbox[3]) for p in parts) or 1

    def cell(p) -> tuple[int, int]:
        cx, cy = (p.bbox[0] + p.bbox[2]) / 2, (p.bbox[1] + p.bbox[3]) / 2
        return (min(SIGNATURE_CELLS - 1, int(cx / side * SIGNATURE_CELLS)),
                min(SIGNATURE_CELLS - 1, int(cy / side * SIGNATURE_CELLS)))  # fmt: skip

    return json.dumps([layout.arrangement, layout.axis, [(ranks[id(p)], cell(p)) for p in parts]])


# --- output -----------------------------------------------------------------------------------------

METRICS = (
    ("disassembled", "disassembled layout", True),
    ("one_axis", "parts along one axis", True),
    ("grid", "rows and columns", True),
    ("recognised", "object recognised", True),
    ("mean_score", "mean layout score", False),
    ("mean_parts", "mean parts found", False),
    ("seconds_per_image", "seconds per image", False),
    ("exact_count", "exact part count (boards)", True),
    ("callouts_right", "callout boxes right, IoU >= 0.7 (boards)", True),
    ("arrangements", "fewest arrangements of a prompt", False),
)


def summary_rows(report: EvalReport) -> list[tuple[str, str, str]]:
    """(metric, lora off, lora on) as display strings."""
    summary = report.summary()
    rows = []
    for key, label, percent in METRICS:
        if all(summary[arm][key] is None for arm in report.arms) and "(boards)" in label:
            continue  # no composed arm: no board rows
        cells = []
        for arm in report.arms:
            value = summary[arm][key]
            cells.append("n/a" if value is None else f"{100 * value:.0f}%" if percent
                         else f"{value:.1f}")  # fmt: skip
        rows.append((label, *cells))
    return rows


def summary_table(report: EvalReport):
    from rich.table import Table
    from rich.text import Text

    n = report.summary()[ARMS[0]]["images"]
    # Text, not a string: a model path with brackets is not rich markup
    table = Table(title=Text(f"{report.base}: {' vs '.join(report.arms)} ({n} images each, "
                             f"preset {report.config['preset']})"))  # fmt: skip
    table.add_column("metric")
    for arm in report.arms:
        table.add_column(arm, justify="right")
    for row in summary_rows(report):
        table.add_row(*row)
    return table


def write_report(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    """``eval.json`` (summary and every image's judgement) and ``eval_grid.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = write_text(out_dir / "eval.json", json.dumps(report.to_dict(), indent=1))
    grid, grid_path = draw_grid(report), out_dir / "eval_grid.png"
    with atomic_path(grid_path) as tmp:
        grid.save(tmp, format="PNG")
    return {"json": json_path, "grid": grid_path}


def draw_grid(report: EvalReport, cell: int = 128) -> Image.Image:
    """One row per prompt: its first seeds with the LoRA off, then the same seeds with it on.

    Each image is outlined green when judged a disassembled layout, grey otherwise;
    the summary numbers are written above.
    """
    prompts = list(dict.fromkeys(p for p, _, _ in report.images))
    seeds = sorted({s for _, s, _ in report.images})
    label_w, pad, head = 150, 4, 64
    cols = len(seeds) * len(report.arms)
    width = label_w + cols * (cell + pad) + pad + 12
    height = head + len(prompts) * (cell + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    verdicts = {(r.prompt, r.seed, r.arm): r.verdict for r in report.rows}
    summary = report.summary()
    for i, arm in enumerate(report.arms):
        x = label_w + i * (len(seeds) * (cell + pad) + 12)
        s = summary[arm]
        recog = "n/a" if s["recognised"] is None else f"{100 * s['recognised']:.0f}%"
        draw.text((x, 6), arm.upper(), fill="black")
        draw.text((x, 22), f"disassembled {100 * (s['disassembled'] or 0):.0f}%  "
                           f"one axis {100 * (s['one_axis'] or 0):.0f}%", fill="black")  # fmt: skip
        draw.text((x, 38), f"recognised {recog}  ({s['images']} images)", fill="black")
    for row, prompt in enumerate(prompts):
        y = head + row * (cell + pad)
        draw.text((6, y + cell // 2 - 6), prompt[:24], fill="black")
        for i, arm in enumerate(report.arms):
            for j, seed in enumerate(seeds):
                image = report.images.get((prompt, seed, arm))
                if image is None:
                    continue
                x = label_w + i * (len(seeds) * (cell + pad) + 12) + j * (cell + pad)
                sheet.paste(image.convert("RGB").resize((cell, cell)), (x, y))
                colour = (40, 170, 60) if verdicts.get((prompt, seed, arm)) else (170, 170, 170)
                draw.rectangle((x - 2, y - 2, x + cell + 1, y + cell + 1), outline=colour, width=2)
    return sheet


def seeds_of(config: EvalConfig) -> Sequence[int]:
    return range(config.first_seed, config.first_seed + config.seeds)
