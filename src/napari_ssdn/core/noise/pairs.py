"""Two observations of one signal (even/odd halves, repeated frames): the noise measured from
them exactly, and whether they really are two views of the same field.

With ``y1 = s + n1`` and ``y2 = s + n2``, ``n1`` and ``n2`` independent with the same law given
``s``, the difference ``d = (y1 - y2) / sqrt(2)`` is pure noise of one half's variance at every
pixel: binned by the mean ``m = (y1 + y2) / 2`` around each pixel it gives the noise variance against the signal,
and its autocorrelation the noise's correlation per axis, with no model assumed. The mean of
the halves carries half that variance. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SSDNError

__all__ = ["PairNoise", "check_pair", "pair_noise", "half_mean", "pair_shift"]

#: Largest shift between the halves searched for (pixels per axis).
MAX_SHIFT = 8
#: How much better (correlation coefficient) a shift must align the halves than none to count.
SHIFT_MARGIN = 0.01
#: Below this correlation of the halves' 4 x 4 block means they are not views of one field:
#: at the block means' noise (1/16 of a pixel's for white noise) even very noisy halves of one
#: field correlate far above it.
MIN_CORRELATION = 0.1
#: Brightness bins of the variance curve (quantiles of the smoothed mean).
CURVE_BINS = 16


@dataclass(frozen=True)
class PairNoise:
    """Noise of one half measured from a pair, in the units of the data.

    Attributes
    ----------
    level : list of float
        Mean signal per brightness bin (ascending).
    variance : list of float
        Noise variance of one half per bin (the mean of the halves has half of it).
    count : list of int
        Pixels per bin.
    a, b : float
        Weighted least-squares line ``variance = a * signal + b`` through the bins.
    correlation : dict
        Axis letter to the noise's correlation at lags 1..4 (autocorrelation of ``d``).
    halves_correlation : float
        Correlation of the halves' 4 x 4 (x 4) block means: near 1 for a bright, clean field.
    """

    level: list
    variance: list
    count: list
    a: float
    b: float
    correlation: dict = field(default_factory=dict)
    halves_correlation: float = 1.0

    def curve_error(self) -> float:
        """Largest relative gap between the model (the line, or one level where the variance
        does not grow with the signal) and the measured bins (0.05: within 5 %)."""
        v = np.asarray(self.variance)
        if self.signal_dependent():
            line = self.a * np.asarray(self.level) + self.b
        else:
            line = np.average(v, weights=self.count)
        return float(np.max(np.abs(line - v) / np.maximum(v, 1e-30)))

    def signal_dependent(self) -> bool:
        """Whether the variance grows with the signal: the line rises by more than 20 % of
        its mean over the measured range of brightness."""
        lv = np.asarray(self.level)
        rise = self.a * (lv.max() - lv.min())
        return bool(rise > 0.2 * max(float(np.mean(self.variance)), 1e-30))

    def noise_params(self, of_mean: bool = True) -> tuple[str, dict]:
        """The noise model and its parameters (data units) of the halves' mean (``of_mean``)
        or of one half: Poisson-Gaussian where the variance grows with the signal, else
        Gaussian."""
        f = 0.5 if of_mean else 1.0
        if self.signal_dependent():
            # b may be negative under a camera pedestal: the model floors the variance at b's
            # floor; the line itself stays exact over the measured range.
            return "poisson-gaussian", {"a": f * self.a, "b": f * self.b}
        return "gaussian", {"sigma": float(np.sqrt(f * np.average(self.variance, weights=self.count)))}

    def blind_region(self) -> tuple[int, ...]:
        """The final shift k per axis (ZYX order) that hides every lag whose measured noise
        correlation is above :data:`~.stats.NEGLIGIBLE`; correlated along both image axes:
        a square, as for a single image."""
        from .stats import NEGLIGIBLE

        ks = {
            ax: 1 + max([lag for lag, r in enumerate(rho, 1) if r > NEGLIGIBLE], default=0)
            for ax, rho in self.correlation.items()
        }
        if ks.get("Y", 1) > 1 and ks.get("X", 1) > 1:
            ks["Y"] = ks["X"] = max(ks["Y"], ks["X"])
        return tuple(ks[ax] for ax in "ZYX" if ax in ks)

    def describe(self) -> str:
        """One line: the measured variance (a line against the signal, or one level), how
        closely it fits every brightness bin, and the correlation at lag 1."""
        rho = ", ".join(f"{ax} {r[0]:.2f}" for ax, r in self.correlation.items())
        if self.signal_dependent():
            law = f"variance = {self.a:.4g} x signal + {self.b:.4g}"
        else:
            law = f"std {np.sqrt(np.average(self.variance, weights=self.count)):.4g} at every brightness"
        return (
            f"measured from the halves: {law} (within {100 * self.curve_error():.0f} % of every bin), "
            f"correlation at lag 1: {rho or 'not measured'}"
        )

    def to_dict(self) -> dict:
        return {
            "level": [float(x) for x in self.level],
            "variance": [float(x) for x in self.variance],
            "count": [int(x) for x in self.count],
            "a": self.a,
            "b": self.b,
            "correlation": {k: [float(x) for x in v] for k, v in self.correlation.items()},
            "halves_correlation": self.halves_correlation,
        }


def _spatial(arr: np.ndarray, ndim: int) -> np.ndarray:
    """``arr`` as float64 with a leading stack axis and no channel axis: ``(S, *spatial)``."""
    a = np.asarray(arr, dtype=np.float64)
    while a.ndim < ndim + 1:
        a = a[None]
    return a.reshape((-1,) + a.shape[-ndim:])


def _block_means(a: np.ndarray, side: int = 4) -> np.ndarray:
    """Means of ``side``-wide blocks along every spatial axis of ``(S, *spatial)``."""
    out = a
    for axis in range(1, a.ndim):
        n = (out.shape[axis] // side) * side
        out = np.take(out, np.arange(n), axis=axis)
        shape = out.shape[:axis] + (n // side, side) + out.shape[axis + 1 :]
        out = out.reshape(shape).mean(axis + 1)
    return out


def pair_shift(y1: np.ndarray, y2: np.ndarray, ndim: int = 2, most: int = MAX_SHIFT) -> tuple[int, ...]:
    """The integer shift (per spatial axis) that best aligns ``y2`` to ``y1``, up to ``most``
    pixels: the peak of their cross-correlation on the first image of the stack (a central
    crop of at most 256 pixels a side)."""
    a, b = _spatial(y1, ndim)[0], _spatial(y2, ndim)[0]
    cut = tuple(slice(max(0, (n - 256) // 2), max(0, (n - 256) // 2) + 256) for n in a.shape)
    a, b = a[cut], b[cut]
    a, b = a - a.mean(), b - b.mean()
    spec = np.fft.rfftn(a) * np.conj(np.fft.rfftn(b))
    # Correlation coefficient at every (circular) lag.
    r = np.fft.irfftn(spec, s=a.shape) / max(a.size * a.std() * b.std(), 1e-300)
    best, where = -np.inf, (0,) * ndim
    for shift in np.ndindex(*(2 * min(most, n // 4) + 1 for n in a.shape)):
        lag = tuple(s - min(most, n // 4) for s, n in zip(shift, a.shape, strict=True))
        if r[lag] > best:
            best, where = r[lag], lag
    # A smooth signal correlates almost as well one pixel off: a shift counts only where it
    # aligns clearly better than none (beyond the correlation's sampling error).
    if best - r[(0,) * ndim] <= SHIFT_MARGIN + 3 / np.sqrt(a.size):
        return (0,) * ndim
    return tuple(int(x) for x in where)


def check_pair(y1: np.ndarray, y2: np.ndarray, ndim: int = 2, names: tuple[str, str] = ("first", "second")) -> float:
    """Refuse, in one line, two arrays that are not two observations of one field: different
    shapes, a shift between them, or too little correlation. Returns the correlation of their
    4 x 4 block means."""
    first, second = names
    if np.shape(y1) != np.shape(y2):
        raise SSDNError(
            f"the halves differ in shape: {first} is {np.shape(y1)}, {second} is {np.shape(y2)}; "
            "give two observations of the same field (even/odd halves or two frames)"
        )
    shift = pair_shift(y1, y2, ndim)
    aligned = np.roll(_spatial(y2, ndim), shift, axis=tuple(range(1, ndim + 1)))
    a, b = _block_means(_spatial(y1, ndim)), _block_means(aligned)
    ok = np.isfinite(a) & np.isfinite(b)
    r = float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else 0.0
    if not r >= MIN_CORRELATION:
        raise SSDNError(
            f"{first} and {second} do not look like the same field (correlation of their 4-pixel block "
            f"means {r:.2f}, below {MIN_CORRELATION}); give two observations of one field"
        )
    if any(shift):
        raise SSDNError(
            f"{second} is shifted against {first} by {' x '.join(map(str, shift))} pixels (axes "
            f"{'ZYX'[-ndim:]}); align the halves first (e.g. the same motion correction for both)"
        )
    return r


def _smoothed(m: np.ndarray) -> np.ndarray:
    """Mean of each pixel's neighbours in the 3-wide box along every spatial axis (edges: the
    nearest pixels), a quieter proxy of the signal for binning. The pixel itself is left out:
    binning on it would select its own noise (the darkest bin of clipped data would hold the
    pixels whose noise happened to be low in both halves)."""
    box = _box(m)
    n = 3 ** (m.ndim - 1)
    return (box * n - m) / (n - 1)


def _box(m: np.ndarray) -> np.ndarray:
    out = m
    for axis in range(1, m.ndim):
        p = np.pad(out, [(1, 1) if i == axis else (0, 0) for i in range(m.ndim)], mode="edge")
        n = out.shape[axis]
        out = (
            np.take(p, range(0, n), axis) + np.take(p, range(1, n + 1), axis) + np.take(p, range(2, n + 2), axis)
        ) / 3
    return out


def _autocorrelation(d: np.ndarray, ndim: int, lags: int = 4) -> dict:
    """Correlation of the noise ``d`` (``(S, *spatial)``, zero mean) per axis at lags 1..``lags``."""
    names = "ZYX"[-ndim:]
    var = float(np.nanmean(d * d))
    out = {}
    for axis in range(ndim):
        n = d.shape[axis + 1]
        if n <= lags:
            continue
        rho = []
        for lag in range(1, lags + 1):
            a = np.take(d, range(0, n - lag), axis + 1)
            b = np.take(d, range(lag, n), axis + 1)
            rho.append(float(np.nanmean(a * b) / max(var, 1e-30)))
        out[names[axis]] = rho
    return out


def pair_noise(y1, y2, ndim: int = 2, bins: int = CURVE_BINS, check: bool = True) -> PairNoise:
    """The noise of one half, measured from two observations of one field.

    Parameters
    ----------
    y1, y2 : ndarray or list of ndarray
        The two halves, same shapes: ``(*spatial)`` or ``(S, *spatial)`` arrays (one
        channel), data units, NaN missing; lists pair images of different sizes.
    ndim : int
        Spatial dimensions: 2 (images) or 3 (volumes).
    bins : int
        Brightness bins (quantiles of the halves' mean over each pixel's neighbours).
    check : bool
        Refuse pairs that are not the same field first (:func:`check_pair`).

    Returns
    -------
    PairNoise
    """
    firsts, seconds = (list(y) if isinstance(y, (list, tuple)) else [y] for y in (y1, y2))
    r = min(check_pair(a, b, ndim) for a, b in zip(firsts, seconds, strict=True)) if check else 1.0
    levels, diffs, rhos, weights = [], [], [], []
    for a, b in zip(firsts, seconds, strict=True):
        a, b = _spatial(a, ndim), _spatial(b, ndim)
        d = (a - b) / np.sqrt(2.0)
        level = _smoothed((a + b) / 2)
        ok = np.isfinite(d) & np.isfinite(level)
        levels.append(level[ok])
        diffs.append(d[ok])
        rhos.append(_autocorrelation(np.where(ok, d - np.nanmean(d), np.nan), ndim))
        weights.append(float(ok.sum()))
    x, v, w = _binned(np.concatenate(levels), np.concatenate(diffs), bins)
    slope, icpt = _line(x, v, w)
    return PairNoise(
        level=[float(t) for t in x],
        variance=[float(t) for t in v],
        count=[int(t) for t in w],
        a=slope,
        b=icpt,
        correlation=_pooled(rhos, weights),
        halves_correlation=r,
    )


def _pooled(rhos: list[dict], weights: list[float]) -> dict:
    """Per-image correlations per axis, averaged with the images' pixel counts as weights."""
    out = {}
    for ax in sorted({k for c in rhos for k in c}, key="ZYX".index):
        have = [(c[ax], w) for c, w in zip(rhos, weights, strict=True) if ax in c]
        out[ax] = [float(t) for t in np.average([r for r, _ in have], axis=0, weights=[w for _, w in have])]
    return out


