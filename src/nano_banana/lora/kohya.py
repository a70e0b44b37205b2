"""diffusers/PEFT LoRA -> the file kohya's sd-scripts writes for SDXL, as A1111 and ComfyUI read it.

kohya trains SDXL on the original (SGM) UNet, so its LoRA keys name SGM's
modules: ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``, not
diffusers' ``down_blocks_1_attentions_0_…``; ``lora.sgm`` derives those names
from the base UNet's config.

Text encoders become ``lora_te1_`` / ``lora_te2_`` keys, each module gets its
``.alpha``, and the metadata carries what kohya writes (``ss_*``, the
``sshs_*`` hashes). Every export is read back through diffusers' kohya reader
with the same UNet config and must name exactly our modules.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import safetensors.torch
import torch

from ..errors import LoraError
from . import keys as keys
from .hashes import safetensors_bytes_hashes
from .sgm import SDXL_UNET, SgmBlock, UNetBlocks, locate, sgm_blocks

if TYPE_CHECKING:
    from .load import LoraFile

KOHYA_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}
SDXL_BASE_VERSION = "sdxl_base_v1-0"  # kohya's ss_base_model_version; A1111 files it under SDXL
NETWORK_MODULE = "networks.lora"  # kohya's plain LoRA (LoCon-style conv layers included)
SGM_IMPLEMENTATION = "https://github.com/Stability-AI/generative-models"  # ModelSpec, SGM keys
DEFAULT_DATASET = "nano_banana"  # ss_tag_frequency's folder name when the trainer gave none


# --- tensors ----------------------------------------------------------------------------


def to_kohya_tensors(
    lora: LoraFile, unet: UNetBlocks | Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """The kohya-layout tensors of ``lora`` (unchanged if it already is kohya).

    ``unet`` is the base UNet's config (``pipe.unet.config``); None means SDXL 1.0's.
    """
    if lora.format == keys.KOHYA:
        return dict(lora.tensors)
    blocks = UNetBlocks.from_config(unet) if unet is not None else SDXL_UNET
    table = sgm_blocks(blocks)
    modules = _source_modules(lora)
    out: dict[str, torch.Tensor] = {}
    for (component, module, file_module), mats in modules.items():
        try:
            name = kohya_module_name(component, module, table, mats)
        except LoraError as e:
            raise LoraError(f"LoRA '{lora.path.name}': {e}") from None
        alpha = lora.module_alphas.get(file_module)
        out.update(_kohya_entries(name, mats, alpha))
    _check_reads_back(out, {(c, m) for c, m, _ in modules}, lora, blocks)
    return out


def kohya_module_name(
    component: str,
    module: str,
    table: Mapping[str, SgmBlock],
    mats: Mapping[str, torch.Tensor] | None = None,
) -> str:
    """``lora_unet_input_blocks_4_1_…`` / ``lora_te1_text_model_…`` for a diffusers module.

    With its matrices (``mats``), a UNet module must also read or write its block's
    width: a LoRA of another UNet shape would otherwise get plausible wrong names.
    """
    name = module
    if component == "unet":
        block, name = locate(module, table)
        if block is not None and mats is not None:
            _check_width(module, block, mats)
    return KOHYA_PREFIX[component] + name.replace(".", "_")


def _check_width(module: str, block: SgmBlock, mats: Mapping[str, torch.Tensor]) -> None:
    reads, writes = int(mats["A"].shape[1]), int(mats["B"].shape[0])
    if block.channels not in (reads, writes):
        raise LoraError(
            f"module '{module}' maps {reads}->{writes} features, but that block of the UNet "
            f"config is {block.channels} wide; export with the base model's UNet config"
        )


def _kohya_entries(
    name: str, mats: dict[str, torch.Tensor], alpha: float | None
) -> dict[str, torch.Tensor]:
    down, up = mats["A"], mats["B"]
    alpha = float(down.shape[0]) if alpha is None else alpha  # no alpha: diffusers' alpha = rank
    return {
        f"{name}.lora_down.weight": down,
        f"{name}.lora_up.weight": up,
        f"{name}.alpha": torch.tensor(alpha, dtype=torch.float32),
    }


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


def _check_reads_back(
    kohya: dict[str, torch.Tensor],
    expected: set[tuple[str, str]],
    lora: LoraFile,
    blocks: UNetBlocks,
) -> None:
    """Convert back with diffusers' kohya reader; it must find exactly our modules."""
    from diffusers import StableDiffusionXLPipeline

    # diffusers' SGM mapper numbers blocks with one layer count for every level
    config = SimpleNamespace(layers_per_block=blocks.layers_per_block[0])
    try:
        if len(set(blocks.layers_per_block)) > 1:
            raise ValueError("levels with different layer counts")
        converted, _alphas = StableDiffusionXLPipeline.lora_state_dict(
            dict(kohya), unet_config=config
        )
    except (ValueError, KeyError, IndexError) as e:
        raise LoraError(
            f"LoRA '{lora.path.name}': diffusers cannot read back its kohya keys ({e}); "
            "keep it in the diffusers format"
        ) from None
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


