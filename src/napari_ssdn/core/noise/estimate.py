"""Classical noise-level estimates: the starting point of every learned noise parameter.

The paper learns the noise level from scratch, which takes hundreds of thousands of
steps; starting from these estimates, minutes of training refine it instead.
All functions take normalised ``(S, H, W, C)`` arrays and return normalised units.
"""

from __future__ import annotations

import numpy as np

from ..errors import SSDNError, setting

__all__ = ["estimate_noise", "level_spread", "PER_IMAGE_SPREAD"]

_MAD = 0.6745


def _haar(samples: list[np.ndarray], limit: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Local means and diagonal Haar details of the flattest 2x2 blocks, for all channels.

    Texture leaks into the details and inflates the estimate, so blocks whose
    neighbourhood varies most (at the coarser scale of the block means, which is
    independent of the block's own detail for Gaussian noise) are left out: of each
    quintile of brightness, only the flattest quarter is kept.
    """
    means, details, activity = [], [], []
    total = 0
    for s in samples:
        for k in range(s.shape[0]):
            img = np.asarray(s[k], dtype=np.float64)
            h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
            a, b = img[0:h:2, 0:w:2], img[0:h:2, 1:w:2]
            c, d = img[1:h:2, 0:w:2], img[1:h:2, 1:w:2]
            # (a - b - c + d) / 2 cancels any locally linear signal; its variance is the
            # mean noise variance of the four pixels.
            det = (a - b - c + d) / 2
            m = (a + b + c + d) / 4
            p = np.pad(m, ((1, 1), (1, 1), (0, 0)), mode="edge")
            act = np.abs(p[2:, 1:-1] - p[:-2, 1:-1]) + np.abs(p[1:-1, 2:] - p[1:-1, :-2])
            details.append(det.reshape(-1))
            means.append(m.reshape(-1))
            activity.append(act.reshape(-1))
            total += int(np.isfinite(det).sum())  # missing pixels (NaN) do not count towards the limit
            if total >= limit:
                break
        if total >= limit:
            break
    m, d, act = np.concatenate(means), np.concatenate(details), np.concatenate(activity)
    ok = np.isfinite(m) & np.isfinite(d) & np.isfinite(act)
    m, d, act = m[ok], d[ok], act[ok]
    if m.size == 0:
        raise SSDNError(
            "too few measured pixels (2 x 2 blocks without NaN) to estimate the noise; give its parameters "
            f"(e.g. {setting('sigma')}) or more data"
        )
    keep = np.zeros(m.size, bool)
    edges = np.quantile(m, np.linspace(0, 1, 6))
    bins = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, 4)
    for i in range(5):
        sel = bins == i
        if sel.sum() > 0:
            keep[sel] = act[sel] <= np.quantile(act[sel], 0.25)
    return m[keep], d[keep]


def _robust_var(d: np.ndarray) -> float:
    ad = np.abs(d)
    if ad.size and (np.median(ad) == 0 or np.unique(ad[:100_000]).size < 200):
        # Integer data with a noise of a few grey levels (e.g. int8 tomograms): details
        # take a handful of values, often 0, and their median is too coarse (or says "no
        # noise"). Use the second moment of the central 95 % instead (x 1/0.759: the
        # second moment of a Gaussian truncated at +-1.96 sigma).
        cut = np.quantile(ad, 0.95)
        return float(np.mean(np.square(d[ad <= cut])) / 0.759)
    return float((np.median(ad) / _MAD) ** 2)


def _fit_variance_line(m: np.ndarray, d: np.ndarray, through_origin: bool) -> tuple[float, float]:
    """Fit var = a * mean + b over quantile bins of the local mean (robust variance per bin).

    Bins hold at least 50 blocks where the data allow: a small image (64 x 64 keeps some
    250 blocks) gets fewer, wider bins instead of none, and a single bin fits a line
    through the origin.
    """
    bins = int(np.clip(m.size // 50, 1, 20))
    edges = np.unique(np.quantile(m, np.linspace(0, 1, bins + 1)))
    xs, vs, ws = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (m >= lo) & ((m < hi) if hi < edges[-1] else (m <= hi))
        if sel.sum() < min(50, m.size // 2):
            continue
        xs.append(float(np.median(m[sel])))
        vs.append(_robust_var(d[sel]))
        ws.append(float(sel.sum()))
    x, v, w = np.array(xs), np.array(vs), np.array(ws)
    if through_origin or x.size < 2:
        x = np.clip(x, 0, None)
        return float((w * x * v).sum() / max((w * x * x).sum(), 1e-12)), 0.0
    a_mat = np.stack([x, np.ones_like(x)], 1) * np.sqrt(w)[:, None]
    a, b = np.linalg.lstsq(a_mat, v * np.sqrt(w), rcond=None)[0]
    return float(a), float(b)


def _impulse_fraction(samples: list[np.ndarray], limit: int = 1_000_000) -> float:
    diffs, total = [], 0
    for s in samples:
        for k in range(s.shape[0]):
            img = np.asarray(s[k], dtype=np.float64)
            p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
            h, w = img.shape[:2]
            stack = np.stack([p[i : i + h, j : j + w] for i in range(3) for j in range(3)])
            r = np.abs(img - np.median(stack, axis=0)).max(-1).reshape(-1)
            diffs.append(r[np.isfinite(r)])  # next to a missing pixel there is no local median
            total += diffs[-1].size
            if total >= limit:
                break
        if total >= limit:
            break
    r = np.concatenate(diffs)
    if r.size == 0:
        raise SSDNError(
            "too few measured pixels (3 x 3 neighbourhoods without NaN) to estimate the impulse fraction; "
            f"give it ({setting('alpha')}) or more data"
        )
    # An impulse is uniform on [0, 1], so it lands more than 0.1 from the local median
    # about 80 % of the time; clean pixels rarely do.
    return float(np.clip((r > 0.1).mean() / 0.8, 0.02, 0.98))


def _phases(samples: list[np.ndarray], lag: int) -> list[np.ndarray]:
    """The ``lag`` x ``lag`` interleaved sub-images: their neighbours are ``lag`` apart."""
    if lag <= 1:
        return samples
    from ..data import split_phases

    out = []
    for s in samples:
        n, h, w, c = s.shape
        if h >= 4 * lag and w >= 4 * lag:
            out.append(split_phases(np.asarray(s[:, : (h // lag) * lag, : (w // lag) * lag]), lag))
    return out or samples


def estimate_noise(samples: list[np.ndarray], model: str, lag: int = 1) -> dict:
    """Classical estimate of the noise parameters of ``model`` in normalised units.

    Parameters
    ----------
    samples : list of ndarray
        Normalised ``(S, H, W, C)`` arrays.
    model : str
        One of ``gaussian``, ``poisson``, ``poisson-gaussian``, ``impulse``.
    lag : int
        Distance of the pixels differenced: 1 for noise independent between pixels; for
        noise correlated over shorter distances than ``lag``, the details of pixels
        ``lag`` apart see the whole per-pixel variance, where neighbours' would see only
        the part that differs between them.

    Returns
    -------
    dict
        Parameter name to value, e.g. ``{"sigma": 0.1}``.
    """
    if model == "impulse":
        return {"alpha": _impulse_fraction(samples)}
    m, d = _haar(_phases(samples, lag))
    if model == "gaussian":
        return {"sigma": max(np.sqrt(_robust_var(d)), 1e-4)}
    if model == "poisson":
        a, _ = _fit_variance_line(m, d, through_origin=True)
        return {"lam": 1.0 / max(a, 1e-6)}
    if model == "poisson-gaussian":
        a, b = _fit_variance_line(m, d, through_origin=False)
        floor = 1e-3 * max(_robust_var(d), 1e-10)
        return {"a": max(a, 1e-6), "b": max(b, floor)}
    raise ValueError(f"unknown noise model {model!r}")


#: Images whose noise variances differ by this factor or more (largest over smallest, each
#: at its own median intensity, against one estimate of them all) get a level each. Texture
#: inflates some images' estimates: ten BSD68 images under one noise level read up to 1.84.
PER_IMAGE_SPREAD = 2.0


def _variance_at(model: str, params: dict, level: float) -> float:
    if model == "gaussian":
        return params["sigma"] ** 2
    if model == "poisson":
        return max(level, 1e-12) / params["lam"]
    return params["a"] * max(level, 0.0) + params["b"]


def level_spread(images: list[np.ndarray], model: str, lag: int = 1, most: int = 16) -> float:
    """How far the noise differs between images: the largest over the smallest ratio of an
    image's own noise variance to that of one estimate over all of them, both at the
    image's median intensity (1.0: the same noise; fewer than two images measured, or the
    impulse model, also 1.0).

    Parameters
    ----------
    images : list of ndarray
        One ``(n, H, W, C)`` array per image (a volume as its ``n`` slices), any units.
    model : str
        The noise model whose parameters are estimated.
    lag : int
        As for :func:`estimate_noise`.
    most : int
        At most this many images, spread over the list, are measured.
    """
    if model == "impulse" or len(images) < 2:
        return 1.0
    if model == "curve":
        model = "poisson-gaussian"  # a line per image tells how far their levels differ
    picks = [images[i] for i in np.unique(np.linspace(0, len(images) - 1, min(most, len(images))).round().astype(int))]
    try:
        pooled = estimate_noise(picks, model, lag)
    except SSDNError:
        return 1.0
    ratios = []
    for im in picks:
        try:
            own = estimate_noise([im], model, lag)
        except SSDNError:
            continue  # too few measured pixels in this one
        level = float(np.nanmedian(im))
        ratios.append(_variance_at(model, own, level) / max(_variance_at(model, pooled, level), 1e-30))
    return float(max(ratios) / min(ratios)) if len(ratios) >= 2 else 1.0
