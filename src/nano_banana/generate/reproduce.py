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
   ``model_differences`` says so, for the shell to warn.

``settings_rows`` and ``settings_line`` describe a record the same way in the
studio's panels and under the CLI's output.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from ..gallery.record import GenerationRecord
from ..options import reject_unknown
from ..settings import GenerationRequest, Sampler, parse_seed_option

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
)


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
    """The request that remakes ``record``'s image (rule 1), with the user's overrides (rule 2)."""
    return apply_overrides(record.request, overrides or {})


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


# --- describing a record ------------------------------------------------------------


def settings_rows(record: GenerationRecord) -> dict[str, str]:
    """The settings that made an image, labelled for people, in reading order."""
    req = record.request
    loras = ", ".join(f"{use.name} × {use.scale:g}" for use in record.loras)
    return {
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


def settings_line(record: GenerationRecord) -> str:
    """'seed 42, 30 steps, 1.2 s': the one line the CLI prints with each image."""
    req = record.request
    return f"seed {req.seed}, {req.steps} steps, {record.duration_s:.1f} s"
