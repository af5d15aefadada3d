"""Denoising two observations of one field, and quality figures without a clean image.

For an estimate ``f(y1)`` made from one half alone, ``E|f(y1) - y2|^2 = E|f(y1) - s|^2 +
E|n2|^2``: the error against the other half, less the noise variance, is an unbiased estimate
of the error against the clean signal. Fourier ring (2D) / shell (3D) correlation between the
two denoised halves is how cryo-EM users read resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PairQuality", "denoise_pair", "pair_quality", "fourier_correlation", "resolution"]

#: The half-data threshold of Fourier shell correlation (Rosenthal and Henderson 2003).
FSC_THRESHOLD = 0.143


@dataclass(frozen=True)
class PairQuality:
    """Quality of a denoiser read from a pair.

    Attributes
    ----------
    mse : float
        Estimated mean squared error of one denoised half against the clean signal (data units).
    psnr : float
        The same as PSNR in dB, the peak being the 0.1-99.9 % range of the denoised halves.
    noisy_psnr : float
        The PSNR of one noisy half by the same estimate (its error is the noise variance).
    frequency : list of float
        Spatial frequency of each ring/shell, in cycles per pixel (0.5: Nyquist).
    correlation : list of float
        Fourier ring/shell correlation of the two denoised halves.
    resolution : float or None
        Where that correlation first falls below 0.143, in pixels (period); None if it never does.
    """

    mse: float
    psnr: float
    noisy_psnr: float
    frequency: list
    correlation: list
    resolution: float | None

    def describe(self, unit: str = "pixels", pixel: float = 1.0) -> str:
        """One line: the estimated PSNR against the noisy half's, and the resolution where
        the denoised halves stop agreeing (``pixel``: the pixel size in ``unit``)."""
        if self.resolution is None:
            res = f"stays above {FSC_THRESHOLD} up to Nyquist"
        else:
            res = f"falls below {FSC_THRESHOLD} at {self.resolution * pixel:.3g} {unit}"
        return (
            f"estimated from the halves: PSNR {self.psnr:.2f} dB (noisy half {self.noisy_psnr:.2f} dB); "
            f"Fourier correlation of the denoised halves {res}"
        )

    def to_dict(self) -> dict:
        return {
            "mse": self.mse,
            "psnr": self.psnr,
            "noisy_psnr": self.noisy_psnr,
            "frequency": self.frequency,
            "correlation": self.correlation,
            "resolution": self.resolution,
        }


def fourier_correlation(a: np.ndarray, b: np.ndarray, shells: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring (2D) or shell (3D) correlation of ``a`` and ``b`` (same shape).

    Returns the frequency of each shell (cycles per pixel, up to 0.5) and its correlation.
    """
    a = np.asarray(a, np.float64) - np.nanmean(a)
    b = np.asarray(b, np.float64) - np.nanmean(b)
    fa, fb = np.fft.fftn(np.nan_to_num(a)), np.fft.fftn(np.nan_to_num(b))
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in a.shape], indexing="ij")
    radius = np.sqrt(sum(g * g for g in grids))
    shells = shells or min(a.shape) // 2
    idx = np.minimum((radius / 0.5 * shells).astype(int), shells)
    keep = idx < shells
    cross = np.bincount(idx[keep], (fa * np.conj(fb)).real[keep], shells)
    pa = np.bincount(idx[keep], (np.abs(fa) ** 2)[keep], shells)
    pb = np.bincount(idx[keep], (np.abs(fb) ** 2)[keep], shells)
    freq = (np.arange(shells) + 0.5) / shells * 0.5
    # The first shell holds little but the mean, which is removed: left out.
    return freq[1:], (cross / np.sqrt(np.maximum(pa * pb, 1e-300)))[1:]


def resolution(freq: np.ndarray, corr: np.ndarray, threshold: float = FSC_THRESHOLD) -> float | None:
    """The period (pixels) where ``corr`` first falls below ``threshold`` (linear between
    shells), or None where it never does."""
    below = np.nonzero(corr < threshold)[0]
    if below.size == 0:
        return None
    i = max(int(below[0]), 1)
    f0, f1, c0, c1 = freq[i - 1], freq[i], corr[i - 1], corr[i]
    f = f0 + (c0 - threshold) / max(c0 - c1, 1e-12) * (f1 - f0)
    return float(1.0 / max(f, 1e-12))


