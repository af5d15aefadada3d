"""Choices offered by the widgets, kept here so that building a widget imports no torch.

They mirror constants of the torch-side core (``core.bayes.NOISE_PARAMS``,
``core.model.WIDTHS``, ``core.infer.OUTPUTS``); a test checks that they agree.
"""

from __future__ import annotations

#: Noise model -> its parameters, in the order the widget shows them.
NOISE_PARAMS = {
    "gaussian": ("sigma",),
    "poisson": ("lam",),
    "poisson-gaussian": ("a", "b"),
    "impulse": ("alpha",),
}

#: What each noise parameter means, for tooltips.
PARAM_HELP = {
    "sigma": "standard deviation of the Gaussian noise, in the units of the image",
    "lam": "photon scale: counts = lam * intensity; noise variance = intensity / lam",
    "a": "signal-dependent variance factor: variance = a * intensity + b",
    "b": "signal-independent variance (read noise squared), in squared image units",
    "alpha": "fraction of pixels replaced by random values (0 < alpha < 1)",
}

#: Network width presets, smallest first.
WIDTHS = ("tiny", "light", "paper")

#: Denoising outputs and the suffix of the layer each one goes to.
OUTPUTS = ("posterior-mean", "prior-mean", "posterior-std", "residual")
OUTPUT_SUFFIX = {
    "posterior-mean": "_ssdn",
    "prior-mean": "_ssdn_prior",
    "posterior-std": "_ssdn_std",
    "residual": "_ssdn_residual",
}

DEVICES = ("auto", "cpu", "cuda", "mps")