def _binned(level: np.ndarray, d: np.ndarray, bins: int):
    """Mean level, mean squared difference and count per quantile bin of ``level`` (bins
    of fewer than 16 pixels are left out)."""
    edges = np.unique(np.quantile(level, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, max(len(edges) - 2, 0))
    xs, vs, ws = [], [], []
    for i in range(max(len(edges) - 1, 1)):
        sel = idx == i
        if sel.sum() < 16:
            continue
        xs.append(level[sel].mean())
        vs.append(np.mean(np.square(d[sel])))
        ws.append(sel.sum())
    return np.array(xs, float), np.array(vs, float), np.array(ws, float)


def _line(x: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares line through the bins, its value at zero signal kept positive
    (at least 1 % of the smallest bin): a camera pedestal would otherwise extrapolate to a
    negative variance below the measured range."""
    if v.size == 0:
        return 0.0, 0.0
    floor = 0.01 * float(v.min())
    if x.size < 2 or np.ptp(x) <= 0:
        return 0.0, max(float(np.average(v, weights=w)), floor)
    design = np.stack([x, np.ones_like(x)], 1) * np.sqrt(w)[:, None]
    slope, icpt = np.linalg.lstsq(design, v * np.sqrt(w), rcond=None)[0]
    if icpt < floor:  # the best line with its intercept held at the floor
        icpt = floor
        slope = float(np.sum(w * x * (v - floor)) / max(np.sum(w * x * x), 1e-300))
    return float(slope), float(icpt)


def half_mean(y1: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """The mean of the two halves (float32): the signal with half a half's noise variance."""
    return ((np.asarray(y1, np.float64) + np.asarray(y2, np.float64)) / 2).astype(np.float32)
