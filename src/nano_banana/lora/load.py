"""Safe LoRA loading: read a LoRA file ourselves, check it fits the base model, attach it by name.

A LoRA file is only ever read with ``safetensors`` after its bytes were checked
(``safefile``), never with ``torch.load``; diffusers is handed the tensors, not
the path, so its pickle fallback is never reached. Both the diffusers/PEFT
layout and the kohya/A1111 layout are accepted; kohya keys are converted by
diffusers' own converter inside ``load_lora_weights`` (we call the same
converter, ``lora_state_dict``, to check the fit beforehand).

The pipeline holds any number of LoRAs as named PEFT adapters. Which ones are
active, and how strongly, is set per job by ``apply_adapter_state``. The engine's
fast path may fold the active ones into the base weights (``lora.fuse``), but
always from a pristine copy of them, so switching every LoRA off gives the base
model's output exactly, fused or not.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from ..atomic import atomic_path
from ..errors import LoraError, UnsafeFileError
from ..safefile import check_safetensors, header_metadata
from ..safefile import file_sha256 as file_sha256  # generate.jobs compares files by it
from . import keys as keys
from .hashes import autov3, file_hashes

TRIGGER_WORDS_KEY = "nano_banana.trigger_words"  # our metadata key: a JSON list of strings
MAX_SUGGESTED_TAGS = 5  # from kohya's ss_tag_frequency: the tags found in the most captions
# Cross-attention (text) width -> the model family users know it by.
TEXT_WIDTH_FAMILIES = {768: "SD 1.5", 1024: "SD 2.x", 2048: "SDXL"}


@dataclass(frozen=True, eq=False)
class LoraFile:
    """A LoRA read from disk and checked (finite tensors, a known layout); not tied to a model."""

    name: str  # adapter name inside the pipeline: [a-z0-9_], default from the file stem
    path: Path
    sha256: str  # whole-file hash, hex; its first 10 digits are Civitai's AutoV2
    format: str  # "diffusers" (PEFT keys, diffusers' save_lora_weights) | "kohya" (lora_unet_*)
    state_dict: dict[str, torch.Tensor]  # what we hand to pipe.load_lora_weights (alpha folded in)
    metadata: dict[str, str]  # the file's safetensors __metadata__
    trigger_words: tuple[str, ...]  # words the LoRA was trained on, to offer in the prompt
    rank: int | None  # most common rank over its modules
    alpha: float | None  # most common alpha over its modules (alpha = rank means factor 1)
    targets: dict[str, int]  # adapted modules per component: {"unet": 140, "text_encoder": 0, ...}
    tensors: dict[str, torch.Tensor] = field(repr=False)  # exactly as stored in the file
    module_alphas: dict[str, float] = field(repr=False)  # alpha per module, keyed as in the file
    text_width: int | None = None  # cross-attention width it was made for (SDXL: 2048), if it says
    size_bytes: int = 0
    data_sha256: str = ""  # hash of the tensor bytes after the header (lora.hashes: AutoV3)

    @property
    def short_hash(self) -> str:
        return self.sha256[:10]

    @property
    def autov3(self) -> str:
        """A1111's short hash of this LoRA (``Lora hashes`` in its infotext), Civitai's AutoV3."""
        return autov3(self.data_sha256)


# --- reading ------------------------------------------------------------------


def read_lora(path: str | Path, name: str | None = None) -> LoraFile:
    """Read and check a LoRA file; ``UnsafeFileError`` or ``LoraError`` with a one-line reason.

    1. the bytes must be a complete safetensors file (a pickle, HTML page, LFS
       pointer or truncated download under any name is refused before reading);
    2. every tensor must be finite;
    3. the keys must be a LoRA's, in the diffusers/PEFT or kohya layout.
    """
    path = Path(path)
    header = _readable(path, lambda: check_safetensors(path, what="LoRA"))
    tensors = _load_tensors(path)
    metadata = header_metadata(header)
    _check_finite(tensors, path)
    fmt = _detect_format(tensors, path)
    try:
        keys.check_matrices(tensors)
    except ValueError as e:
        raise LoraError(f"LoRA '{path.name}': {e}; the file is damaged or not a LoRA") from None
    ranks = keys.module_ranks(tensors, fmt)
    if not ranks:
        raise LoraError(f"LoRA '{path.name}' holds no LoRA down/up matrices; it is not a LoRA file")
    alphas, state_dict = _resolve_alphas(tensors, metadata, ranks, fmt, path)
    hashes = _readable(path, lambda: file_hashes(path))
    return LoraFile(
        name=check_adapter_name(name) if name is not None else adapter_name_for(path),
        path=path,
        sha256=hashes.sha256,
        format=fmt,
        state_dict=state_dict,
        metadata=metadata,
        trigger_words=trigger_words_from(metadata),
        rank=keys.most_common(list(ranks.values())),
        alpha=keys.most_common(list(alphas.values())),
        targets=_count_targets(ranks, fmt),
        tensors=tensors,
        module_alphas=alphas,
        text_width=keys.text_width(tensors),
        size_bytes=path.stat().st_size,
        data_sha256=hashes.data_sha256,
    )


def _readable(path: Path, read: Callable[[], Any]) -> Any:
    """``read()``, with an OS error (permission denied, a folder) as one line naming the file."""
    try:
        return read()
    except OSError as e:
        raise UnsafeFileError(f"LoRA '{path}' could not be read: {e.strerror or e}") from None


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except safetensors.SafetensorError as e:
        raise UnsafeFileError(
            f"LoRA '{path}' is not a readable safetensors file ({_one_line(e)}); download it again"
        ) from e
    except OSError as e:
        raise UnsafeFileError(f"LoRA '{path}' could not be read: {e.strerror or e}") from e


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            what = "NaN" if bool(torch.isnan(t).any()) else "infinite"
            raise LoraError(
                f"LoRA '{path.name}' has {what} values in '{key}'; its training diverged, "
                "use an earlier checkpoint"
            )


def _detect_format(tensors: dict[str, torch.Tensor], path: Path) -> str:
    names = list(tensors)
    family = keys.unsupported_family(names)
    if family is not None:  # before the layout: a DoRA file also has every key a LoRA has
        raise LoraError(
            f"'{path.name}' is {family}; not supported yet: use a plain LoRA (kohya 'networks.lora' "
            "or diffusers/PEFT without DoRA)"
        )
    fmt = keys.detect_format(names)
    if fmt is not None:
        return fmt
    if keys.looks_like_full_model(names):
        raise LoraError(
            f"'{path.name}' is a full model checkpoint, not a LoRA; use it as the base model"
        )
    first = next((k for k in names if "lora" not in k), names[0] if names else "none")
    raise LoraError(
        f"LoRA '{path.name}' is in no layout we read (diffusers/PEFT or kohya); "
        f"first odd key: '{first}'"
    )


def _resolve_alphas(
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    ranks: dict[str, int],
    fmt: str,
    path: Path,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Alpha per module, and the state dict to load (diffusers format: alpha folded into B)."""
    try:
        if fmt == keys.KOHYA:  # diffusers' converter reads .alpha itself
            return keys.kohya_alphas(tensors, ranks), tensors
        configs = keys.peft_adapter_config(metadata)
        alphas, factors = keys.diffusers_alphas(ranks, configs)
    except (ValueError, TypeError, AttributeError, RecursionError) as e:
        where = "" if fmt == keys.KOHYA else f" in its '{keys.PEFT_METADATA_KEY}' metadata"
        raise LoraError(f"LoRA '{path.name}' has a bad alpha{where}: {_one_line(e)}") from None
    uses_dora = any(c.get("use_dora") for c in configs.values())
    if uses_dora and any(f != 1.0 for f in factors.values()):
        raise LoraError(
            f"LoRA '{path.name}' is a DoRA with alpha != rank, which we cannot load exactly"
        )
    return alphas, keys.fold_factors(tensors, factors)


