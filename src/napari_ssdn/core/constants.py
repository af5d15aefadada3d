"""Names shared by the core, the command line and the widgets (torch-free on purpose)."""

import math

from .errors import SSDNError

NOISE_MODELS = ("gaussian", "poisson", "poisson-gaussian", "impulse")
#: Parameters of each noise model (data units): Gaussian std, Poisson lambda
#: (variance = mean / lambda), camera model variance = a * mean + b, impulse fraction.
NOISE_PARAMS = {
    "gaussian": ("sigma",),
    "poisson": ("lam",),
    "poisson-gaussian": ("a", "b"),
    "impulse": ("alpha",),
}
#: Width presets: name -> (encoder, decoder, depth). "paper" is Laine et al.'s network;
#: "tiny" is the default on a CPU and where a shipped start fits (most quality per minute
#: there, docs/benchmarks.md); "light" is the GPU default otherwise.
WIDTHS = {"paper": (48, 96, 5), "light": (32, 64, 4), "tiny": (16, 32, 3)}
#: ssdn: blind-spot + Bayesian posterior; mu-only: blind-spot trained with L2 to the noisy
#: input (the "no Bayes" / Noise2Void-like baseline); supervised: plain U-Net, L2 to clean.
MODES = ("ssdn", "mu-only", "supervised")
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
            raise SSDNError(f"noise parameter {k!r} does not belong to noise={noise!r}; it takes {', '.join(allowed)}")
        if v is None:
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = float("nan")
        if not (math.isfinite(v) and v > 0):
            raise SSDNError(f"noise parameter {k}={v!r} must be a positive number; give a positive value or leave it out to learn it")
        if k == "alpha" and v >= 1:
            raise SSDNError(f"noise parameter alpha={v!r} must be below 1 (the fraction of corrupted pixels)")
        out[k] = v
    return out
