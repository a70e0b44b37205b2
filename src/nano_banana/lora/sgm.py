"""diffusers UNet module names -> the original (SGM) UNet's, which kohya's SDXL LoRAs use.

The numbering is derived from the UNet's config (``UNetBlocks``), so any
SDXL-shaped UNet, including the tiny test models, gets the names its own SGM
twin has:

* ``input_blocks``: 0 is ``conv_in``; then, level by level, one entry per layer
  (``.0`` the ResNet, ``.1`` its transformer) and one for the level's
  downsampler (``.0.op``), except after the last level;
* ``middle_block``: 0 ResNet, 1 transformer, 2 ResNet;
* ``output_blocks``: per up level, ``layers + 1`` entries (``.0`` ResNet, ``.1``
  transformer), the last one also holding the upsampler (``.1.conv`` or, after
  a transformer, ``.2.conv``).

For SDXL 1.0: ``down_blocks.1.attentions.0`` is ``input_blocks.4.1``,
``mid_block.attentions.0`` is ``middle_block.1``, ``up_blocks.0.attentions.0``
is ``output_blocks.0.1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LoraError

# diffusers ResnetBlock2D part -> SGM ResBlock part
RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
# UNet modules outside the three block lists
TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


# --- the UNet's shape, from its config ---------------------------------------------


@dataclass(frozen=True)
class UNetBlocks:
    """The parts of a diffusers UNet config that decide SGM's block numbering (per level)."""

    block_out_channels: tuple[int, ...]  # one per level
    layers_per_block: tuple[int, ...]  # ResNets per down level (an up level has one more)
    transformer_layers_per_block: tuple[int, ...]  # transformer depth per down level
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    up_transformer_layers: tuple[int, ...] | None = None  # None: the down depths reversed
    mid_block: bool = True

    def __post_init__(self) -> None:
        levels = len(self.block_out_channels)
        sizes = (
            len(self.layers_per_block),
            len(self.transformer_layers_per_block),
            len(self.down_block_types),
            len(self.up_block_types),
        )
        if set(sizes) != {levels}:
            raise LoraError(f"UNet config has {levels} levels but per-level settings of {sizes}")

    @classmethod
    def from_config(cls, config: UNetBlocks | Mapping[str, Any]) -> UNetBlocks:
        """From a diffusers ``UNet2DConditionModel`` config (``unet.config`` or its dict)."""
        if isinstance(config, UNetBlocks):
            return config
        levels = len(config["block_out_channels"])
        up_depth = config.get("reverse_transformer_layers_per_block")
        return cls(
            block_out_channels=tuple(config["block_out_channels"]),
            layers_per_block=_per_level(config["layers_per_block"], levels),
            transformer_layers_per_block=_per_level(
                config.get("transformer_layers_per_block", 1), levels
            ),
            down_block_types=tuple(config["down_block_types"]),
            up_block_types=tuple(config["up_block_types"]),
            up_transformer_layers=None if up_depth is None else _per_level(up_depth, levels),
            mid_block=config.get("mid_block_type", "UNetMidBlock2DCrossAttn") is not None,
        )


def _per_level(value: Any, levels: int) -> tuple[int, ...]:
    """An int for every level, or one per level (a per-layer list counts by its deepest layer)."""
    if isinstance(value, int):
        return (value,) * levels
    return tuple(max(v) if isinstance(v, (list, tuple)) else int(v) for v in value)


# SDXL 1.0 base (and every fine-tune of it): the UNet when the caller names none.
SDXL_UNET = UNetBlocks(
    block_out_channels=(320, 640, 1280),
    layers_per_block=(2, 2, 2),
    transformer_layers_per_block=(1, 2, 10),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
)


@dataclass(frozen=True)
class SgmBlock:
    """Where a diffusers block lives in SGM, and how its inner modules are renamed."""

    name: str  # e.g. "input_blocks.4.1"
    kind: str  # "resnet" | "attention" | "downsampler" | "upsampler"
    channels: int  # the block's output width: every adapted layer in it reads or writes it
    depth: int = 0  # transformer blocks inside an attention