# --- metadata ---------------------------------------------------------------------------


def kohya_metadata(
    lora: LoraFile, tensors: Mapping[str, torch.Tensor], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What kohya writes about a LoRA, for ``tensors`` (the kohya layout of ``lora``).

    The source's own metadata and ``extra`` (the trainer's ``ss_output_name`` …)
    stay, less diffusers' PEFT config: diffusers refuses a file with both kohya
    ``.alpha`` keys and PEFT adapter metadata. The network shape is measured on
    ``tensors``, and the hashes are taken last, over the final metadata.
    """
    meta = {k: v for k, v in lora.metadata.items() if k not in (keys.PEFT_METADATA_KEY, "format")}
    meta.update(extra or {})
    meta["format"] = "pt"
    meta.setdefault("ss_base_model_version", SDXL_BASE_VERSION)
    meta.setdefault("ss_network_module", NETWORK_MODULE)
    meta.setdefault("ss_v2", "False")
    meta.update(network_shape(tensors))
    if meta.get("modelspec.implementation") == "diffusers":
        meta["modelspec.implementation"] = SGM_IMPLEMENTATION  # the keys are SGM's now
    if lora.trigger_words:
        meta.setdefault("modelspec.trigger_phrase", ", ".join(lora.trigger_words))
        meta.setdefault("ss_tag_frequency", tag_frequency(lora, meta.get("ss_output_name")))
    return add_model_hashes(tensors, meta)


def network_shape(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``ss_network_dim`` / ``_alpha`` (linear and 1x1 layers), and ``ss_network_args`` holding
    ``conv_dim`` / ``conv_alpha`` when 3x3 convolutions are adapted, as kohya's LoCon does."""
    linear: list[tuple[int, float]] = []
    conv: list[tuple[int, float]] = []
    for key, down in tensors.items():
        if not key.endswith(".lora_down.weight"):
            continue
        module = key.removesuffix(".lora_down.weight")
        rank = int(down.shape[0])
        alpha = tensors.get(f"{module}.alpha")
        pair = (rank, float(alpha.item()) if alpha is not None else float(rank))
        is_conv3 = down.ndim == 4 and tuple(down.shape[2:]) != (1, 1)
        (conv if is_conv3 else linear).append(pair)
    dim, alpha = keys.most_common(linear or conv) or (0, 0.0)
    args: dict[str, str] = {}
    if conv:
        conv_dim, conv_alpha = keys.most_common(conv)
        args = {"conv_dim": str(conv_dim), "conv_alpha": f"{conv_alpha:g}"}
    return {
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha),
        "ss_network_args": json.dumps(args),
    }


def tag_frequency(lora: LoraFile, folder: str | None = None) -> str:
    """kohya's ``ss_tag_frequency``: the trigger words, each counted once per training image
    (they start every caption), under one dataset folder. A1111's LoRA tab offers them."""
    images = 1
    try:
        summary = json.loads(lora.metadata.get("nano_banana.dataset") or "{}")
        images = max(1, int(summary.get("images", 1)))
    except (ValueError, TypeError, AttributeError, RecursionError):
        pass  # only a count for display; a damaged summary must not block the export
    counts = Counter({word: images for word in lora.trigger_words})
    return json.dumps({folder or DEFAULT_DATASET: dict(counts)}, ensure_ascii=False)


def add_model_hashes(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> dict[str, str]:
    """``metadata`` plus kohya's ``sshs_model_hash`` (the AutoV3 digest A1111 names the LoRA
    by) and ``sshs_legacy_hash``.

    Computed as kohya does, over the file serialized with its ``ss_*`` metadata
    only: the model hash covers the tensor bytes after the header, which no
    metadata changes, so it equals the written file's AutoV3.
    """
    training_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    blob = safetensors.torch.save(
        {k: t.detach().contiguous() for k, t in tensors.items()}, metadata=training_only
    )
    model_hash, legacy_hash = safetensors_bytes_hashes(blob)
    return {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy_hash}
