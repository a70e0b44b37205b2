"""Fused LoRA: the active LoRAs folded into the base weights, so a LoRA costs nothing per step.

``LoraFuser.apply(weights)`` sets ``W = W0 + sum_i delta_i`` at exactly these
strengths, always recomputed from a pristine copy of ``W0`` (never by
subtracting an old delta), and takes PEFT's wrapper layers out of the module
tree. All LoRAs off gives ``W0`` back bit for bit. ``restore()`` puts the
pristine weights and the wrappers back, so PEFT and diffusers see an unfused
model again before a LoRA is attached or detached. DoRA and LoRA biases are not
folded: their PEFT layers stay in place. The engine drives this through
``generate.speed`` (``SpeedConfig.fuse_lora``).

The pristine copies of weights on a CUDA GPU are kept in host memory: on SDXL
with attention LoRAs they are about a gigabyte that the GPU then has for the
job. They go back to the GPU one layer at a time, only when the adapter state
changes; copies are exact, so unfusing still gives ``W0`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .keys import COMPONENTS
from .load import apply_adapter_state


@dataclass
class _Adapted:
    """One PEFT-wrapped layer: where it sits, the wrapper, and its pristine base weight."""

    parent: torch.nn.Module
    attr: str
    wrapper: torch.nn.Module
    pristine: torch.Tensor  # in host memory when the weight is on a CUDA GPU (park_copy)

    @property
    def base(self) -> torch.nn.Module:
        return self.wrapper.base_layer


class LoraFuser:
    """Folds the active LoRAs into the base weights; PEFT's wrappers leave the module tree.

    Deterministic: the fused weight is a function of the pristine weight and the
    adapter state only, so a job's image never depends on earlier jobs.
    """

    def __init__(self, pipe: Any):
        self.pipe = pipe
        self._layers: list[_Adapted] | None = None
        self._state: tuple | None = None  # the adapter state now folded in
        self._detached = False

    def apply(self, weights: dict[str, float]) -> None:
        """Make exactly ``weights`` the active LoRAs, folded in; a no-op if they already are."""
        key = tuple(sorted((n, float(w)) for n, w in weights.items() if w != 0))
        if self._detached and key == self._state:
            return  # already folded in: switching to the same state costs nothing
        self._attach_wrappers()
        # PEFT/diffusers validate the names and set each layer's scale (weight x alpha/r).
        apply_adapter_state(self.pipe, weights)
        layers = self._scan()
        if not self._foldable(layers):
            self._state = None  # DoRA or LoRA biases: leave PEFT's unfused layers in place
            return
        active = [n for n, _ in key]
        with torch.no_grad():
            for layer in layers:
                fold(layer, active)
        self._detach_wrappers()
        self._state = key

    def restore(self) -> None:
        """Pristine weights and PEFT's wrappers back (before attaching/detaching a LoRA)."""
        if self._layers is None:
            return
        self._attach_wrappers()
        with torch.no_grad():
            for layer in self._layers:
                layer.base.weight.copy_(layer.pristine)
        self._layers, self._state = None, None

    def _scan(self) -> list[_Adapted]:
        if self._layers is None:
            self._layers = find_adapted_layers(self.pipe)
        return self._layers

    @staticmethod
    def _foldable(layers: list[_Adapted]) -> bool:
        for layer in layers:
            wrapper = layer.wrapper
            if any(getattr(wrapper, "use_dora", {}).values()):
                return False
            if any(getattr(wrapper, "lora_bias", {}).values()):
                return False
        return True

    def _attach_wrappers(self) -> None:
        if self._detached and self._layers is not None:
            for layer in self._layers:
                setattr(layer.parent, layer.attr, layer.wrapper)
        self._detached = False

    def _detach_wrappers(self) -> None:
        for layer in self._layers or []:
            setattr(layer.parent, layer.attr, layer.base)
        self._detached = True


def find_adapted_layers(pipe: Any) -> list[_Adapted]:
    """Every PEFT LoRA layer in the pipeline's UNet and text encoders, with a pristine weight copy."""
    from peft.tuners.lora import LoraLayer

    found = []
    for component in COMPONENTS:
        model = getattr(pipe, component, None)
        if model is None:
            continue
        modules = dict(model.named_modules())
        for name, module in modules.items():
            if not isinstance(module, LoraLayer) or not name:
                continue
            parent_name, _, attr = name.rpartition(".")
            parent = modules[parent_name] if parent_name else model
            pristine = park_copy(module.base_layer.weight)
            found.append(_Adapted(parent, attr, module, pristine))
    return found


def park_copy(weight: torch.Tensor) -> torch.Tensor:
    """An exact copy of ``weight``: in host memory when it lives on a CUDA GPU (GPU memory is
    the scarce kind), beside it otherwise. Pageable, not pinned: the copy goes back only when
    the adapter state changes, and pinned blocks would be page-locked host memory that
    torch's host allocator rounds up to a power of two."""
    if weight.is_cuda:
        return weight.detach().to("cpu", copy=True)
    return weight.detach().clone()


def fold(layer: _Adapted, active: list[str]) -> None:
    """``W = W0 + sum of the active adapters' deltas`` (each at the scale PEFT holds for it)."""
    weight = layer.base.weight
    wrapper = layer.wrapper
    names = [n for n in active if n in wrapper.lora_A]
    if not names:
        weight.copy_(layer.pristine)  # an exact copy, also from host memory to the GPU
        return
    deltas = [wrapper.get_delta_weight(name).float() for name in names]
    # summed where the adapter's matrices are (the GPU), whichever memory keeps W0
    total = layer.pristine.to(deltas[0].device).float()
    for delta in deltas:
        total = total + delta
    weight.copy_(total.to(weight.dtype))