def sgm_blocks(blocks: UNetBlocks) -> dict[str, SgmBlock]:
    """{diffusers block path: its SGM block}, e.g. ``down_blocks.1.attentions.0 -> input_blocks.4.1``."""
    table: dict[str, SgmBlock] = {}
    table.update(_input_blocks(blocks))
    if blocks.mid_block:
        depth, width = blocks.transformer_layers_per_block[-1], blocks.block_out_channels[-1]
        table["mid_block.resnets.0"] = SgmBlock("middle_block.0", "resnet", width)
        table["mid_block.attentions.0"] = SgmBlock("middle_block.1", "attention", width, depth)
        table["mid_block.resnets.1"] = SgmBlock("middle_block.2", "resnet", width)
    table.update(_output_blocks(blocks))
    return table


def _input_blocks(blocks: UNetBlocks) -> dict[str, SgmBlock]:
    table, index = {}, 1  # input_blocks.0 is conv_in
    levels = len(blocks.down_block_types)
    for level, kind in enumerate(blocks.down_block_types):
        prefix, width = f"down_blocks.{level}", blocks.block_out_channels[level]
        depth = blocks.transformer_layers_per_block[level]
        for layer in range(blocks.layers_per_block[level]):
            table[f"{prefix}.resnets.{layer}"] = SgmBlock(
                f"input_blocks.{index}.0", "resnet", width
            )
            if "Attn" in kind:
                table[f"{prefix}.attentions.{layer}"] = SgmBlock(
                    f"input_blocks.{index}.1", "attention", width, depth
                )
            index += 1
        if level < levels - 1:  # diffusers: every level but the last halves the size
            table[f"{prefix}.downsamplers.0"] = SgmBlock(
                f"input_blocks.{index}.0", "downsampler", width
            )
            index += 1
    return table


def _output_blocks(blocks: UNetBlocks) -> dict[str, SgmBlock]:
    table, index = {}, 0
    layers, widths = blocks.layers_per_block[::-1], blocks.block_out_channels[::-1]
    depths = blocks.up_transformer_layers or blocks.transformer_layers_per_block[::-1]
    levels = len(blocks.up_block_types)
    for level, kind in enumerate(blocks.up_block_types):
        prefix, width, attention = f"up_blocks.{level}", widths[level], "Attn" in kind
        for layer in range(layers[level] + 1):
            table[f"{prefix}.resnets.{layer}"] = SgmBlock(
                f"output_blocks.{index}.0", "resnet", width
            )
            if attention:
                table[f"{prefix}.attentions.{layer}"] = SgmBlock(
                    f"output_blocks.{index}.1", "attention", width, depths[level]
                )
            index += 1
        if level < levels - 1:  # sits in the level's last entry, after its transformer
            table[f"{prefix}.upsamplers.0"] = SgmBlock(
                f"output_blocks.{index - 1}.{2 if attention else 1}", "upsampler", width
            )
    return table


def sgm_module_name(module: str, table: Mapping[str, SgmBlock]) -> str:
    """The SGM name of a diffusers UNet module (``sgm_blocks`` gives ``table``).

    Raises ``LoraError`` naming the module when this UNet has no such module.
    """
    return locate(module, table)[1]


def locate(module: str, table: Mapping[str, SgmBlock]) -> tuple[SgmBlock | None, str]:
    """(the SGM block holding a diffusers UNet module, or None outside the blocks; its SGM name).

    Raises ``LoraError`` naming the module when this UNet has no such module.
    """
    if module in TOP_LEVEL:
        return None, TOP_LEVEL[module]
    parts = module.split(".")
    for cut in (4, 3):  # "down_blocks.1.attentions.0", "mid_block.attentions.0"
        block = table.get(".".join(parts[:cut])) if len(parts) > cut else None
        if block is not None and (renamed := _inner_name(block, parts[cut:])) is not None:
            return block, f"{block.name}.{renamed}"
    raise LoraError(f"UNet module '{module}' has no place in this UNet's SGM layout")


def _inner_name(block: SgmBlock, inner: list[str]) -> str | None:
    """The rest of a module's name inside its SGM block; None when the block has no such part."""
    if block.kind == "resnet":
        return RESNET_PARTS.get(inner[0]) if len(inner) == 1 else None
    if block.kind in ("downsampler", "upsampler"):
        if inner != ["conv"]:
            return None
        return "op" if block.kind == "downsampler" else "conv"
    # an attention: SGM keeps diffusers' inner names; a transformer block must exist
    if inner[0] == "transformer_blocks" and not _in_depth(inner, block.depth):
        return None
    return ".".join(inner)


def _in_depth(inner: list[str], depth: int) -> bool:
    return len(inner) >= 3 and inner[1].isdigit() and int(inner[1]) < depth
