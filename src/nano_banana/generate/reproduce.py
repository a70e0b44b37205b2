"""A saved image's settings: the request that makes it again, and a summary for people.

``generate --from IMAGE.png``, the studio's "Reuse settings" (on a result and
in the gallery) and the overrides of every image command go through here, so a
saved image is remade by one set of rules:

1. The recorded request carries over whole, seed included (it is recorded after
   a random seed was drawn), so the same model remakes the same pixels.
2. What the user gives replaces it field by field (``apply_overrides``); a seed
   of 'random' draws a fresh one.
3. The recorded LoRA weights are kept for the LoRAs loaded now under the same
   name (``keep_loaded_loras``); a request for "every loaded LoRA" stays that.
4. Another base model or a LoRA file not loaded now cannot give the same image;
   ``model_differences`` says so, for the shell to warn; so does ``photo_differences``
   for an image that started from a photo, remade without it or from another one.
5. A board's plan, once recorded or given (``--plan FILE``, ``plan_settings``), is
   drawn as it is: an edited plan re-renders the board. A recorded plan gives way
   when the user asks for another one (another prompt, preset, parts list, explode
   or size, ``REPLANNING``).

``settings_rows`` and ``settings_line`` describe a record the same way in the
studio's panels and under the CLI's output.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_text
from ..errors import CatalogError
from ..gallery.record import GenerationRecord
from ..options import reject_unknown
from ..parts.plan import BoardPlan
from ..settings import GenerationRequest, Sampler, parse_seed_option

if TYPE_CHECKING:
    from PIL import Image

# Request fields a user may set on top of a starting request (the model's defaults or a
# saved image's). LoRA choice is not among them: it follows the loaded LoRAs (rule 3).
OVERRIDABLE = (
    "prompt",
    "preset",
    "negative_prompt",
    "lora_scale",
    "cfg",
    "steps",
    "width",
    "height",
    "sampler",
    "seed",
    "compose",
    "parts",
    "explode",
    "strength",
    "plan",
)
# Overrides that ask for another board plan than the recorded one (rule 5).
REPLANNING = ("prompt", "preset", "parts", "explode", "width", "height")


def apply_overrides(request: GenerationRequest, overrides: Mapping[str, Any]) -> GenerationRequest:
    """``request`` with every override given (None: not given); seed 'random' draws anew."""
    reject_unknown(
        overrides,
        OVERRIDABLE,
        where="generation request",
        problem="cannot override",
        advice=f"settable: {', '.join(OVERRIDABLE)}",
    )
    changes = {name: value for name, value in overrides.items() if value is not None}
    if "seed" in changes:
        changes["seed"] = parse_seed_option(changes["seed"])
    return replace(request, **changes)


def request_from_record(
    record: GenerationRecord, overrides: Mapping[str, Any] | None = None
) -> GenerationRequest:
    """The request that remakes ``record``'s image (rule 1), with the user's overrides (rule 2);
    a recorded board plan is kept unless they ask for another (rule 5)."""
    overrides = overrides or {}
    # Only the request: the recorded device, dtype and memory savers (offload, VAE tiling)
    # describe the machine that made the image, not the image; this one picks its own.
    request = apply_overrides(record.request, overrides)
    given = {name for name, value in overrides.items() if value is not None}
    if "plan" not in given and given.intersection(REPLANNING):
        request = replace(request, plan=None)
    return request


def keep_loaded_loras(request: GenerationRequest, loaded: Collection[str]) -> GenerationRequest:
    """The request's own LoRA weights, only for LoRAs loaded now under the same name (rule 3)."""
    if request.loras is None:
        return request
    return replace(request, loras=tuple(lw for lw in request.loras if lw.name in loaded))


def reused_lora_names(record: GenerationRecord, loaded: Collection[str]) -> list[str]:
    """The LoRAs the image was made with that are loaded now under the same name, in order."""
    return [use.name for use in record.loras if use.name in loaded]


def model_differences(
    record: GenerationRecord, base_name: str, loaded_sha256: Collection[str]
) -> list[str]:
    """Why the model loaded now may not remake ``record``'s image (rule 4); empty if it can."""
    notes = []
    if record.base_model != base_name:
        notes.append(f"image was made with base '{record.base_model}', now using '{base_name}'")
    for use in record.loras:
        if use.sha256 not in loaded_sha256:
            notes.append(
                f"image used LoRA {use.file} (sha256 {use.sha256[:12]}), which is not loaded now"
            )
    return notes


