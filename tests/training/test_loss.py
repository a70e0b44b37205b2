"""The shared denoising loss on a stand-in UNet: what it draws, in which order, and how it weighs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nano_banana.training.loss import (
    diffusion_loss,
    fixed_noise_loss,
    min_snr_weights,
    step_generator,
)


class ScaleUNet(torch.nn.Module):
    """Predicts ``scale * noisy``: enough to check the loss arithmetic, with one trainable weight."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, noisy, timesteps, encoder_hidden_states, added_cond_kwargs):
        assert added_cond_kwargs["time_ids"].shape == (noisy.shape[0], 6)
        return SimpleNamespace(sample=self.scale * noisy)


@pytest.fixture(scope="module")
def scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def inputs(b: int = 3):
    gen = torch.Generator().manual_seed(7)
    latents = torch.randn((b, 4, 8, 8), generator=gen)
    return latents, torch.zeros(b, 77, 8), torch.zeros(b, 8), torch.zeros(b, 6)


def expected_loss(unet, scheduler, latents, seed, gamma, snr_of):
    """The loss written out: noise then timesteps from the generator, ε target, min-SNR weights."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=gen)
    t = torch.randint(0, 1000, (latents.shape[0],), generator=gen)
    pred = unet.scale * scheduler.add_noise(latents, noise, t)
    per_sample = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    if gamma:
        snr = snr_of(t)
        per_sample = per_sample * torch.clamp(snr, max=gamma) / snr
    return per_sample.mean()


@pytest.mark.parametrize(("gamma", "table"), [(0.0, False), (5.0, False), (5.0, True)])
def test_diffusion_loss_draws_noise_then_timesteps_and_weighs_by_min_snr(scheduler, gamma, table):
    from diffusers.training_utils import compute_snr

    unet, (latents, embeds, pooled, time_ids) = ScaleUNet(), inputs()
    alphas = scheduler.alphas_cumprod
    snr_table = alphas / (1 - alphas) if table else None
    loss = diffusion_loss(
        unet, latents, embeds, pooled, time_ids, scheduler, torch.Generator().manual_seed(3),
        min_snr_gamma=gamma, snr_table=snr_table,
    )  # fmt: skip

    def snr_of(t):
        return alphas[t] / (1 - alphas[t]) if table else compute_snr(scheduler, t)

    assert torch.equal(loss, expected_loss(unet, scheduler, latents, 3, gamma, snr_of))
    loss.backward()
    assert unet.scale.grad is not None  # the whole UNet trains: its own dtype is used


def test_noise_offset_changes_the_noise_and_draws_one_more_tensor(scheduler):
    unet, batch = ScaleUNet(), inputs()

    def loss(offset):
        gen = torch.Generator().manual_seed(3)
        return diffusion_loss(unet, *batch, scheduler, gen, min_snr_gamma=5.0, noise_offset=offset)

    assert torch.equal(loss(0.0), loss(0.0))
    assert not torch.equal(loss(0.0), loss(0.1))


def test_fixed_noise_loss_is_repeatable_and_seeds_each_batch(scheduler):
    unet = ScaleUNet()
    batches = [tuple(t[i : i + 1] for t in inputs(2)) for i in range(2)]
    first = fixed_noise_loss(unet, batches, scheduler, torch.device("cpu"), min_snr_gamma=5.0)
    assert first == fixed_noise_loss(
        unet, batches, scheduler, torch.device("cpu"), min_snr_gamma=5.0
    )
    one = [
        diffusion_loss(unet, *b, scheduler, torch.Generator().manual_seed(10_000 + i),
                       min_snr_gamma=5.0).item()
        for i, b in enumerate(batches)
    ]  # fmt: skip
    assert first == pytest.approx(sum(one) / 2)


def test_step_generator_is_a_pure_function_of_its_coordinates():
    def draw(*coords):
        return torch.randn(4, generator=step_generator(*coords, torch.device("cpu")))

    assert torch.equal(draw(0, 5, 1, 0), draw(0, 5, 1, 0))
    for other in ((1, 5, 1, 0), (0, 6, 1, 0), (0, 5, 0, 0), (0, 5, 1, 1)):
        assert not torch.equal(draw(0, 5, 1, 0), draw(*other))


def test_min_snr_weights_table():
    snr = torch.tensor([0.5, 5.0, 50.0])
    assert torch.allclose(min_snr_weights(snr, 1.0, "epsilon"), torch.tensor([1.0, 0.2, 0.02]))
