"""Built-in sample data, generated (no download): a fluorescence-like scene with known noise."""

from __future__ import annotations

import numpy as np

__all__ = ["clean_cells", "noisy_cells", "noisy_cells_stack", "DEMO_SIGMA"]

#: Gaussian noise of the samples, in the image's units (intensities in [0, 1]).
DEMO_SIGMA = 25 / 255


def _smooth(a: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        a = (np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1) + 4 * a) / 8
    return a


def clean_cells(size: int = 256, seed: int = 0, phase: float = 0.0) -> np.ndarray:
    """A clean synthetic fluorescence image in [0, 1]: textured nuclei, filaments, background.

    Parameters
    ----------
    size : int
        Side in pixels.
    seed : int
        Layout of the scene.
    phase : float
        Slow drift of the scene, for stacks (0 to 1).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = 0.08 + 0.06 * np.sin(2.5 * xx + 1.3 * yy)
    texture = _smooth(rng.random((size, size)), 3)
    texture = (texture - texture.mean()) / (texture.std() + 1e-9)
    for _ in range(14):
        cy, cx = rng.random(2)
        cy, cx = cy + 0.03 * phase, cx + 0.02 * phase
        ry, rx = 0.04 + 0.07 * rng.random(2)
        ang = rng.random() * np.pi
        dy, dx = yy - cy, xx - cx
        u = (dy * np.cos(ang) + dx * np.sin(ang)) / ry
        v = (-dy * np.sin(ang) + dx * np.cos(ang)) / rx
        r2 = u * u + v * v
        body = 1 / (1 + np.exp(np.minimum((r2 - 1) * 12, 50)))
        img += body * (0.35 + 0.25 * rng.random() + 0.08 * texture)
        img += 0.25 * np.exp(-r2 * 30)  # bright nucleolus
    for _ in range(10):
        p = rng.random(2)
        d = rng.normal(size=2)
        d /= np.linalg.norm(d)
        curve = rng.normal() * 3
        t = (yy - p[0]) * d[1] - (xx - p[1]) * d[0]
        s = (yy - p[0]) * d[0] + (xx - p[1]) * d[1]
        dist = t - curve * s * s
        img += 0.4 * np.exp(-(dist / 0.006) ** 2)
    return np.clip(img / img.max() * 0.9, 0, 1).astype(np.float32)


def noisy_cells(size: int = 256, sigma: float = DEMO_SIGMA, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(noisy, clean)``: :func:`clean_cells` plus Gaussian noise of std ``sigma``, unclipped."""
    clean = clean_cells(size, seed)
    rng = np.random.default_rng(seed + 1000)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32), clean


def noisy_cells_stack(n: int = 8, size: int = 128, sigma: float = DEMO_SIGMA, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A time-lapse ``(n, size, size)`` of a slowly drifting scene with Gaussian noise."""
    clean = np.stack([clean_cells(size, seed, phase=i / max(n - 1, 1)) for i in range(n)])
    rng = np.random.default_rng(seed + 2000)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32), clean
