"""LoRA state-dict keys: which format a file is in, which module each key adapts, and its alpha.

Pure functions over ``{key: tensor}`` dicts, shared by reading and fit checking
(``lora.load``) and the kohya exporter (``lora.kohya``). Conversions between
formats are diffusers' own (``diffusers.utils.state_dict_utils``); this module
only groups their output by module.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

DIFFUSERS, KOHYA = "diffusers", "kohya"
TEXT_COMPONENTS = ("text_encoder", "text_encoder_2")
COMPONENTS = ("unet", *TEXT_COMPONENTS)  # SDXL's LoRA-loadable parts
KOHYA_PREFIXES = {
    "lora_unet_": "unet",
    "lora_te_": "text_encoder",
    "lora_te1_": "text_encoder",
    "lora_te2_": "text_encoder_2",
}
# Keys of a whole Stable Diffusion checkpoint or UNet (LDM/SGM or diffusers layout), not a LoRA.
FULL_MODEL_PREFIXES = (
    "model.diffusion_model.",
    "first_stage_model.",
    "cond_stage_model.",
    "conditioner.",
    "unet.conv_in.weight",
    "down_blocks.0.resnets.0.conv1.weight",
)
# Where diffusers' save_lora_weights(..., unet_lora_adapter_metadata=) puts the LoraConfig.
PEFT_METADATA_KEY = "lora_adapter_metadata"


# LoRA-family formats we recognise but do not apply, by a key suffix only they write.
# LyCORIS LoHa (Hadamard product of two low-rank pairs) and LoKr (Kronecker product) need their
# own layers; DoRA adds a magnitude vector per module that a plain LoRA load would drop.
FAMILY_MARKERS = (
    ("a LyCORIS LoHa file", (".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b")),
    ("a LyCORIS LoKr file", (".lokr_w1", ".lokr_w2", ".lokr_w1_a", ".lokr_w2_a")),
    ("a DoRA file (LoRA with per-module magnitudes)", (".dora_scale", "lora_magnitude_vector")),
)


def unsupported_family(keys: list[str]) -> str | None:
    """What LoRA-family format ``keys`` are, when it is one we refuse by name; else None."""
    for name, markers in FAMILY_MARKERS:
        if any(marker in key for key in keys for marker in markers):
            return name
    return None


def detect_format(keys: list[str]) -> str | None:
    """``"kohya"`` or ``"diffusers"`` from the key names, or None when the keys are not a LoRA's."""
    kohya = [k.startswith(tuple(KOHYA_PREFIXES)) for k in keys]
    if keys and all(kohya):
        return KOHYA
    if any(kohya):
        return None  # a mix: neither loader reads it
    if keys and all("lora" in k for k in keys):
        return DIFFUSERS  # PEFT (lora_A/lora_B) or the older diffusers spellings (to_q_lora.down)
    return None


def looks_like_full_model(keys: list[str]) -> bool:
    return any(k.startswith(FULL_MODEL_PREFIXES) for k in keys)


def module_of(key: str, fmt: str) -> str:
    """The adapted module a key belongs to, spelled as in the file (with its component prefix)."""
    if fmt == KOHYA:
        return key.split(".", 1)[0]
    for marker in (".lora_", ".lora.", "_lora."):  # PEFT, old diffusers, old diffusers attn procs
        if marker in key:
            return key.split(marker, 1)[0]
    return key.rsplit(".", 1)[0]


def component_of(module: str, fmt: str) -> str:
    if fmt == KOHYA:
        return next(c for p, c in KOHYA_PREFIXES.items() if module.startswith(p))
    return module.split(".", 1)[0]


def is_up_weight(key: str) -> bool:
    """The LoRA 'B'/'up' matrix (out x rank) in any of the three spellings."""
    return key.endswith(("lora_B.weight", "lora_up.weight", "lora.up.weight", "_lora.up.weight"))


def is_down_weight(key: str) -> bool:
    """The LoRA 'A'/'down' matrix (rank x in) in any of the three spellings."""
    return key.endswith(
        ("lora_A.weight", "lora_down.weight", "lora.down.weight", "_lora.down.weight")
    )