def photo_differences(record: GenerationRecord, photo: Image.Image | None) -> list[str]:
    """Why ``photo`` (None: none given) may not remake ``record``'s image from a photo (rule 4):
    none given for an image that started from one, or another photo than the recorded one."""
    recorded = record.init_image
    if recorded is None:
        return []
    if photo is None:
        return [
            f"image started from a {recorded.width}x{recorded.height} photo (sha256 "
            f"{recorded.sha256[:12]}); without --image PHOTO it is drawn from noise instead"
        ]
    from .photo import photo_facts

    given = photo_facts(photo)
    if given.sha256 != recorded.sha256:
        return [
            f"--image is another photo (sha256 {given.sha256[:12]}, {given.width}x{given.height}) "
            f"than the image started from ({recorded.sha256[:12]}, "
            f"{recorded.width}x{recorded.height})"
        ]
    return []


# --- board plans as files (rule 5) ---------------------------------------------------


def plan_settings(path: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` drawing the board plan in ``path`` as it is: the plan, compose on, and the
    plan's size where the user gave none (a size they gave that differs is refused later)."""
    plan = read_plan_file(path)
    given = {name: value for name, value in settings.items() if value is not None}
    return {"width": plan.width, "height": plan.height, **given, "compose": True,
            "plan": plan.to_json()}  # fmt: skip


def read_plan_file(path: Path) -> BoardPlan:
    """The board plan a JSON file holds (``write_plan_file``'s, maybe edited), checked; a
    file that cannot be one is refused in one line naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read the board plan {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CatalogError(f"{path}: the board plan is not valid JSON ({exc})") from None
    if isinstance(data, dict) and "record" in data:  # all of `show --json`, not the plan alone
        raise CatalogError(
            f"{path} holds an image's whole metadata; write its plan alone with "
            "nano-banana show IMAGE --plan-json FILE"
        )
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: the board plan is not valid: expected a JSON object")
    try:
        return BoardPlan.from_dict(data)
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from None


def write_plan_file(plan: BoardPlan, path: Path) -> Path:
    """The plan as JSON laid out for a person to edit (``plan_text``); written whole."""
    return write_text(Path(path), plan_text(plan))


def plan_text(plan: BoardPlan) -> str:
    """The plan as JSON, one line per setting and one per part: a part's name, box and look
    read (and are edited) together."""

    def line(key: str, value: Any) -> str:
        if key == "parts":
            rows = ",\n".join(f"    {json.dumps(part, ensure_ascii=False)}" for part in value)
            return f'  "parts": [\n{rows}\n  ]'
        return f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"

    return "{\n" + ",\n".join(line(k, v) for k, v in plan.to_dict().items()) + "\n}\n"


# --- describing a record ------------------------------------------------------------


def settings_rows(record: GenerationRecord) -> dict[str, str]:
    """The settings that made an image, labelled for people, in reading order."""
    req = record.request
    loras = ", ".join(f"{use.name} × {use.scale:g}" for use in record.loras)
    started = {} if record.init_image is None else {"Started from": _photo_words(record)}
    return {
        **started,
        "Scenario": req.preset,
        "Seed": str(req.seed),
        "Size": f"{req.width}×{req.height}",
        "Steps": str(req.steps),
        "CFG": f"{req.cfg:g}",
        "Sampler": Sampler(req.sampler).a1111_name,
        "LoRA": loras or "none",
        "Model": record.base_model,
        "Time": f"{record.duration_s:.1f} s",
    }


def _photo_words(record: GenerationRecord) -> str:
    photo, strength = record.init_image, record.request.strength
    said = f"a {photo.width}×{photo.height} photo (sha256 {photo.sha256[:12]})"
    return said if strength is None else f"{said}, strength {strength:g}"


def settings_line(record: GenerationRecord) -> str:
    """'seed 42, 30 steps, 1.2 s': the one line the CLI prints with each image."""
    req = record.request
    return f"seed {req.seed}, {req.steps} steps, {record.duration_s:.1f} s"
