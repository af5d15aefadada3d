"""What a picture of the noise shows: the measured noise variance against the signal, the
noise model's line, and the correlation per lag (torch-free, for the widgets)."""

from __future__ import annotations

import numpy as np

from ..errors import SSDNError
from .stats import choose_blind_region, noise_stats

__all__ = [
    "noise_curve",
    "model_variance",
    "measure_noise",
    "variance_curve",
    "curve_bend",
    "interpolate_curve",
    "CURVE_KNOTS",
    "CURVE_BEND",
    "SPARSE_SHARE",
]

#: Knots of a measured variance curve: brightness bins of equal block counts.
CURVE_KNOTS = 8
#: ``auto`` takes the measured curve over the variance line where the best line through the
#: curve's knots lies above one of them by this share of it or more: the variance falls
#: short of the line, as where a camera saturates (40-60 % on saturated ramps). Only a
#: shortfall counts: texture left in the flattest blocks raises knots above the line (by
#: 60 % on a small image of cells whose noise is exactly linear), and real widefield and
#: confocal images fall short by at most 17 %.
CURVE_BEND = 0.3
#: ``auto`` also takes the measured curve where, at one of its levels, the details'
#: median-based variance is under this share of their mean square: the noise there is
#: sparse photon events (most details 0), which the line's median-based estimate misreads.
#: Confocal FMD images read 0.00-0.02 in the dark; Gaussian and Poisson-Gaussian phantoms
#: (clipped, 8-bit or on a pedestal) and widefield camera frames 0.48 or more.
SPARSE_SHARE = 0.2


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


def variance_curve(samples: list[np.ndarray], lag: int = 1, knots: int = CURVE_KNOTS) -> dict:
    """The noise variance against the signal, at ``knots`` brightness levels (the samples' units).

    Each 2 x 2 block's diagonal Haar detail (of the ``lag`` x ``lag`` interleaved
    sub-images) measures the noise variance; the block is placed at the mean of the eight
    blocks around it, not its own mean: its own mean shares its noise, so the darkest bins
    would collect blocks whose noise happened to be low (on real widefield frames that
    halved the dark variance against the 400-frame averages' measure; placed by the ring,
    within 20 %). Of each bin only the flattest quarter counts, as for the line's estimate,
    chosen by the surrounding blocks so that the choice does not depend on the block's own
    noise. A bin's variance is the details' mean square, not a robust spread: the posterior
    needs the second moment, and the median of sparse photon noise (most details 0) is
    near zero (on a confocal image it put the dark variance 40x under the truth).

    Parameters
    ----------
    samples : list of ndarray
        ``(S, H, W, C)`` arrays (NaN is missing).
    lag : int
        Distance of the pixels differenced.
    knots : int
        Most levels; fewer where the data hold fewer than 200 flat blocks per level.

    Returns
    -------
    dict
        ``mean`` (increasing), ``variance`` (positive) and ``median_share`` (the details'
        median-based variance over their mean square: about 1 for Gaussian noise, near 0
        for sparse photon events): lists of equal length, at least one.
    """
    from .estimate import _MAD, _phases

    ring, det, act = [], [], []
    for s in _phases(samples, lag):
        for k in range(s.shape[0]):
            r, d, a = _ring_blocks(np.asarray(s[k], dtype=np.float64))
            ring.append(r)
            det.append(d)
            act.append(a)
    r, d, a = np.concatenate(ring), np.concatenate(det), np.concatenate(act)
    ok = np.isfinite(r) & np.isfinite(d) & np.isfinite(a)
    r, d, a = r[ok], d[ok], a[ok]
    if r.size < 8:
        raise SSDNError("too few measured pixels (2 x 2 blocks without NaN) to measure the noise's variance curve")
    n = int(np.clip(r.size // 800, 1, knots))
    edges = np.unique(np.quantile(r, np.linspace(0, 1, n + 1)))
    idx = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, max(edges.size - 2, 0))
    means, variances, shares = [], [], []
    for i in range(max(edges.size - 1, 1)):
        sel = idx == i
        if sel.sum() < 4:
            continue
        flat = sel & (a <= np.quantile(a[sel], 0.25))
        means.append(float(np.median(r[flat])))
        variances.append(max(float(np.mean(np.square(d[flat]))), 1e-12))
        shares.append(float((np.median(np.abs(d[flat])) / _MAD) ** 2 / variances[-1]))
    order = np.argsort(means)
    return {k: [v[i] for i in order] for k, v in (("mean", means), ("variance", variances), ("median_share", shares))}


def _ring_blocks(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 2 x 2 block of an ``(H, W, C)`` image: the mean of the eight blocks around it,
    its diagonal detail and the activity of its surroundings (flattened)."""
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    a, b = img[0:h:2, 0:w:2], img[0:h:2, 1:w:2]
    c, d = img[1:h:2, 0:w:2], img[1:h:2, 1:w:2]
    det, m = (a - b - c + d) / 2, (a + b + c + d) / 4
    p = np.pad(m, ((1, 1), (1, 1), (0, 0)), mode="edge")
    hh, ww = m.shape[:2]
    ring = sum(p[1 + i : 1 + i + hh, 1 + j : 1 + j + ww] for i in (-1, 0, 1) for j in (-1, 0, 1) if i or j) / 8
    act = np.abs(p[2:, 1:-1] - p[:-2, 1:-1]) + np.abs(p[1:-1, 2:] - p[1:-1, :-2])
    return ring.reshape(-1), det.reshape(-1), act.reshape(-1)


def curve_bend(curve: dict) -> tuple[float, float]:
    """How far the variance of ``curve`` falls short of the best line through its knots:
    the largest shortfall relative to the knot's variance, and the brightness where it is
    (0 and the first level for fewer than three knots)."""
    x, v = np.asarray(curve["mean"], float), np.asarray(curve["variance"], float)
    if x.size < 3:
        return 0.0, float(x[0]) if x.size else 0.0
    a, b = np.polyfit(x, v, 1, w=1 / v)  # relative errors: the dark knots count as much
    short = (a * x + b - v) / v
    i = int(np.argmax(short))
    return max(float(short[i]), 0.0), float(x[i])


def interpolate_curve(curve: dict, x) -> np.ndarray:
    """The variance of ``curve`` at ``x``: linear between the knots, the first value below
    them, the last segment's rise beyond them (held level where it falls), as the posterior
    uses it (:func:`~napari_ssdn.core.noise.bayes.curve_variance`)."""
    xs, vs = np.asarray(curve["mean"], float), np.asarray(curve["variance"], float)
    x = np.asarray(x, float)
    out = np.interp(x, xs, vs)
    if xs.size > 1:
        out = out + max((vs[-1] - vs[-2]) / (xs[-1] - xs[-2]), 0.0) * np.clip(x - xs[-1], 0, None)
    return out


def model_variance(noise: str, params: dict, x) -> np.ndarray | None:
    """The noise variance that the noise model ``noise`` with ``params`` (data units, as
    :meth:`SSDNModel.noise_params_data`) gives at signal level ``x`` (data units):
    Gaussian sigma^2, Poisson x / lam, Poisson-Gaussian a x + b (never below 0), the curve
    model's table (``params`` holds its ``mean`` and ``variance``, as
    :meth:`SSDNModel.noise_curve_data`) interpolated. None for
    impulse noise, which has no variance line, or when a parameter is missing."""
    x = np.asarray(x, dtype=float)
    if noise == "curve":
        return interpolate_curve(params, x) if params and params.get("mean") else None
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
