"""The one schedule, optimiser step and EMA the trainer and the demo build share: table-driven,
and bit-for-bit the formulas each of them used before they shared them."""

from __future__ import annotations

import math

import pytest
import torch

from nano_banana.training.config import Schedule
from nano_banana.training.optim import (
    AdapterEMA,
    adamw,
    ema_decay,
    ema_update,
    lr_factor,
    optimizer_step,
    set_lr,
)

COSINE, LINEAR, CONSTANT = Schedule.COSINE, Schedule.LINEAR, Schedule.CONSTANT


@pytest.mark.parametrize(
    ("step", "decay", "floor", "offset", "expected"),
    [
        (0, CONSTANT, 0.0, 1, 1 / 11),  # the trainer: from 0, never at lr 0
        (10, COSINE, 0.0, 1, 1.0),
        (55, COSINE, 0.0, 1, 0.5),
        (100, COSINE, 0.0, 1, 0.0),
        (1, COSINE, 0.1, 0, 0.1),  # the demo: from 1, step/warmup, then down to 10%
        (5, COSINE, 0.1, 0, 0.5),
        (10, COSINE, 0.1, 0, 1.0),
        (55, COSINE, 0.1, 0, 0.55),
        (100, COSINE, 0.1, 0, 0.1),
        (500, COSINE, 0.1, 0, 0.1),  # past the end: stays at the floor
        (55, LINEAR, 0.1, 1, 0.55),
        (100, LINEAR, 0.1, 1, 0.1),
        (99, CONSTANT, 0.1, 1, 1.0),  # a constant schedule has no floor to reach
    ],
)
def test_lr_factor_regimes(step, decay, floor, offset, expected):
    factor = lr_factor(step, warmup=10, total=100, decay=decay, floor=floor, warmup_offset=offset)
    assert factor == pytest.approx(expected)


def test_lr_factor_is_bit_for_bit_the_formulas_it_replaced():
    def trainer(step, warmup, total):  # training/loop.py's lr_factor, cosine branch
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def demo(step, total, warmup):  # demo/build.py's cosine_factor
        if step <= warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    for total, warmup in ((120, 20), (3, 20), (4000, 100), (100, 0)):
        for step in range(0, total + 5):
            assert lr_factor(step, warmup=warmup, total=total, decay=COSINE) == trainer(
                step, warmup, total
            )
            if step:
                got = lr_factor(
                    step, warmup=warmup, total=total, decay=COSINE, floor=0.1, warmup_offset=0
                )
                assert got == demo(step, total, warmup), (step, total, warmup)


@pytest.mark.parametrize(
    ("step", "decay", "expected"),
    [(0, 0.999, 0.1), (1, 0.999, 2 / 11), (5, 0.5, 0.4), (10**6, 0.999, 0.999)],
)
def test_ema_decay_warms_up(step, decay, expected):
    assert ema_decay(step, decay) == pytest.approx(expected)


def test_ema_update_averages_in_the_averages_dtype():
    averages = [torch.zeros(3), torch.ones(2)]
    params = [torch.ones(3, dtype=torch.float16), torch.zeros(2)]
    ema_update(averages, params, 0.75)
    assert torch.equal(averages[0], torch.full((3,), 0.25))
    assert torch.equal(averages[1], torch.full((2,), 0.75))
    assert averages[0].dtype == torch.float32
    with pytest.raises(ValueError):  # a missing pair is an error, not a silent skip
        ema_update(averages, params[:1], 0.5)


def test_adapter_ema_swaps_in_and_restores():
    param = torch.nn.Parameter(torch.zeros(2))
    ema = AdapterEMA({"w": param}, decay=0.5)
    with torch.no_grad():
        param.fill_(1.0)
    ema.update({"w": param}, step=100)  # decay min(0.5, 101/110) = 0.5
    assert torch.equal(ema.shadow["w"], torch.full((2,), 0.5))
    with ema.swapped_in({"w": param}):
        assert torch.equal(param.detach(), torch.full((2,), 0.5))
    assert torch.equal(param.detach(), torch.ones(2))


def test_adamw_groups_start_at_their_peak_and_set_lr_scales_each():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = adamw(
        [{"params": [a], "base_lr": 1e-3}, {"params": [b], "base_lr": 4e-3}], weight_decay=0.1
    )
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 4e-3]
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["weight_decay"] == 0.1
    set_lr(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == [5e-4, 2e-3]


@pytest.mark.parametrize(("max_grad_norm", "clipped"), [(0.0, False), (1.0, True)])
def test_optimizer_step_clips_steps_and_clears(max_grad_norm, clipped):
    param = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([param], lr=1.0)
    (param * 10.0).sum().backward()  # gradient norm 20
    calls = []

    def clip(params, norm):
        calls.append(norm)
        return torch.nn.utils.clip_grad_norm_(params, norm)

    optimizer_step(opt, [param], max_grad_norm=max_grad_norm, clip=clip)
    assert calls == ([1.0] if clipped else [])
    assert param.grad is None
    assert param.detach().norm().item() == pytest.approx(1.0 if clipped else 20.0)