def pair_quality(d1: np.ndarray, d2: np.ndarray, y1: np.ndarray, y2: np.ndarray, variance=None) -> PairQuality:
    """Quality of denoising read from a pair.

    Parameters
    ----------
    d1, d2 : ndarray
        Each half denoised from itself alone: ``(S, *spatial)`` stacks of images or
        volumes (one ring or shell curve each, averaged), or one 2D image.
    y1, y2 : ndarray
        The noisy halves, the same shape.
    variance : callable or float, optional
        Noise variance of one half. Default: half the mean squared difference of the halves,
        the exact mean over the pixels whatever the noise's law (a model of it, e.g. a line
        against the signal, misses the bend of clipped data); else a number, or a function
        of the signal (applied to the
        denoised halves).

    Returns
    -------
    PairQuality
    """
    d1, d2, y1, y2 = (np.asarray(x, np.float64) for x in (d1, d2, y1, y2))
    if d1.ndim == 2:  # one image
        d1, d2, y1, y2 = (x[None] for x in (d1, d2, y1, y2))
    if variance is None:
        noise = float(np.mean((y1 - y2) ** 2) / 2)
    else:
        var = np.asarray(variance((d1 + d2) / 2) if callable(variance) else variance, np.float64)
        noise = float(np.mean(np.broadcast_to(var, d1.shape)))
    err = 0.5 * (np.mean((d1 - y2) ** 2) + np.mean((d2 - y1) ** 2)) - noise
    lo, hi = np.percentile(np.concatenate([d1.ravel(), d2.ravel()]), [0.1, 99.9])
    peak = max(hi - lo, 1e-30)
    # One ring/shell curve per image of a stack, averaged.
    curves = [fourier_correlation(a, b) for a, b in zip(d1, d2, strict=True)]
    freq, corr = curves[0][0], np.mean([c for _, c in curves], axis=0)
    return PairQuality(
        mse=float(err),
        psnr=float(10 * np.log10(peak**2 / max(err, 1e-30))),
        noisy_psnr=float(10 * np.log10(peak**2 / max(noise, 1e-30))),
        frequency=[float(f) for f in freq],
        correlation=[float(c) for c in corr],
        resolution=resolution(freq, corr),
    )


def denoise_pair(model, first, second, axes: str | None = None, quality: bool = True, **kwargs):
    """The denoised field from its two observations, and the quality read from them.

    A Noise2Noise model (trained on pairs in ``supervised`` mode) denoises each half and
    averages them; a blind-spot model denoises the halves' mean (the posterior mean at the
    mean's noise, half a half's). For the quality, each half is denoised from itself alone
    (a blind-spot model with a half's noise: the mean's parameters doubled in variance) and
    scored against the other half, less the noise variance measured from the pair.

    Parameters
    ----------
    model : SSDNModel
    first, second : ndarray
        The two observations, same shape and axes, in the units the model was trained on.
    axes : str, optional
        Their axes (guessed when omitted).
    quality : bool
        Also read the quality (denoises each half once more for a blind-spot model).
    **kwargs
        As for :func:`~napari_ssdn.core.infer.denoise.denoise` (``tile``, ``device``, ``tta``...).

    Returns
    -------
    (ndarray, PairQuality or None)
        The denoised field (float32, the shape of one half) and its quality.
    """
    from ..data import guess_axes, to_samples
    from ..noise.pairs import check_pair
    from .denoise import denoise

    first, second = np.asarray(first), np.asarray(second)
    ndim = model.config.ndim
    axes = axes or guess_axes(first.shape, ndim=ndim)
    check_pair(to_samples(first, axes, ndim)[..., 0], to_samples(second, axes, ndim)[..., 0], ndim)
    if model.config.mode == "supervised":
        d1, d2 = denoise(model, first, axes, **kwargs), denoise(model, second, axes, **kwargs)
        out = ((d1.astype(np.float64) + d2) / 2).astype(np.float32)
    else:
        mean = ((first.astype(np.float64) + second) / 2).astype(np.float32)
        out = denoise(model, mean, axes, **kwargs)
        if quality:
            half = _half_params(model.config.noise, model.noise_params_data())
            d1 = denoise(model, first, axes, noise_params=half, **kwargs)
            d2 = denoise(model, second, axes, noise_params=half, **kwargs)
    if not quality:
        return out, None
    s1, s2, n1, n2 = (to_samples(np.asarray(a), axes, ndim)[..., 0] for a in (d1, d2, first, second))
    return out, pair_quality(s1, s2, n1, n2)


def _half_params(noise: str, params: dict) -> dict:
    """Noise parameters of one half from those of the halves' mean (twice the variance)."""
    if noise == "gaussian":
        return {"sigma": params["sigma"] * np.sqrt(2.0)}
    if noise == "poisson-gaussian":
        return {"a": 2 * params["a"], "b": 2 * params["b"]}
    if noise == "poisson":
        return {"lam": params["lam"] / 2}
    return params
