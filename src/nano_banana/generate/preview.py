"""Cheap previews of latents while an image is being denoised.

Decoding with the VAE at every step would double the cost of a job. Instead we
fit, once per model, a linear map (4 latent channels -> RGB, plus a bias) by
encoding a few solid colours and gradients with the model's own VAE and solving
least squares: the same idea as the fixed "latent to RGB" factors other UIs ship
for SDXL, but derived from whatever VAE is loaded, so it needs no extra weights.
A preview is then one small matrix product per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..model.latents import scale_latents

FIT_SIDE = 64  # pixels of each fitting image; big enough for a few latent pixels at scale 8
PREVIEW_MIN_SIDE = 256  # previews are enlarged to at least this size so they are visible
_SOLIDS = (  # RGB 0..1: the cube's corners, greys, and some mixed colours
    (0, 0, 0), (1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1),
    (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (0.75, 0.75, 0.75), (0.8, 0.4, 0.1), (0.2, 0.5, 0.8),
    (0.6, 0.2, 0.6), (0.3, 0.7, 0.3), (0.9, 0.8, 0.6),
)  # fmt: skip


@dataclass(frozen=True)
class LatentPreview:
    """A fitted latent -> RGB map: ``rgb = weight @ latent + bias`` per latent pixel, RGB in 0..1."""

    weight: torch.Tensor  # 3 x C
    bias: torch.Tensor  # 3

    def rgb(self, latents: torch.Tensor) -> np.ndarray:
        """H x W x 3 uint8 for a (1, C, h, w) or (C, h, w) latent tensor."""
        z = latents.detach()
        if z.dim() == 4:
            z = z[0]
        if z.dim() != 3 or z.shape[0] != self.weight.shape[1]:
            raise ValueError(
                f"expected latents with {self.weight.shape[1]} channels, got {tuple(latents.shape)}"
            )
        z = torch.nan_to_num(z.float().cpu())
        rgb = torch.einsum("oc,chw->hwo", self.weight, z) + self.bias
        return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()

    def preview_image(self, latents: torch.Tensor, min_side: int = PREVIEW_MIN_SIDE) -> Image.Image:
        """A rough RGB picture of ``latents``, enlarged to at least ``min_side`` pixels."""
        image = Image.fromarray(self.rgb(latents), "RGB")
        factor = max(1, -(-min_side // min(image.size)))
        if factor > 1:
            image = image.resize((image.width * factor, image.height * factor), Image.BILINEAR)
        return image


def fit_preview(vae) -> LatentPreview:
    """Fit the map for ``vae`` (a diffusers ``AutoencoderKL``) from encoded test images.

    Run it where nothing else uses the VAE at the same time (the job worker does).
    """
    pixels = _fitting_images()  # N x 3 x S x S in 0..1
    latents = _encode(vae, pixels)  # N x C x h x w, scaled like the pipeline's latents
    factor = pixels.shape[-1] // latents.shape[-1]
    targets = torch.nn.functional.avg_pool2d(pixels, factor)  # N x 3 x h x w
    # Latent pixels at the border see the image edge (zero padding); leave them out.
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1)) if latents.shape[-1] > 2 else ...
    x = latents[inner].permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    y = targets[inner].permute(0, 2, 3, 1).reshape(-1, 3)
    x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    solution = torch.linalg.lstsq(x1, y.double()).solution  # (C+1) x 3
    return LatentPreview(weight=solution[:-1].T.float().contiguous(), bias=solution[-1].float())


def _fitting_images() -> torch.Tensor:
    solids = [
        torch.tensor(c, dtype=torch.float32).view(3, 1, 1).expand(3, FIT_SIDE, FIT_SIDE)
        for c in _SOLIDS
    ]
    ramp = torch.linspace(0, 1, FIT_SIDE)
    gradients = []
    for channel in range(3):  # one channel rising left to right, another top to bottom
        img = torch.full((3, FIT_SIDE, FIT_SIDE), 0.5)
        img[channel] = ramp.view(1, -1)
        img[(channel + 1) % 3] = ramp.view(-1, 1)
        gradients.append(img)
    return torch.stack(solids + gradients)


def _encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Encode 0..1 images to latents in the pipeline's scaled space (the inverse of decoding)."""
    param = next(vae.parameters())
    dtype = torch.float32 if param.dtype == torch.float16 else param.dtype  # fp16 VAEs overflow
    original = param.dtype
    try:
        if dtype != original:
            vae.to(dtype)
        with torch.no_grad():
            sample = (pixels * 2 - 1).to(param.device, dtype)
            z = vae.encode(sample).latent_dist.mean.float().cpu()
    finally:
        if dtype != original:
            vae.to(original)
    return scale_latents(z, vae.config)