def module_ranks(tensors: dict[str, torch.Tensor], fmt: str) -> dict[str, int]:
    """Rank of each module, from its down matrix (``check_matrices`` first)."""
    return {module_of(k, fmt): int(t.shape[0]) for k, t in tensors.items() if is_down_weight(k)}


def check_matrices(tensors: dict[str, torch.Tensor]) -> None:
    """Every down and up weight is a non-empty matrix: 2-D (linear layers) or 4-D (convolutions).

    Raises ``ValueError`` naming the first key that is not; a crafted file's 0-D or empty
    tensor would otherwise fail deep inside the shape checks, or divide by a rank of 0.
    """
    for key, t in tensors.items():
        if not (is_down_weight(key) or is_up_weight(key)):
            continue
        if t.ndim not in (2, 4):
            raise ValueError(f"'{key}' is a {t.ndim}-D tensor, not a LoRA matrix")
        if t.numel() == 0:
            raise ValueError(f"'{key}' is empty (shape {tuple(t.shape)})")


def text_width(tensors: dict[str, torch.Tensor]) -> int | None:
    """Text width the LoRA's cross-attention keys read (SD 1.5: 768, SDXL: 2048), if it has any."""
    for key, t in tensors.items():
        if (
            "attn2" in key
            and ("to_k" in key or "to_v" in key)
            and is_down_weight(key)
            and t.ndim == 2
        ):
            return int(t.shape[1])
    return None


def most_common(values: list[Any]) -> Any:
    return Counter(values).most_common(1)[0][0] if values else None


# --- alphas -----------------------------------------------------------------


def kohya_alphas(tensors: dict[str, torch.Tensor], ranks: dict[str, int]) -> dict[str, float]:
    """kohya stores one ``<module>.alpha`` scalar per module; a missing one means alpha = rank.

    Raises ``ValueError`` naming the key of an alpha that is not one number.
    """
    alphas = {}
    for module, rank in ranks.items():
        key = f"{module}.alpha"
        alpha = tensors.get(key)
        if alpha is None:
            alphas[module] = float(rank)
        elif alpha.numel() != 1:
            raise ValueError(f"'{key}' should be one number, but has shape {tuple(alpha.shape)}")
        else:
            alphas[module] = float(alpha.item())
    return alphas


def peft_adapter_config(metadata: dict[str, str]) -> dict[str, dict[str, Any]]:
    """diffusers' packed ``LoraConfig`` per component ({"unet": {"r": 4, "lora_alpha": 8, ...}})."""
    raw = metadata.get(PEFT_METADATA_KEY)
    if not raw:
        return {}
    packed = json.loads(raw)  # ValueError (bad JSON) and RecursionError are the caller's
    if not isinstance(packed, dict):
        raise ValueError("not a JSON object")
    configs: dict[str, dict[str, Any]] = {}
    for key, value in packed.items():
        component, _, field_name = key.partition(".")
        configs.setdefault(component, {})[field_name] = value
    return configs