def _count_targets(ranks: dict[str, int], fmt: str) -> dict[str, int]:
    counts = {"unet": 0, "text_encoder": 0, "text_encoder_2": 0}
    for module in ranks:
        component = keys.component_of(module, fmt)
        counts[component] = counts.get(component, 0) + 1
    return counts


def adapter_name_for(path: str | Path) -> str:
    """The default adapter name: the file stem in lower case, other characters as '_'."""
    name = re.sub(r"[^a-z0-9_]+", "_", Path(path).stem.lower()).strip("_")
    name = re.sub(r"_+", "_", name)
    if not name or name[0].isdigit():
        name = f"lora_{name}".rstrip("_")
    return name


def check_adapter_name(name: str) -> str:
    # PEFT puts the adapter name into module paths, so a '.' (or space) breaks loading.
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,63}", name or ""):
        raise LoraError(
            f"LoRA name {name!r} may only contain a-z, 0-9 and '_' (and not start with a digit)"
        )
    return name


# --- trigger words ------------------------------------------------------------


def trigger_words_metadata(words: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The metadata entry our trainer writes so that ``read_lora`` offers ``words``."""
    return {
        TRIGGER_WORDS_KEY: json.dumps([w.strip() for w in words if w.strip()], ensure_ascii=False)
    }


def trigger_words_from(metadata: dict[str, str]) -> tuple[str, ...]:
    """Trigger words: our key, else ModelSpec's trigger phrase, else kohya's most frequent tags."""
    words = (
        _parse_word_list(metadata.get(TRIGGER_WORDS_KEY))
        or _parse_word_list(metadata.get("modelspec.trigger_phrase"))
        or _parse_word_list(metadata.get("ss_trigger_words"))
        or _top_kohya_tags(metadata.get("ss_tag_frequency"))
    )
    return tuple(dict.fromkeys(words))


def _parse_word_list(raw: str | None) -> list[str]:
    if not raw or not raw.strip():
        return []
    text = raw.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError):  # not JSON after all, or crafted to be too deep
            items = None
        if isinstance(items, list):
            return [str(w).strip() for w in items if str(w).strip()]
    return [w.strip() for w in text.split(",") if w.strip()]


def _top_kohya_tags(raw: str | None) -> list[str]:
    """Tags that occur in the most captions: a kohya LoRA's trigger is in every caption."""
    try:
        per_folder = json.loads(raw) if raw else {}
        totals: dict[str, int] = {}
        for tags in per_folder.values():
            for tag, count in tags.items():
                totals[tag.strip()] = totals.get(tag.strip(), 0) + int(count)
    except (AttributeError, TypeError, ValueError, RecursionError):
        return []  # only a suggestion; a malformed training log must not block loading
    if not totals:
        return []
    top = max(totals.values())
    return [t for t, c in totals.items() if c == top and t][:MAX_SUGGESTED_TAGS]


# --- fitting the base model -----------------------------------------------------


def check_fits(pipe: Any, lora: LoraFile) -> None:
    """Raise ``LoraError`` (one line) unless each module of ``lora`` is in ``pipe`` with its shape.

    Checked before diffusers sees the LoRA, whose own failure is a long
    ``size mismatch`` error or, for keys that match nothing, silence.
    """
    _check_text_width(pipe, lora)
    modules, unmatched = _lora_modules(pipe, lora)
    total = sum(len(m) for m in modules.values()) + len(unmatched)
    matched, misfits = 0, []
    for component, by_module in modules.items():
        layers = dict(getattr(pipe, component).named_modules())
        for module, mats in by_module.items():
            problem = _module_misfit(layers.get(module), mats)
            if problem is None:
                matched += 1
            elif problem == "missing":
                unmatched.append(f"{component}.{module}")
            else:
                misfits.append(f"{component}.{module} ({problem})")
    _raise_if_misfit(lora, total, matched, unmatched, misfits)


def _check_text_width(pipe: Any, lora: LoraFile) -> None:
    base = getattr(pipe.unet.config, "cross_attention_dim", None)
    if lora.text_width is None or base is None or lora.text_width == base:
        return
    raise LoraError(
        f"LoRA '{lora.path.name}' was made for {_family(lora.text_width)}, "
        f"this base model is {_family(base)}; use a LoRA trained for this base model"
    )


def _family(width: int) -> str:
    family = TEXT_WIDTH_FAMILIES.get(width)
    return f"{family} (text width {width})" if family else f"a model with text width {width}"


def _lora_modules(pipe: Any, lora: LoraFile) -> tuple[dict[str, dict[str, dict]], list[str]]:
    """The LoRA's modules per pipeline component, named as PEFT will look for them."""
    components = [c for c in pipe._lora_loadable_modules if getattr(pipe, c, None) is not None]
    state_dict = _as_diffusers_keys(pipe, lora)
    parts, stray = keys.split_components(state_dict, components)
    modules: dict[str, dict[str, dict]] = {}
    for component, sd in parts.items():
        try:
            peft_sd = keys.to_peft_keys(component, sd)
        except ValueError as e:  # diffusers' loader would stop at the same conversion
            raise LoraError(
                f"LoRA '{lora.path.name}': diffusers cannot read its {component} keys "
                f"({_one_line(e)})"
            ) from e
        if component in keys.TEXT_COMPONENTS:  # transformers >= 5.6 flattens CLIPTextModel
            wrapped = hasattr(getattr(pipe, component), "text_model")
            peft_sd = keys.text_model_spelling(peft_sd, wrapped)
        modules[component], odd = keys.group_modules(peft_sd)
        stray += [f"{component}.{k}" for k in odd]
    return modules, sorted({keys.module_of(k, keys.DIFFUSERS) for k in stray})


def _as_diffusers_keys(pipe: Any, lora: LoraFile) -> dict[str, torch.Tensor]:
    if lora.format != keys.KOHYA:
        return lora.state_dict
    try:  # diffusers' own kohya converter, the one load_lora_weights runs
        converted, _alphas = pipe.lora_state_dict(
            dict(lora.state_dict), unet_config=pipe.unet.config
        )
    except (ValueError, KeyError, IndexError) as e:
        raise LoraError(
            f"LoRA '{lora.path.name}' uses kohya keys diffusers cannot convert ({_one_line(e)}); "
            "LyCORIS/LoHa variants are not supported"
        ) from e
    return converted


def _module_misfit(layer: torch.nn.Module | None, mats: dict[str, torch.Tensor]) -> str | None:
    """None when the LoRA matrices fit ``layer``; else 'missing' or what differs."""
    layer = getattr(layer, "base_layer", layer)  # already wrapped by PEFT for another adapter
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
        return "missing"
    down, up = mats.get("A"), mats.get("B")
    if down is None or up is None:
        return "down or up matrix missing"
    if down.shape[0] != up.shape[1]:
        return f"down rank {down.shape[0]} != up rank {up.shape[1]}"
    if down.shape[1] != weight.shape[1] or up.shape[0] != weight.shape[0]:
        return f"LoRA {down.shape[1]}->{up.shape[0]}, model {weight.shape[1]}->{weight.shape[0]}"
    return None


def _raise_if_misfit(
    lora: LoraFile, total: int, matched: int, unmatched: list[str], misfits: list[str]
) -> None:
    label = f"LoRA '{lora.path.name}'"
    if misfits:
        raise LoraError(
            f"{label} does not fit this model: {len(misfits)} of {total} modules have other sizes "
            f"(first: {misfits[0]}); is it for another base model?"
        )
    if matched == 0:
        first = unmatched[0] if unmatched else "none"
        raise LoraError(
            f"{label} matches no module of this model "
            f"(0 of {total} modules; first unmatched: {first})"
        )
    if unmatched:
        raise LoraError(
            f"{label}: only {matched} of {total} modules match this model "
            f"(first unmatched: {unmatched[0]}); is it for another base model?"
        )


# --- attaching and switching ---------------------------------------------------


def loaded_adapters(pipe: Any) -> list[str]:
    """Names of the LoRAs attached to ``pipe`` (any component), in load order."""
    lists = pipe.get_list_adapters() if hasattr(pipe, "get_list_adapters") else {}
    return list(dict.fromkeys(n for names in lists.values() for n in names))


def attach_lora(pipe: Any, lora: LoraFile) -> None:
    """Check the fit, then load ``lora`` into ``pipe`` as adapter ``lora.name`` (not yet active:
    ``apply_adapter_state`` decides that per job)."""
    if lora.name in loaded_adapters(pipe):
        raise LoraError(
            f"a LoRA named '{lora.name}' is already attached; detach it first or load "
            f"'{lora.path.name}' under another name"
        )
    check_fits(pipe, lora)
    state_dict = dict(lora.state_dict)
    if lora.format != keys.KOHYA:  # our older files lack text_model. for the first encoder
        state_dict = keys.with_text_model_level(state_dict)
    try:
        pipe.load_lora_weights(state_dict, adapter_name=lora.name)
    except (ValueError, RuntimeError, KeyError, TypeError) as e:
        _forget_partial(pipe, lora.name)
        raise LoraError(f"LoRA '{lora.path.name}' could not be attached: {_one_line(e)}") from e


def _forget_partial(pipe: Any, name: str) -> None:
    """A failed load may have attached the adapter to some components already; remove it."""
    if name in loaded_adapters(pipe):
        pipe.delete_adapters(name)


def detach_lora(pipe: Any, name: str) -> None:
    """Remove adapter ``name`` and its weights from ``pipe``."""
    if name not in loaded_adapters(pipe):
        raise LoraError(f"no LoRA named '{name}' is attached (attached: {_names(pipe)})")
    pipe.delete_adapters(name)


def apply_adapter_state(pipe: Any, weights: dict[str, float]) -> None:
    """Make exactly the LoRAs in ``weights`` active, each at its weight; the others are off.

    ``{}`` or all weights 0 switches LoRA off (PEFT's ``disable_adapters``: each
    wrapped layer returns its base layer's output, so images equal the base
    model's exactly, and nothing is reloaded). Call it at the start of every job:
    the adapter state belongs to the shared pipeline, not to the request.
    """
    attached = loaded_adapters(pipe)
    for name, weight in weights.items():
        if name not in attached:
            raise LoraError(f"no LoRA named '{name}' is attached (attached: {_names(pipe)})")
        if not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise LoraError(f"weight of LoRA '{name}' must be a finite number, got {weight!r}")
    active = {name: float(w) for name, w in weights.items() if w != 0}
    if not attached:
        return  # nothing attached: the pipeline is the base model
    if not active:
        pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters(list(active), list(active.values()))


def _names(pipe: Any) -> str:
    return ", ".join(loaded_adapters(pipe)) or "none"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."


# --- export -------------------------------------------------------------------


def export_kohya(
    lora: LoraFile | str | Path,
    out_path: str | Path,
    metadata: dict[str, str] | None = None,
    unet: Any = None,
) -> Path:
    """Write ``lora`` as kohya's sd-scripts writes an SDXL LoRA (``lora.kohya``): SGM block
    names (``lora_unet_input_blocks_4_1_…``), ``lora_te1_``/``lora_te2_``, an ``.alpha`` per
    module, and kohya's ``ss_*``/``sshs_*`` metadata, with ``metadata`` added.

    ``unet`` is the base UNet's config (``pipe.unet.config``), which numbers the SGM
    blocks; None means SDXL 1.0's. Alpha per module is kept (also when alpha != rank),
    so A1111, ComfyUI and diffusers' kohya reader apply the same strength as the
    original. The file is written to a temporary name and renamed, so ``out_path``
    is never half-written.
    """
    from .kohya import kohya_metadata, to_kohya_tensors

    if not isinstance(lora, LoraFile):
        lora = read_lora(lora)
    extra = dict(metadata or {})
    bad = [k for k, v in extra.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise LoraError(f"metadata for '{out_path}' must map text to text; bad entry: {bad[0]!r}")
    tensors = to_kohya_tensors(lora, unet)
    return write_safetensors_atomic(tensors, Path(out_path), kohya_metadata(lora, tensors, extra))


def add_lora_metadata(path: str | Path, metadata: dict[str, str]) -> Path:
    """Add ``metadata`` (e.g. ``trigger_words_metadata(...)``) to a LoRA file, keeping its own.

    diffusers' ``save_lora_weights`` writes only its PEFT config into the
    header; the trainer calls this afterwards. The file is replaced atomically.
    """
    path = Path(path)
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise LoraError(f"metadata for '{path}' must map text to text; bad entry: {bad[0]!r}")
    header = check_safetensors(path, what="LoRA")
    existing = {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
    return write_safetensors_atomic(_load_tensors(path), path, {**existing, **metadata})


def write_safetensors_atomic(
    tensors: dict[str, torch.Tensor], out_path: Path, metadata: dict[str, str]
) -> Path:
    """Save ``tensors`` with ``metadata`` as ``out_path``, which is replaced whole or not at all."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: t.detach().contiguous() for k, t in tensors.items()}
    with atomic_path(out_path) as tmp:
        safetensors.torch.save_file(tensors, tmp, metadata=metadata)
    return out_path
