"""AUTOMATIC1111's LoRA tags, ``<lora:NAME:WEIGHT>``: written into our infotexts, read from pasted prompts.

The grammar is A1111's extra-network syntax: ``<TYPE:ARG:ARG…>``, where TYPE is
``lora`` (or its synonym ``lyco``) and the arguments are split at ``:``. An
argument ``key=value`` is named, the others are positional: the first is the
LoRA's name, the second its text-encoder weight, the third its UNet weight
(default: the text-encoder weight); ``te=`` and ``unet=`` name them. Without a
weight the tag means 1.0. A1111 takes every tag out of the prompt before the
text encoders see it, and so do we.

Our engine applies one weight per LoRA, so a tag whose text-encoder and UNet
weights differ, or that asks for ``dyn=`` (A1111's dynamic rank), is refused
with a one-line error rather than applied in part.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidSettingError
from ..settings import LORA_SCALE_RANGE, GenerationRequest, LoraWeight, check_float_range

LORA_TAG = re.compile(r"<(lora|lyco):([^>]+)>")  # A1111's extra-network pattern, LoRA types only
_TAG_AND_SPACE = re.compile(r" ?" + LORA_TAG.pattern)  # what a tag takes out of the text
DEFAULT_WEIGHT = 1.0  # A1111's multiplier for a tag that gives none
# Characters that would break a tag or A1111's "Lora hashes" list ("name: hash, name: hash")
NAME_BREAKS = re.compile(r"[,:\n\r\"<>]")


@dataclass(frozen=True)
class LoraTag:
    """One ``<lora:…>`` tag of a prompt."""

    name: str  # as written: an adapter name, a file stem, an alias or a short hash
    weight: float
    text: str  # the whole tag, for messages


# --- reading ---------------------------------------------------------------------


def find_lora_tags(prompt: str) -> tuple[str, tuple[LoraTag, ...]]:
    """(``prompt`` with its LoRA tags removed, the tags in order).

    A tag goes with one space before it, so that ``with_lora_tags``' text comes
    back exactly; A1111 leaves that space, which the CLIP tokenizers ignore.
    """
    tags = tuple(_parse_tag(m) for m in LORA_TAG.finditer(prompt))
    if not tags:
        return prompt, ()
    return _TAG_AND_SPACE.sub("", prompt), tags


def _parse_tag(match: re.Match[str]) -> LoraTag:
    text = match.group(0)
    positional, named = [], {}
    for item in match.group(2).split(":"):
        if item.count("=") == 1:  # A1111: exactly one '=' makes an argument named
            key, value = item.split("=")
            named[key.strip()] = value.strip()
        else:
            positional.append(item.strip())
    if not positional or not positional[0]:
        raise InvalidSettingError(f"LoRA tag {text} names no LoRA")
    if "dyn" in named:
        raise InvalidSettingError(f"LoRA tag {text} asks for dyn= (a reduced rank), which we lack")
    te = _weight(named.get("te", positional[1] if len(positional) > 1 else None), text)
    unet = _weight(named.get("unet", positional[2] if len(positional) > 2 else None), text, te)
    if te != unet:
        raise InvalidSettingError(
            f"LoRA tag {text} weights the text encoders {te:g} and the UNet {unet:g}; "
            "nano-banana applies one weight per LoRA"
        )
    return LoraTag(positional[0], unet, text)


def _weight(raw: str | None, text: str, default: float = DEFAULT_WEIGHT) -> float:
    if raw is None or raw == "":
        return default
    try:
        weight = float(raw)
    except ValueError:
        raise InvalidSettingError(f"LoRA tag {text}: weight '{raw}' is not a number") from None
    if not math.isfinite(weight):
        raise InvalidSettingError(f"LoRA tag {text}: weight '{raw}' is not a finite number")
    return weight


# --- matching against the loaded LoRAs ---------------------------------------------


def lora_aliases(name: str, lora: Any | None) -> tuple[str, ...]:
    """Every name a tag may give a loaded LoRA: its adapter name, its file stem, the
    ``ss_output_name`` A1111 shows as its alias, and its AutoV3 and AutoV2 short hashes.

    ``lora`` is a ``lora.load.LoraFile`` (None for an adapter with no file yet).
    """
    from ..lora.hashes import autov2, autov3

    if lora is None:
        return (name,)
    names = [name, Path(lora.path).stem, lora.metadata.get("ss_output_name", "")]
    if lora.data_sha256:
        names.append(autov3(lora.data_sha256))
    if lora.sha256:
        names.append(autov2(lora.sha256))
    return tuple(dict.fromkeys(n for n in names if n))


def match_lora(tag: LoraTag, aliases: Mapping[str, Sequence[str]], hash_hint: str = "") -> str:
    """The adapter a tag names: by exact alias, else ignoring case; ``hash_hint`` (the tag's
    entry in a pasted ``Lora hashes``) is tried first, as A1111 does on paste.

    Raises ``InvalidSettingError`` naming the tag and the loaded LoRAs when none or
    several match.
    """
    for wanted in (hash_hint, tag.name):
        for fold in (False, True):
            found = _named(aliases, wanted, fold) if wanted else []
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidSettingError(
                    f"LoRA tag {tag.text} fits several loaded LoRAs ({', '.join(found)}); "
                    "name one by its adapter name"
                )
    loaded = ", ".join(aliases) or "none"
    raise InvalidSettingError(
        f"LoRA tag {tag.text} names no loaded LoRA '{tag.name}' (loaded: {loaded})"
    )


def _named(aliases: Mapping[str, Sequence[str]], wanted: str, fold: bool) -> list[str]:
    if fold:
        wanted = wanted.casefold()
        return [n for n, names in aliases.items() if any(a.casefold() == wanted for a in names)]
    return [n for n, names in aliases.items() if wanted in names]


def apply_lora_tags(
    request: GenerationRequest,
    aliases: Mapping[str, Sequence[str]],
    hashes: Mapping[str, str] | None = None,
) -> GenerationRequest:
    """``request`` with the LoRA tags taken out of its prompt and applied as its LoRA weights.

    A tag's weight becomes that LoRA's own weight in the request, multiplied by
    ``lora_scale`` like any other. Without ``request.loras`` the tags choose the
    LoRAs, as in A1111 (loaded LoRAs no tag names are off); with it, the tags set
    or add their LoRAs' weights. ``hashes`` is a pasted ``Lora hashes`` entry
    ({tag name: short hash}). A prompt without tags comes back unchanged.
    """
    text, tags = find_lora_tags(request.prompt)
    if not tags:
        return request
    weights = {lw.name: lw.weight for lw in request.loras or ()}
    tagged: set[str] = set()
    for tag in tags:
        name = match_lora(tag, aliases, (hashes or {}).get(tag.name, ""))
        if name in tagged:
            raise InvalidSettingError(f"LoRA '{name}' is tagged twice in the prompt; keep one tag")
        check_float_range(f"weight of LoRA tag {tag.text}", tag.weight, *LORA_SCALE_RANGE)
        tagged.add(name)
        weights[name] = tag.weight
    loras = tuple(LoraWeight(n, w) for n, w in weights.items())
    return replace(request, prompt=text, loras=loras)


# --- writing -------------------------------------------------------------------------


def tag_name(name: str) -> str:
    """``name`` made safe inside a tag and A1111's ``Lora hashes`` list."""
    return NAME_BREAKS.sub("_", name)


def with_lora_tags(prompt: str, loras: Iterable[tuple[str, float]]) -> str:
    """``prompt`` followed by a ``<lora:NAME:WEIGHT>`` tag for each (name, weight)."""
    tags = " ".join(f"<lora:{tag_name(name)}:{weight:g}>" for name, weight in loras)
    if not tags:
        return prompt
    return f"{prompt} {tags}" if prompt else tags