def diffusers_alphas(
    ranks: dict[str, int], configs: dict[str, dict[str, Any]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Alpha of each module, and the factor PEFT scales its output by (alpha/r or alpha/sqrt(r)).

    Without adapter metadata diffusers assumes alpha = rank (factor 1), and so do we.
    Raises ``ValueError`` naming the setting when an alpha is not a finite number.
    """
    from peft.utils.other import get_pattern_key

    alphas, factors = {}, {}
    for module, rank in ranks.items():
        component, _, name = module.partition(".")
        config = configs.get(component)
        if not config:
            alphas[module], factors[module] = float(rank), 1.0
            continue
        pattern = config.get("alpha_pattern") or {}
        if not isinstance(pattern, dict):
            raise ValueError(f"'{component}.alpha_pattern' is not a table of alphas")
        key = get_pattern_key(list(pattern), name)
        if key in pattern:
            alpha = _alpha_number(pattern[key], f"{component}.alpha_pattern[{key!r}]")
        else:
            alpha = _alpha_number(config.get("lora_alpha", rank), f"{component}.lora_alpha")
        root = math.sqrt(rank) if config.get("use_rslora") else rank
        alphas[module], factors[module] = alpha, alpha / root
    return alphas, factors


def _alpha_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} should be a finite number, got {value!r:.40}")
    return float(value)


def fold_factors(
    tensors: dict[str, torch.Tensor], factors: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Multiply each module's up matrix (and bias) by its alpha factor, so alpha = rank afterwards.

    diffusers' ``load_lora_weights`` ignores adapter metadata when given a state
    dict (it only reads it from files), and would then run the LoRA with
    alpha = rank. Folding the factor into B gives the same product B·A·alpha/r.
    """
    out = dict(tensors)
    for key, t in tensors.items():
        factor = factors.get(module_of(key, DIFFUSERS), 1.0)
        if factor != 1.0 and (is_up_weight(key) or key.endswith("lora_B.bias")):
            out[key] = (t.to(torch.float32) * factor).to(t.dtype)
    return out


# --- CLIP's text_model level ------------------------------------------------------

TEXT_MODEL = "text_model."  # transformers' CLIPTextModel wrapper level in module names


def text_model_spelling(sd: dict[str, torch.Tensor], wrapped: bool) -> dict[str, torch.Tensor]:
    """One text encoder's LoRA keys (component prefix removed) with transformers' ``text_model.``
    level when ``wrapped``, without it otherwise.

    diffusers' SDXL LoRAs spell it (``text_encoder.text_model.encoder.layers...``), and so
    do kohya's; transformers >= 5.6 flattens ``CLIPTextModel`` (not ``...WithProjection``),
    so PEFT's state dict of SDXL's first encoder lacks it. Files spelled either way read.
    """
    if wrapped:
        return {k if k.startswith(TEXT_MODEL) else TEXT_MODEL + k: v for k, v in sd.items()}
    return {k.removeprefix(TEXT_MODEL): v for k, v in sd.items()}


def with_text_model_level(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers-format LoRA's keys with every text-encoder key spelled as diffusers writes it
    (``text_encoder.text_model.…``); diffusers drops the level again for a flattened encoder."""
    out = {}
    for key, t in state_dict.items():
        component, _, rest = key.partition(".")
        if component in TEXT_COMPONENTS and rest and not rest.startswith(TEXT_MODEL):
            key = f"{component}.{TEXT_MODEL}{rest}"
        out[key] = t
    return out


# --- grouping by module, in PEFT spelling --------------------------------------


def split_components(
    state_dict: dict[str, torch.Tensor], components: Sequence[str]
) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """Keys per component with the prefix removed; keys under no component are returned apart."""
    parts: dict[str, dict[str, torch.Tensor]] = {c: {} for c in components}
    stray = []
    for key, t in state_dict.items():
        component, _, rest = key.partition(".")
        if component in parts and rest:
            parts[component][rest] = t
        else:
            stray.append(key)
    return parts, stray


def to_peft_keys(component: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keys diffusers hands to PEFT for this component (the same conversions it applies)."""
    from diffusers.utils.state_dict_utils import (
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    if not sd:
        return sd
    if component.startswith("text_encoder"):
        return convert_state_dict_to_peft(convert_state_dict_to_diffusers(sd))
    if "lora_A" in next(iter(sd)):
        return sd
    return convert_unet_state_dict_to_peft(sd)


def group_modules(
    peft_sd: dict[str, torch.Tensor],
) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """{module: {"A": down, "B": up}} from PEFT keys; keys of no LoRA matrix come back apart."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    odd = []
    for key, t in peft_sd.items():
        module, sep, part = key.rpartition(".lora_")
        if sep and part in ("A.weight", "B.weight"):
            modules.setdefault(module, {})[part[0]] = t
        elif sep and part in ("B.bias", "magnitude_vector"):
            continue  # travel with their module; shapes are checked through A and B
        else:
            odd.append(key)
    return modules, odd
