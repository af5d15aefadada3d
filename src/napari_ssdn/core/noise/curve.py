"""What a picture of the noise shows: the measured noise variance against the signal, the
noise model's line, and the correlation per lag (torch-free, for the widgets)."""

from __future__ import annotations

import numpy as np

from ..errors import SSDNError
from .stats import choose_blind_region, noise_stats

__all__ = ["noise_curve", "model_variance", "measure_noise"]


def noise_curve(samples: list[np.ndarray], lag: int = 1, bins: int = 12) -> dict:
    """The measured noise variance against the local mean, in the units of ``samples``.

    Local means and diagonal Haar details of the flattest 2 x 2 blocks (of the ``lag`` x
    ``lag`` interleaved sub-images, for noise correlated over shorter distances), put in
    ``bins`` quantile bins of the local mean; each bin's robust detail variance is the
    noise variance at that level (what the classical estimate fits its line to).

    Parameters
    ----------
    samples : list of ndarray
        ``(S, H, W, C)`` arrays, in data or normalised units (NaN is missing).
    lag : int
        Distance of the pixels differenced (see :func:`~.estimate.estimate_noise`).
    bins : int
        Most bins; fewer where the data hold fewer than 30 blocks per bin.

    Returns
    -------
    dict
        ``mean``, ``variance`` and ``count`` (blocks per bin): lists of equal length,
        ordered by mean.
    """
    from .estimate import _haar, _phases, _robust_var

    m, d = _haar(_phases(samples, lag))
    n = int(np.clip(min(bins, m.size // 30), 1, max(bins, 1)))
    edges = np.unique(np.quantile(m, np.linspace(0, 1, n + 1)))
    out: dict = {"mean": [], "variance": [], "count": []}
    if edges.size == 1:  # a constant image: one bin
        edges = np.array([edges[0], edges[0]])
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        sel = (m >= lo) & ((m < hi) if i < edges.size - 2 else (m <= hi))
        if sel.sum() < 2:
            continue
        out["mean"].append(float(np.median(m[sel])))
        out["variance"].append(_robust_var(d[sel]))
        out["count"].append(int(sel.sum()))
    return out


def model_variance(noise: str, params: dict, x) -> np.ndarray | None:
    """The noise variance that the noise model ``noise`` with ``params`` (data units, as
    :meth:`SSDNModel.noise_params_data`) gives at signal level ``x`` (data units):
    Gaussian sigma^2, Poisson x / lam, Poisson-Gaussian a x + b (never below 0). None for
    impulse noise, which has no variance line, or when a parameter is missing."""
    x = np.asarray(x, dtype=float)
    p = {k: float(np.mean(v)) for k, v in (params or {}).items()}
    if noise == "gaussian" and "sigma" in p:
        return np.full_like(x, p["sigma"] ** 2)
    if noise == "poisson" and "lam" in p and p["lam"] > 0:
        return np.clip(x, 0, None) / p["lam"]
    if noise == "poisson-gaussian" and "a" in p and "b" in p:
        return np.clip(p["a"] * x + p["b"], 0, None)
    return None


def measure_noise(array: np.ndarray, axes: str, ndim: int = 2, lag: int | None = None, bins: int = 12) -> dict:
    """What a picture of the noise shows, for ``array`` with ``axes`` (data units).

    Returns
    -------
    dict
        :func:`noise_curve`'s ``mean``, ``variance`` and ``count``; ``rho`` and ``rho_se``,
        the correlation per lag 1 to :data:`MAX_LAG` along each axis (axis letter to a
        list; empty, with the reason in ``rho_error``, where the data are too small to
        measure it); ``lag``, the distance the curve's pixels are differenced at: as
        given, else beyond the measured correlation (the blind region that ``auto``
        would choose), as the training's classical estimate does.
    """
    from ..data import to_samples

    out: dict = {"rho": {}, "rho_se": {}, "rho_error": ""}
    region = (1,) * ndim
    try:
        stats = noise_stats([to_samples(array, axes, ndim=ndim)], ndim=ndim)
    except SSDNError as exc:
        out["rho_error"] = str(exc)
    else:
        out["rho"] = {a: list(v) for a, v in stats.rho.items()}
        out["rho_se"] = {a: list(v) for a, v in stats.rho_se.items()}
        region, _ = choose_blind_region(stats, ndim)
    out["lag"] = int(lag if lag is not None else max(region[-2:]))
    out.update(noise_curve([to_samples(array, axes)], lag=out["lag"], bins=bins))
    return out
