"""Training on two observations of one field (even/odd halves, repeated frames).

The halves' difference gives their noise exactly (:mod:`..noise.pairs`). Two ways to learn:

- ``noise2noise``: a non-blind network from each half to the other (Lehtinen et al. 2018).
  It sees every pixel, the centre and its correlated neighbours included, because the other
  half's noise is independent of all of them.
- ``mean``: the blind-spot network with its Bayesian posterior on the halves' mean, whose noise
  (half a half's variance) and correlation are the measured ones, known instead of learned.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..constants import PAIR_METHODS, region_text
from ..errors import SSDNError, setting
from ..noise.pairs import PairNoise, check_pair, pair_noise

__all__ = ["PAIR_METHODS", "PairSetup", "pair_setup"]


@dataclass(frozen=True)
class PairSetup:
    """What a pair gives a training run.

    Attributes
    ----------
    method : str
        ``noise2noise`` or ``mean`` (see the module's text).
    why : str
        Why ``auto`` chose it (or ``given``).
    noise : str
        The noise model of the halves' mean (``gaussian`` or ``poisson-gaussian``).
    params : dict
        Its parameters in data units, as measured.
    region : tuple of int
        The final shift per spatial axis that hides the measured correlation (``mean``).
    measured : PairNoise
        The noise of one half as measured.
    """

    method: str
    why: str
    noise: str
    params: dict
    region: tuple
    measured: PairNoise

    def inputs(self, first: list, second: list) -> tuple[list, list | None]:
        """The arrays the network learns from, and their targets (None: self-supervised)."""
        if self.method == "noise2noise":
            return first + second, second + first
        means = [((a.astype(np.float64) + b) / 2).astype(np.float32) for a, b in zip(first, second, strict=True)]
        return means, None

    def config(self, config):
        """``config`` with what the pair settles: the mode, or the noise and blind region."""
        if self.method == "noise2noise":
            return replace(config, mode="supervised", blind=(1,) * config.ndim, per_image=False)
        return replace(config, noise=self.noise, noise_params=self.params, blind=self.region, per_image=False)

    def noise_why(self) -> str:
        return self.measured.describe()

    def blind_why(self) -> str:
        rho = "; ".join(f"{ax} {' '.join(f'{r:.2f}' for r in v)}" for ax, v in self.measured.correlation.items())
        return f"noise correlation measured from the halves (lags 1-4: {rho})"

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "why": self.why,
            "noise": self.noise,
            "params": dict(self.params),
            "region": list(self.region),
            "measured": self.measured.to_dict(),
        }


def pair_setup(first: list[np.ndarray], second: list[np.ndarray], ndim: int = 2, method: str = "auto") -> PairSetup:
    """Check two lists of ``(S, *spatial, C)`` arrays as pairs, measure their noise, choose how
    to learn from them.

    Parameters
    ----------
    first, second : list of ndarray
        The first and the second observation of each image: same shapes, one channel.
    ndim : int
        Spatial dimensions.
    method : str
        ``auto`` (see :func:`choose_method`), ``noise2noise`` or ``mean``.

    Returns
    -------
    PairSetup
    """
    if method not in PAIR_METHODS:
        raise SSDNError(f"{setting('pair_method', method)} is not one of {', '.join(PAIR_METHODS)}")
    if len(first) != len(second):
        raise SSDNError(f"{len(first)} image(s) but {len(second)} other half(s); give one other half for each image")
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        if a.shape[-1] != 1:
            raise SSDNError(
                f"image {i} has {a.shape[-1]} channels; pairs (even/odd halves, frames) take one-channel "
                "data: give each channel as its own pair"
            )
        check_pair(a[..., 0], b[..., 0], ndim, names=(f"image {i}", "its other half"))
    measured = pair_noise([a[..., 0] for a in first], [b[..., 0] for b in second], ndim, check=False)
    noise, params = measured.noise_params(of_mean=True)
    chosen, why = (method, "given") if method != "auto" else choose_method(measured)
    return PairSetup(chosen, why, noise, params, measured.blind_region(), measured)


def choose_method(measured: PairNoise) -> tuple[str, str]:
    """``noise2noise`` where the measured noise is correlated between neighbours (a blind
    region larger than one pixel), else ``mean``, and why.

    On the documented phantoms (docs/benchmarks.md, "Pairs"), noise correlated along x by a
    1 x 5 box: Noise2Noise 22.3 dB, the blind-spot network on the mean 18.0 (its 1 x 5 blind
    region hides the neighbours that carry the signal); white Poisson-Gaussian noise: the
    blind-spot network on the mean 35.0 dB, Noise2Noise 32.5 (the posterior uses the mean's
    own pixel, at half the noise).
    """
    region = measured.blind_region()
    if max(region) > 1:
        return "noise2noise", (
            f"noise correlated between neighbours (a blind spot would hide {region_text(region)}): "
            "a network from one half to the other sees them"
        )
    return "mean", (
        "noise independent between pixels: the blind-spot network on the halves' mean, "
        "its posterior using the mean's own pixel at half the noise"
    )


def resumed_pair_method(model) -> str:
    """How a model already trained on pairs learns from them: a non-blind (supervised-mode)
    network from one half to the other, else the blind-spot network on the mean."""
    return "noise2noise" if model.config.mode == "supervised" else "mean"
