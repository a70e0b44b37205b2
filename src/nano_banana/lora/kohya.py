"""diffusers/PEFT LoRA -> kohya/A1111 layout, with each module's alpha kept.

Key renaming is diffusers' ``convert_state_dict_to_kohya``; it writes alpha =
rank for every module, so we put the true alpha back. Every export is read
back through diffusers' kohya reader and must name the same modules, so a file
we write is one that A1111-style and diffusers loaders both understand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import LoraError
from . import keys as keys

if TYPE_CHECKING:
    from .load import LoraFile


def to_kohya_tensors(lora: LoraFile) -> dict[str, torch.Tensor]:
    """The kohya-layout tensors of ``lora`` (unchanged if it already is kohya)."""
    if lora.format == keys.KOHYA:
        return dict(lora.tensors)
    modules = _source_modules(lora)
    out: dict[str, torch.Tensor] = {}
    for (component, module, file_module), mats in modules.items():
        out.update(_module_to_kohya(component, module, mats, lora.module_alphas.get(file_module)))
    _check_reads_back(out, {(c, m) for c, m, _ in modules}, lora)
    return out


def kohya_metadata(lora: LoraFile) -> dict[str, str]:
    """The source's metadata, minus diffusers' PEFT config, plus kohya's rank/alpha/trigger keys."""
    # diffusers refuses a file carrying both kohya .alpha keys and PEFT adapter metadata.
    meta = {k: v for k, v in lora.metadata.items() if k not in (keys.PEFT_METADATA_KEY, "format")}
    meta["format"] = "pt"
    if lora.rank is not None:
        meta["ss_network_dim"] = str(lora.rank)
    if lora.alpha is not None:
        meta["ss_network_alpha"] = f"{lora.alpha:g}"
    if lora.trigger_words and "modelspec.trigger_phrase" not in meta:
        meta["modelspec.trigger_phrase"] = ", ".join(lora.trigger_words)
    return meta


def _source_modules(lora: LoraFile) -> dict[tuple[str, str, str], dict[str, torch.Tensor]]:
    """{(component, module in kohya's naming base, module as in the file): {"A", "B"}}."""
    parts, stray = keys.split_components(lora.tensors, keys.COMPONENTS)
    if stray:
        raise LoraError(
            f"LoRA '{lora.path.name}' has keys of no SDXL component (e.g. '{stray[0]}')"
        )
    found = {}
    for component, sd in parts.items():
        modules, odd = keys.group_modules(keys.to_peft_keys(component, sd))
        if odd or any(k.endswith(("lora_B.bias", "lora_magnitude_vector")) for k in sd):
            raise LoraError(
                f"LoRA '{lora.path.name}' has bias or DoRA weights; kohya's layout cannot hold them"
            )
        for module, mats in modules.items():
            name = module
            if component.startswith("text_encoder") and not module.startswith("text_model."):
                name = f"text_model.{module}"  # kohya/A1111 spell CLIP layers with this prefix
            found[(component, name, f"{component}.{module}")] = mats
    return found


def _module_to_kohya(
    component: str, module: str, mats: dict[str, torch.Tensor], alpha: float | None
) -> dict[str, torch.Tensor]:
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    down, up = mats["A"], mats["B"]
    renamed = convert_state_dict_to_kohya(
        {f"{component}.{module}.lora_A.weight": down, f"{component}.{module}.lora_B.weight": up}
    )
    alpha = float(down.shape[0]) if alpha is None else alpha
    return {
        k: (torch.tensor(alpha, dtype=torch.float32) if k.endswith(".alpha") else t)
        for k, t in renamed.items()
    }


def _check_reads_back(
    kohya: dict[str, torch.Tensor], expected: set[tuple[str, str]], lora: LoraFile
) -> None:
    """Convert back with diffusers' kohya reader; it must find exactly our modules."""
    from diffusers import StableDiffusionXLPipeline

    converted, _alphas = StableDiffusionXLPipeline.lora_state_dict(dict(kohya))
    parts, _ = keys.split_components(converted, keys.COMPONENTS)
    found = set()
    for component, sd in parts.items():
        modules, _ = keys.group_modules(keys.to_peft_keys(component, sd))
        found |= {(component, m) for m in modules}
    strip = {(c, m.removeprefix("text_model.")) for c, m in expected}
    back = {(c, m.removeprefix("text_model.")) for c, m in found}
    lost = sorted(strip - back)
    if lost:
        raise LoraError(
            f"LoRA '{lora.path.name}': module '{'.'.join(lost[0])}' has no kohya spelling that "
            f"diffusers reads back ({len(lost)} such modules); keep it in the diffusers format"
        )
