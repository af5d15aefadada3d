"""What the data say about their noise: its correlation between neighbouring pixels and its
per-pixel variance (whether that variance grows with the signal: :mod:`.choice`).

Classical estimators that difference neighbouring pixels (the 2 x 2 Haar detail of
:mod:`.estimate`) see only the part of correlated noise that differs between neighbours.
Here the variogram gamma(l) = E[(y(i + l) - y(i))^2] / 2 is measured per axis in the
flattest blocks of the data: for noise of per-pixel variance s2 and correlation rho(l),
gamma(l) = s2 (1 - rho(l)) plus a signal term that grows like l^2 in a flat block. The
far lags, beyond the noise's correlation, give s2 and that term; the near lags give rho.
All functions take normalised ``(S, *spatial, C)`` arrays, missing pixels as NaN.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import SSDNError, SSDNWarning, setting

__all__ = ["NoiseStats", "noise_stats", "choose_blind_region", "level_lag", "implausible_noise", "NEGLIGIBLE"]

#: Lags reported (the blind region can hide up to MAX_LAG pixels each side).
MAX_LAG = 4
#: Lags assumed beyond the noise's correlation, where the variogram is s2 plus signal.
FAR_LAGS = (5, 6, 7, 8)
#: A lag's correlation counts when it is above this (by two standard errors). Texture left
#: in the flattest blocks of natural images reads 0.05-0.12 at lag 1 under white noise; on
#: the FMD widefield sample a correlation of 0.2 at lag 2, left visible, kept the prior
#: mean at 23.0 dB where hiding it gave 28.9.
NEGLIGIBLE = 0.15
#: Block side: small enough that many blocks of a natural image are free of texture.
BLOCK = 8
#: Resamples of the blocks for the standard errors.
BOOTSTRAP = 32
#: Fewest flat blocks (8 x 8) worth a measurement: about four 64 x 64 images.
MIN_BLOCKS = 48
#: Fewest blocks per fifth of brightness for a variogram of its own (else one for all).
BIN_BLOCKS = 60
#: In each fifth of brightness, the share of blocks judged flattest that are kept.
FLAT_SHARE = 0.25
#: Of those, blocks above this quantile of their far-lag variogram (in their fifth of
#: brightness) hold an edge: left out.
TRIM = 0.9


@dataclass(frozen=True)
class NoiseStats:
    """Measured noise statistics.

    Attributes
    ----------
    axes : str
        Spatial axes measured, e.g. ``"YX"`` or ``"ZYX"``.
    rho : dict
        Axis letter to the correlation at lags 1 to :data:`MAX_LAG`.
    rho_se : dict
        Their standard errors (resampling the blocks).
    variance : float
        Per-pixel noise variance (normalised units; the variance at the median level of
        the flattest blocks for signal-dependent noise).
    blocks : int
        Flat blocks the figures come from.
    """

    axes: str
    rho: dict = field(default_factory=dict)
    rho_se: dict = field(default_factory=dict)
    variance: float = float("nan")
    blocks: int = 0

    def to_dict(self) -> dict:
        return {
            "axes": self.axes,
            "rho": {a: [round(float(r), 4) for r in v] for a, v in self.rho.items()},
            "rho_se": {a: [round(float(r), 4) for r in v] for a, v in self.rho_se.items()},
            "variance": float(self.variance),
            "blocks": self.blocks,
        }

    def describe(self) -> str:
        return "; ".join(f"{a.lower()} " + ", ".join(f"{r:.2f}" for r in v) for a, v in self.rho.items())


def _block_means(a: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Mean over non-overlapping blocks of ``size`` (NaN ignored), cropping the ragged end."""
    crop = tuple(slice(0, (n // b) * b) for n, b in zip(a.shape, size, strict=True))
    a = a[crop]
    shape = []
    for n, b in zip(a.shape, size, strict=True):
        shape += [n // b, b]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks are NaN, as meant
        return np.nanmean(a.reshape(shape), axis=tuple(range(1, 2 * a.ndim, 2)))


def _volume_variogram(v: np.ndarray, size: tuple[int, ...], lags: list[int]):
    """Block means of the signal and, per axis and lag, of (v(i + l) - v(i))^2 / 2."""
    nd = v.ndim
    means = _block_means(v, size)
    grams = np.full((nd, len(lags)) + means.shape, np.nan)
    for ax in range(nd):
        for j, lag in enumerate(lags):
            if v.shape[ax] <= lag:
                continue
            hi = [slice(None)] * nd
            lo = [slice(None)] * nd
            hi[ax], lo[ax] = slice(lag, None), slice(None, -lag)
            d = np.square(v[tuple(hi)] - v[tuple(lo)]) / 2
            pad = [(0, 0)] * nd
            pad[ax] = (0, lag)
            d = np.pad(d, pad, constant_values=np.nan)
            grams[ax, j] = _block_means(d, size)
    return means, grams


def _smooth(a: np.ndarray) -> np.ndarray:
    """Mean over each block and its neighbours along every axis (NaN ignored): under noise
    correlated over a few pixels, single block means carry enough noise that selecting on
    them selects on it."""
    total = np.zeros_like(a, dtype=np.float64)
    count = np.zeros_like(a, dtype=np.float64)
    ok = np.isfinite(a)
    filled = np.where(ok, a, 0.0)
    for shift in np.ndindex(*(3,) * a.ndim):
        dst = tuple(slice(max(0, 1 - d), n - max(0, d - 1)) for d, n in zip(shift, a.shape, strict=True))
        src = tuple(slice(max(0, d - 1), n - max(0, 1 - d)) for d, n in zip(shift, a.shape, strict=True))
        total[dst] += filled[src]
        count[dst] += ok[src]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _flattest(means: np.ndarray) -> np.ndarray:
    """Blocks whose neighbours have about the same mean: in each fifth of brightness, the
    quarter with the least difference between neighbouring block means, each averaged with
    its own neighbours (signal, not noise, makes that difference large)."""
    act = np.zeros_like(means)
    coarse = _smooth(means)
    for ax in range(means.ndim):
        p = np.pad(coarse, [(1, 1) if a == ax else (0, 0) for a in range(means.ndim)], mode="edge")
        hi = [slice(None)] * means.ndim
        lo = [slice(None)] * means.ndim
        hi[ax], lo[ax] = slice(2, None), slice(None, -2)
        act += np.abs(p[tuple(hi)] - p[tuple(lo)])
    m, a = means.reshape(-1), act.reshape(-1)
    ok = np.isfinite(m) & np.isfinite(a)
    keep = np.zeros(m.size, bool)
    if ok.sum() == 0:
        return keep
    edges = np.quantile(m[ok], np.linspace(0, 1, 6))
    bins = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, 4)
    for i in range(5):
        sel = ok & (bins == i)
        if sel.any():
            keep[sel] = a[sel] <= np.quantile(a[sel], FLAT_SHARE)
    return keep


def _pieces(samples: list[np.ndarray], limit: int):
    """Single-channel images or volumes (float64) of at most ``limit`` pixels in all:
    samples spread evenly over the data, each cropped about its centre where it alone
    would exceed the limit."""
    count = sum(s.shape[0] * s.shape[-1] for s in samples)
    size = max(s[0, ..., 0].size for s in samples)
    take = max(1, min(count, limit // max(size, 1)))
    picks = set(np.linspace(0, count - 1, take).round().astype(int).tolist())
    i = 0
    for s in samples:
        for k in range(s.shape[0]):
            for c in range(s.shape[-1]):
                if i in picks:
                    v = s[k, ..., c]
                    shrink = (limit / v.size) ** (1 / v.ndim) if v.size > limit else 1.0
                    crop = tuple(
                        slice((n - max(16, int(n * shrink))) // 2, (n + max(16, int(n * shrink))) // 2) for n in v.shape
                    )
                    yield np.asarray(v[crop], dtype=np.float64)
                i += 1


def noise_stats(samples: list[np.ndarray], ndim: int = 2, limit: int = 4_000_000) -> NoiseStats:
    """Correlation per axis at lags 1 to :data:`MAX_LAG` and per-pixel variance of the noise.

    Parameters
    ----------
    samples : list of ndarray
        Normalised ``(S, *spatial, C)`` arrays (``ndim`` spatial axes); NaN is missing.
    ndim : int
        2 (images: y, x) or 3 (volumes: z, y, x).
    limit : int
        Pixels read at most (whole samples, in order).

    Returns
    -------
    NoiseStats
    """
    lags = list(range(1, MAX_LAG + 1)) + list(FAR_LAGS)
    axes = "YX" if ndim == 2 else "ZYX"
    grams, levels = [], []
    for v in _pieces(samples, limit):
        if min(v.shape) < 2 or v.shape[-1] < 2 * BLOCK or v.shape[-2] < 2 * BLOCK:
            continue  # too small for blocks and their neighbours
        m, g = _volume_variogram(v, tuple(min(BLOCK, n) for n in v.shape), lags)
        # Flatness is judged within each image, among its neighbouring blocks.
        flat = _flattest(m)
        grams.append(g.reshape(ndim, len(lags), -1)[..., flat])
        levels.append(m.reshape(-1)[flat])
    g = np.concatenate(grams, axis=-1) if grams else np.zeros((ndim, len(lags), 0))
    # Leave out blocks with an edge the flatness test missed: in each fifth of brightness,
    # the tenth with the largest far-lag variogram.
    far = np.nanmean(g[:, MAX_LAG:], axis=(0, 1))
    ok = np.isfinite(far)
    if ok.sum() < MIN_BLOCKS:
        raise SSDNError(
            "too few measured pixels (flat blocks of 8 without NaN) to measure the noise; "
            "give its parameters or more data"
        )
    m = np.concatenate(levels) if levels else np.zeros(0)
    keep = ok.copy()
    edges = np.quantile(m[ok], np.linspace(0, 1, 6)) if ok.any() else np.zeros(6)
    bins = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, 4)
    for i in range(5):  # within each fifth of brightness: the noise level may differ between them
        sel = ok & (bins == i)
        if sel.any():
            keep[sel] = far[sel] <= np.quantile(far[sel], TRIM)
    g, bins = g[..., keep], bins[keep]
    if g.shape[-1] < 5 * BIN_BLOCKS:  # too few blocks for a variogram per fifth of brightness
        bins = np.zeros_like(bins)
    rho, s2 = _correlation(g, ndim, bins)
    if not s2:
        raise SSDNError(
            "the data are too small to measure the noise's correlation (fewer than 9 pixels along every axis)"
        )
    # Standard errors by resampling the blocks (fixed seed: the same data, the same answer).
    rng = np.random.default_rng(0)
    boots = [
        _correlation(g[..., i], ndim, bins[i])[0]
        for i in (rng.integers(0, g.shape[-1], g.shape[-1]) for _ in range(BOOTSTRAP))
    ]
    se = {a: tuple(float(v) for v in np.std([b[a] for b in boots if a in b], axis=0)) for a in rho}
    return NoiseStats(
        axes="".join(axes[a] for a in sorted(rho)),
        rho={axes[a]: rho[a] for a in sorted(rho)},
        rho_se={axes[a]: se[a] for a in sorted(rho)},
        variance=float(np.median(s2)),
        blocks=int(g.shape[-1]),
    )


def _correlation(g: np.ndarray, ndim: int, bins: np.ndarray) -> tuple[dict, list]:
    """Correlation at lags 1 to MAX_LAG per axis index (the median over the fifths of
    brightness ``bins``, each with its own noise level), and the per-pixel variance per axis
    and fifth, from block variograms ``(ndim, lags, blocks)``."""
    per_bin, s2 = [], []
    for b in np.unique(bins):
        rho, var = _bin_correlation(g[..., bins == b], ndim)
        if rho:
            per_bin.append(rho)
            s2 += var
    axes = sorted({a for r in per_bin for a in r})
    return {a: tuple(float(v) for v in np.median([r[a] for r in per_bin if a in r], axis=0)) for a in axes}, s2


def _bin_correlation(g: np.ndarray, ndim: int) -> tuple[dict, list]:
    gamma = np.nanmedian(g, axis=-1)  # the median resists the texture left in flat blocks
    rho, s2 = {}, []
    far = np.array(FAR_LAGS, float)
    near = np.arange(1, MAX_LAG + 1, dtype=float)
    for ax in range(ndim):
        fit = np.isfinite(gamma[ax, MAX_LAG:])
        if fit.sum() < 2:  # a short axis (a thin volume's z): no far lags to fit
            continue
        slope, var = np.polyfit(far[fit] ** 2, gamma[ax, MAX_LAG:][fit], 1)
        slope, var = max(slope, 0.0), max(var, 1e-20)
        s2.append(var)
        rho[ax] = tuple(float(r) for r in 1 - (gamma[ax, :MAX_LAG] - slope * near**2) / var)
    return rho, s2


def choose_blind_region(stats: NoiseStats, ndim: int = 2) -> tuple[tuple[int, ...], str]:
    """The smallest final shift k per axis beyond which the measured correlation is
    negligible (not clearly above :data:`NEGLIGIBLE`, by two standard errors, at any
    larger lag), and why.

    An axis that could not be measured (a volume thinner than 9 slices) takes the largest
    k of the others.
    """
    axes = "YX" if ndim == 2 else "ZYX"
    ks = {}
    for a, rho in stats.rho.items():
        se = stats.rho_se.get(a, (0.0,) * len(rho))
        # Counted only when clearly above the threshold: a small image's estimate is noisy.
        over = [lag for lag, (r, e) in enumerate(zip(rho, se, strict=True), start=1) if r - 2 * e > NEGLIGIBLE]
        ks[a] = 1 + (max(over) if over else 0)
    fallback = max(ks.values(), default=1)
    if ks.get("Y", 1) > 1 and ks.get("X", 1) > 1:
        # Correlated along both image axes: a square. On the FMD widefield sample the
        # measured 5 x 3 left correlation along x that the network learned (prior mean
        # 24.1 dB); 5 x 5 gave 28.1. A line-like correlation (one axis) keeps a line.
        ks["Y"] = ks["X"] = max(ks["Y"], ks["X"])
    region = tuple(ks.get(a, fallback) for a in axes)
    if all(k == 1 for k in region):
        why = f"noise uncorrelated between neighbours (correlation at lags 1-{MAX_LAG}: {stats.describe()})"
    else:
        why = f"noise correlated between neighbours (correlation at lags 1-{MAX_LAG}: {stats.describe()})"
    return region, why


def implausible_noise(noise: str, params: dict, samples: list[np.ndarray]) -> SSDNWarning | None:
    """Say whether a given noise level cannot belong to the data: a noise standard deviation
    larger than the data's whole range (0.1-99.9th percentiles), e.g. sigma = 25 given for
    an image scaled to 0..1: a warning naming the parameters, or None when it is plausible
    or nothing is given.

    ``params`` are in data units; ``samples`` the data, ``(S, *spatial, C)`` arrays."""
    values = np.concatenate([np.asarray(s).reshape(-1)[:: max(1, s.size // 200_000)] for s in samples]).astype(
        np.float64
    )
    values = values[np.isfinite(values)]
    if values.size < 16:
        return None
    lo, hi = np.percentile(values, [0.1, 99.9])
    span = hi - lo
    level = max(abs(lo), abs(hi))
    if noise == "gaussian" and "sigma" in params:
        std, name = float(params["sigma"]), setting("sigma", f"{float(params['sigma']):g}")
    elif noise == "poisson-gaussian" and {"a", "b"} & set(params):
        std = math.sqrt(max(params.get("a", 0.0) * level + params.get("b", 0.0), 0.0))
        name = ", ".join(setting(k, f"{float(params[k]):g}") for k in ("a", "b") if k in params)
    elif noise == "poisson" and "lam" in params:
        std, name = math.sqrt(level / float(params["lam"])), setting("lam", f"{float(params['lam']):g}")
    else:
        return None
    if not span > 0 or std <= span:
        return None
    return SSDNWarning(
        f"the given noise ({name}) has a standard deviation of {std:.4g}, larger than the data's whole range "
        f"({lo:.4g} to {hi:.4g}); noise parameters are in the units of the data: "
        "check them, or leave them out to learn them"
    )


def level_lag(stats: NoiseStats | None, region: tuple[int, ...]) -> int:
    """Distance of the pixels whose differences measure the noise level: 1 for a region of
    one pixel; else the smallest lag from the region's largest in-plane k at which the
    in-plane correlation is about zero (below 0.05), at most :data:`MAX_LAG` (a correlation
    of 0.17 left at the region's edge made the level 30 % low)."""
    k = max(region[-2:])
    if k == 1 or stats is None:
        return k
    plane = [a for a in ("Y", "X") if a in stats.rho]
    for lag in range(k, MAX_LAG + 1):
        if all(abs(stats.rho[a][lag - 1]) < 0.05 for a in plane):
            return lag
    return MAX_LAG
