"""How close two generated images are: pixels as floats, and their PSNR."""

import numpy as np


def pixels(result) -> np.ndarray:
    """A generation result's image as a float array (0..255)."""
    return np.asarray(result.image, dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (infinite for identical images)."""
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
