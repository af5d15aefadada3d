"""Names shared by the core, the command line and the widgets (torch-free on purpose)."""

import math

from .errors import SSDNError, setting

NOISE_MODELS = ("gaussian", "poisson", "poisson-gaussian", "curve", "impulse")
#: Parameters of each noise model (data units): Gaussian std, Poisson lambda
#: (variance = mean / lambda), camera model variance = a * mean + b, impulse fraction.
#: The curve model's variance is a measured table (``ModelConfig.noise_curve``), no scalar.
NOISE_PARAMS = {
    "gaussian": ("sigma",),
    "poisson": ("lam",),
    "poisson-gaussian": ("a", "b"),
    "curve": (),
    "impulse": ("alpha",),
}
#: Width presets: name -> (encoder, decoder, depth). "paper" is Laine et al.'s network;
#: "tiny" is the default on a CPU and where a shipped start fits (most quality per minute
#: there, docs/benchmarks.md); "light" is the GPU default otherwise.
WIDTHS = {"paper": (48, 96, 5), "light": (32, 64, 4), "tiny": (16, 32, 3)}
#: ssdn: blind-spot + Bayesian posterior; mu-only: blind-spot trained with L2 to the noisy
#: input (the "no Bayes" / Noise2Void-like baseline); supervised: plain U-Net, L2 to clean.
MODES = ("ssdn", "mu-only", "supervised")
#: How a run learns from two observations of one field (core/training/pairing.py).
PAIR_METHODS = ("auto", "noise2noise", "mean")
#: What inference can return.
OUTPUTS = ("posterior-mean", "prior-mean", "posterior-std", "residual")


def check_noise_params(noise: str, params: dict) -> dict:
    """Noise parameters as floats, or :class:`SSDNError` naming the first bad one.

    ``None`` values (meaning "learn it") are dropped.
    """
    allowed = NOISE_PARAMS[noise]
    out = {}
    for k, v in params.items():
        if k not in allowed:
            raise SSDNError(
                f"noise parameter {k!r} does not belong to {setting('noise', noise)}; it takes {', '.join(allowed)}"
            )
        if v is None:
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = float("nan")
        if not (math.isfinite(v) and v > 0):
            raise SSDNError(
                f"noise parameter {setting(k, v)} must be a positive number; "
                "give a positive value or leave it out to learn it"
            )
        if k == "alpha" and v >= 1:
            raise SSDNError(f"noise parameter {setting('alpha', v)} must be below 1 (the fraction of corrupted pixels)")
        out[k] = v
    return out


#: Largest final shift of the blind region per axis: 2 * 8 - 1 = 15 pixels hidden across,
#: beyond any neighbour correlation measured in microscopy or cryo-EM data.
MAX_BLIND = 8


def region_extent(region) -> str:
    """The pixels a blind region hides across each axis.

    Parameters
    ----------
    region : sequence of int
        The final shift ``k`` per axis (one axis alone gives one number).

    Returns
    -------
    str
        ``2 k - 1`` per axis, e.g. ``(2, 3)`` -> ``'3 x 5'`` and ``(4,)`` -> ``'7'``.
    """
    return " x ".join(str(2 * int(k) - 1) for k in region)


def region_text(region) -> str:
    """``(k_y, k_x)`` as the hidden extent, e.g. ``(2, 3)`` -> ``'3 x 5 pixels (k = 2,3)'``."""
    return f"{region_extent(region)} pixels (k = {','.join(str(k) for k in region)})"


def check_blind_region(region, ndim: int, name: str = "blind", shown=None) -> tuple:
    """The blind region as a tuple of ints, or :class:`SSDNError` naming the bad value.

    ``region`` is empty (the centre pixel), one k for every axis, or one per spatial axis
    (y, x; or z, y, x for volumes). ``shown`` is the value as the user gave it."""
    try:
        ks = tuple(int(k) for k in region)
        ok = all(float(k) == int(k) for k in region)
    except (TypeError, ValueError):
        ks, ok = (), False
    axes = "y, x" if ndim == 2 else "z, y, x"
    if not ok or (ks and len(ks) not in (1, ndim)) or any(not 1 <= k <= MAX_BLIND for k in ks):
        given = shown if shown is not None else region
        raise SSDNError(
            f"{setting(name, given)} is not a blind region: give one whole number from 1 to {MAX_BLIND} for every axis "
            f"or one per axis ({axes}), e.g. 2 or {'1,3' if ndim == 2 else '2,1,1'}; 1 hides the centre pixel alone"
        )
    return ks * ndim if len(ks) == 1 else ks
