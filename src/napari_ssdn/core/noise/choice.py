"""Which noise model fits the data: whether the noise variance grows with the signal
(Poisson-Gaussian) or not (Gaussian), and where a camera's signal starts (its dark level).

Measured on the Haar details of the flattest 2 x 2 blocks (:mod:`.estimate`) of pixels
``lag`` apart; all functions take normalised ``(S, *spatial, C)`` arrays, NaN missing.
"""

from __future__ import annotations

import numpy as np

from ..errors import SSDNError
from .stats import BOOTSTRAP

__all__ = ["variance_growth", "growth_lower_bound", "dark_level", "choose_noise_model", "GROWTH"]

#: Poisson-Gaussian is chosen when the noise variance at the bright end (90th percentile
#: of the local mean) is clearly (a lower bound over resampled blocks) at least this many
#: times that at the dark end (10th percentile). Leaning to Poisson-Gaussian: it holds
#: constant noise too, while a Gaussian level on the FMD widefield sample (variance 1.3-1.8x
#: from dark to bright per channel) left the posterior 3.6 dB below the prior mean,
#: against 1.0 dB with Poisson-Gaussian.
GROWTH = 1.25


def variance_growth(samples: list[np.ndarray], lag: int = 1) -> tuple[float, float, float]:
    """How much the noise variance grows from the dark to the bright end of the data.

    ``lag``: difference pixels this far apart (beyond the noise's correlation, where
    neighbours' details would hold little noise and relatively more texture).

    Returns
    -------
    ratio : float
        Fitted variance at the 90th percentile of the local mean over that at the 10th.
    a, b : float
        The fitted line, variance = a * mean + b (Haar details of the flattest 2 x 2
        blocks; their scale is off under correlated noise, their ratio is not).
    """
    from .estimate import _haar, _phases

    m, d = _haar(_phases(samples, lag))
    return _growth(m, d)


def _growth(m: np.ndarray, d: np.ndarray) -> tuple[float, float, float]:
    from .estimate import _fit_variance_line

    a, b = _fit_variance_line(m, d, through_origin=False)
    lo, hi = np.quantile(m, [0.1, 0.9])
    v_lo, v_hi = a * lo + b, a * hi + b
    if not v_hi > 0:
        return 0.0, a, b
    return float(v_hi / max(v_lo, 1e-3 * v_hi)), a, b


def growth_lower_bound(samples: list[np.ndarray], lag: int = 1) -> float:
    """A lower bound (the 5th percentile over resamples of the blocks) of
    :func:`variance_growth`'s ratio: a small image's estimate is noisy."""
    from .estimate import _haar, _phases

    m, d = _haar(_phases(samples, lag))
    rng = np.random.default_rng(0)
    ratios = [_growth(m[i], d[i])[0] for i in (rng.integers(0, m.size, m.size) for _ in range(BOOTSTRAP))]
    return float(np.quantile(ratios, 0.05))


def dark_level(samples: list[np.ndarray], lag: int = 1) -> float:
    """The level where Poisson-Gaussian noise is read noise alone, in data units: where the
    variance line a * mean + b meets zero, above 0 for a camera with a pedestal, kept
    between 0 and the data's 1st percentile (a noisy line's crossing can be far off)."""
    _, a, b = variance_growth(samples, lag)
    if not a > 0:
        return 0.0
    values = np.concatenate([np.asarray(s[: max(1, s.shape[0] // 8)]).reshape(-1)[::7] for s in samples])
    values = values[np.isfinite(values)]
    low = float(np.percentile(values, 1)) if values.size else 0.0
    return float(np.clip(-b / a, 0.0, max(low, 0.0)))


def choose_noise_model(samples: list[np.ndarray], lag: int = 1, most: int = 16) -> tuple[str, str]:
    """Poisson-Gaussian where the noise variance grows with the signal (by at least
    :data:`GROWTH` from dark to bright), else Gaussian; and why.

    The growth is measured image by image (the median over at most ``most`` images spread
    over the data): images of different noise levels would otherwise pass for
    signal-dependent noise. ``lag`` as for :func:`variance_growth`."""
    images = [s[k : k + 1] for s in samples for k in range(s.shape[0])]
    picks = np.unique(np.linspace(0, len(images) - 1, min(most, len(images))).round().astype(int))
    ratios = []
    for i in picks:
        try:
            ratios.append(growth_lower_bound([images[i]], lag))
        except (SSDNError, ValueError, np.linalg.LinAlgError):
            continue  # too small or too empty an image to fit
    if not ratios:
        raise SSDNError("too few measured pixels to tell whether the noise grows with the signal")
    ratio = float(np.median(ratios))
    shown = ">100x" if ratio > 100 else f"{ratio:.2f}x"
    if ratio >= GROWTH:
        return "poisson-gaussian", f"noise variance grows with the signal (at least {shown} from dark to bright)"
    return "gaussian", f"noise variance does not clearly grow with the signal ({shown} from dark to bright, at least)"
