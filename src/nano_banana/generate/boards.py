"""Parts-first boards on the engine: the base model draws each part, image to image unifies.

``Engine.generate`` hands a request with ``compose`` here. The steps themselves
live in ``parts/`` (plan, cut out, compose, check); this module supplies the
model calls they need, as ordinary engine requests:

* a part: the ``part`` preset ("..., single part, isolated on a white background"),
  square at ``part_side``, with the structure LoRA off (it is trained to take an
  object apart, and a lone part must stay whole);
* the unifying pass: the board through image to image with the request's own
  preset and LoRA, at ``request.strength`` (``UNIFY_STRENGTH`` when unset).

Parts of one size are drawn in batches (``Engine.generate_batch``: one pipeline
call, each image with its own seed's noise), up to ``PartBatching``'s cap.

Cost: one UNet evaluation per step per part drawn (copies share a drawing) at a
quarter of the native pixels on SDXL, plus the pass's share of the steps at full
size; batching does not change that work, only how many calls carry it.
``benchmarks/bench_boards.py`` measures it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PIL import Image

from ..errors import InvalidSettingError
from ..parts.board import BoardResult, PartBatching, PartDraw, make_board
from ..parts.catalog import CatalogObject, load_catalog, part_words, resolve_object
from ..parts.plan import BoardPlan, PlacedPart, plan_board
from ..prompt.presets import Preset, get_preset
from ..settings import UNIFY_STRENGTH, GenerationRequest
from .engine import Engine, ProgressCallback, ProgressEvent, image_to_image_steps

PART_PRESET = "part"
SMALL_MODEL_SIDE = 256  # models this small draw parts at their native size


def part_side(native: int) -> int:
    """The side parts are drawn at: half the native side (a quarter of the pixels), but never
    below a small model's own native size, which it cannot draw under."""
    return max(native // 2, min(native, SMALL_MODEL_SIDE))


def part_prompt(part: PlacedPart, plan: BoardPlan) -> str:
    """The words a part is drawn with (the ``part`` preset adds "single part, isolated ...")."""
    return part_words(part.name, part.look, plan.phrase)


def unify_strength(request: GenerationRequest) -> float:
    """The unifying pass's strength: the request's, else ``UNIFY_STRENGTH``."""
    return UNIFY_STRENGTH if request.strength is None else request.strength


def check_unify_steps(request: GenerationRequest) -> None:
    """Refuse a unifying pass that would run no step, before any part is drawn."""
    strength = unify_strength(request)
    if strength > 0 and image_to_image_steps(request.steps, strength) == 0:
        raise InvalidSettingError(
            f"a unifying pass at strength {strength} with {request.steps} steps redraws nothing; "
            "raise --strength or --steps, or use --strength 0 to keep the composed board"
        )


def board_layout(preset_id: str, presets: dict[str, Preset]) -> str:
    """The preset's board layout, or an error naming the presets that have one."""
    preset = get_preset(presets, preset_id)
    if not preset.board:
        with_board = ", ".join(sorted(p.id for p in presets.values() if p.board))
        raise InvalidSettingError(
            f"preset '{preset.id}' has no board layout for --compose; use one that has ({with_board})"
        )
    return preset.board


def board_object(request: GenerationRequest) -> CatalogObject:
    """What the board shows: the request's --parts, else the catalog's entry for its prompt."""
    return resolve_object(request.prompt, request.parts, load_catalog())


def board_plan(engine: Engine, request: GenerationRequest) -> BoardPlan:
    """The plan for ``request``: the one it carries (an edited plan, drawn as it is), else its
    preset's layout with the catalog's (or --parts') parts."""
    layout = board_layout(request.preset, engine.presets)
    if request.plan is not None:
        plan = BoardPlan.from_json(request.plan)
        if (plan.width, plan.height) != (request.width, request.height):
            # its boxes are in board pixels: another size would put every part elsewhere
            raise InvalidSettingError(
                f"the board plan is {plan.width}x{plan.height} but the image is asked at "
                f"{request.width}x{request.height}: a plan is drawn at its own size "
                "(leave out --width and --height)"
            )
        return plan
    return plan_board(
        board_object(request), layout, request.width, request.height, request.seed,
        explode=request.explode,
    )  # fmt: skip


@dataclass
class EngineRenderer:
    """The model calls of ``parts.board.BatchRenderer``, made with ``engine`` for ``request``."""

    engine: Engine
    request: GenerationRequest
    cancel: threading.Event | None = None

    def part_size(self, part: PlacedPart, plan: BoardPlan) -> tuple[int, int]:
        side = part_side(min(self.engine.native_size))
        return side, side

    def part_request(self, part: PlacedPart, plan: BoardPlan, seed: int) -> GenerationRequest:
        """The request that draws ``part`` alone: the ``part`` preset, every LoRA off."""
        width, height = self.part_size(part, plan)
        return replace(
            self.request, prompt=part_prompt(part, plan), preset=PART_PRESET, negative_prompt=None,
            lora_scale=0.0, seed=seed, width=width, height=height, compose=False, parts=None,
            strength=None,
        )  # fmt: skip

    def render_part(self, part: PlacedPart, plan: BoardPlan, seed: int) -> Image.Image:
        request = self.part_request(part, plan, seed)
        return self.engine.generate(request, cancel=self.cancel).image

    def render_parts(self, draws: Sequence[PartDraw], plan: BoardPlan) -> list[Image.Image]:
        requests = [self.part_request(d.part, plan, d.seed) for d in draws]
        return [r.image for r in self.engine.generate_batch(requests, cancel=self.cancel)]

    def unify(self, board: Image.Image, plan: BoardPlan, seed: int) -> Image.Image | None:
        strength = unify_strength(self.request)
        if strength == 0:
            return None  # the composed board is the result
        unify_request = replace(
            self.request, compose=False, parts=None, strength=strength, seed=seed
        )
        return self.engine.generate(unify_request, cancel=self.cancel, init_image=board).image


def make_board_for(engine: Engine, request: GenerationRequest, progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None,
                   batching: PartBatching | None = None) -> BoardResult:  # fmt: skip
    """Plan, draw, compose, unify and check the board ``request`` asks for."""
    check_unify_steps(request)
    plan = board_plan(engine, request)
    total = len(plan.parts) + 1  # every part, then the unifying pass
    started = time.perf_counter()

    def report(what: str, done: int, _: int) -> None:
        if progress is not None:
            progress(ProgressEvent(done, total, time.perf_counter() - started))

    renderer = EngineRenderer(engine, request, cancel)
    result = make_board(plan, renderer, request.seed, report, batching)
    report("unify", total, total)
    return result
