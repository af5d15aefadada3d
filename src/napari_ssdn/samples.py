"""Built-in sample data, generated (no download): a fluorescence-like scene with known noise."""

from __future__ import annotations

import numpy as np

__all__ = ["clean_cells", "noisy_cells", "noisy_cells_stack", "clean_volume", "noisy_volume", "DEMO_SIGMA"]

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
        img += 0.4 * np.exp(-((dist / 0.006) ** 2))
    return np.clip(img / img.max() * 0.9, 0, 1).astype(np.float32)


def noisy_cells(size: int = 256, sigma: float = DEMO_SIGMA, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(noisy, clean)``: :func:`clean_cells` plus Gaussian noise of std ``sigma``, unclipped."""
    clean = clean_cells(size, seed)
    rng = np.random.default_rng(seed + 1000)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32), clean


def noisy_cells_stack(
    n: int = 8, size: int = 128, sigma: float = DEMO_SIGMA, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A time-lapse ``(n, size, size)`` of a slowly drifting scene with Gaussian noise."""
    clean = np.stack([clean_cells(size, seed, phase=i / max(n - 1, 1)) for i in range(n)])
    rng = np.random.default_rng(seed + 2000)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32), clean


def clean_volume(shape: tuple[int, int, int] = (48, 128, 128), seed: int = 0) -> np.ndarray:
    """A clean synthetic tomogram-like volume ``(Z, Y, X)`` in [0, 1].

    Membrane vesicles (thin spherical shells), dense granules and filaments running in
    every direction: structure that is continuous in 3D, so a volume network can use the
    slices above and below. Sizes are in voxels, isotropic.
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = (g.astype(np.float32) for g in np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]])
    vol = 0.1 + 0.05 * np.sin(xx / shape[2] * 2.5 + yy / shape[1] * 1.3).astype(np.float32)
    span = np.array(shape, np.float32)
    n = max(4, int(np.prod(shape) / 15000))
    for _ in range(n):  # vesicles
        c = rng.random(3) * span
        r = rng.uniform(5, 14)
        d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
        vol += 0.45 * np.exp(-(((d - r) / 1.3) ** 2)) + 0.08 * (d < r)
    for _ in range(n // 2):  # dense granules
        c = rng.random(3) * span
        r = rng.uniform(2, 5)
        d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        vol += 0.5 / (1 + np.exp(np.minimum((np.sqrt(d2) - r) * 3, 50)))
    for _ in range(n):  # filaments: straight tubes in random 3D directions
        p = rng.random(3) * span
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        dz, dy, dx = zz - p[0], yy - p[1], xx - p[2]
        t = dz * u[0] + dy * u[1] + dx * u[2]
        dist2 = dz * dz + dy * dy + dx * dx - t * t
        vol += 0.35 * np.exp(-np.maximum(dist2, 0) / 2.0)
    return np.clip(vol / vol.max() * 0.9, 0, 1).astype(np.float32)


def noisy_volume(
    shape: tuple[int, int, int] = (48, 128, 128), sigma: float = DEMO_SIGMA, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(noisy, clean)``: :func:`clean_volume` plus Gaussian noise of std ``sigma``, unclipped."""
    clean = clean_volume(shape, seed)
    rng = np.random.default_rng(seed + 3000)
    return (clean + sigma * rng.standard_normal(clean.shape).astype(np.float32)).astype(np.float32), clean


def psnr(x: np.ndarray, clean: np.ndarray, peak: float = 1.0, eight_bit: bool = False) -> float:
    """PSNR in dB of ``x`` against ``clean``.

    Parameters
    ----------
    x, clean : ndarray
    peak : float
        The signal's peak value (1 for intensities in [0, 1]).
    eight_bit : bool
        Round both to 8 bits first (``clip(255 x / peak + 0.5)``, then truncate), as the
        benchmarks of Laine et al. do.
    """
    a, b = np.asarray(x, np.float64) / peak, np.asarray(clean, np.float64) / peak
    if eight_bit:
        a, b = (np.clip(v * 255 + 0.5, 0, 255).astype(np.uint8).astype(np.float64) / 255 for v in (a, b))
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(1.0 / max(mse, 1e-20)))
