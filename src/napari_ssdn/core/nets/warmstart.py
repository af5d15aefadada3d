"""Where training starts: the shipped generic networks, copying a start's weights into a
new model, and the prior variance every pixel starts with."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SSDNError, setting

if TYPE_CHECKING:
    from .model import SSDNModel

__all__ = ["GENERIC_STARTS", "generic_start", "auto_starts", "warm_start", "mean_noise_std", "start_prior_std"]

#: Generic starting networks shipped in ``napari_ssdn/core/weights`` (trained by
#: benchmarks/pretrain_generic.py, self-supervised: gray on Kodak in gray, RGB on Set14),
#: by architecture: (channels, enc, dec, depth, ndim, subsample).
GENERIC_STARTS = {(1, 16, 32, 3, 2, 1): "generic_gray_tiny.ssdn", (3, 16, 32, 3, 2, 1): "generic_rgb_tiny.ssdn"}
#: Modes that start from the shipped (blind-spot) networks: the mu-only baseline keeps their
#: mean rows, so that it differs from ours only in its loss.
BLIND_MODES = ("ssdn", "mu-only")
#: Noise models that ``init="auto"`` starts from the shipped network, by image channels:
#: where it was measured to help (docs/benchmarks.md). Gray Poisson-Gaussian takes it since
#: its parameters keep their classical estimate (``Tuning.frozen_noise``): on the FMD
#: microscopy sets, 3 minutes gave +0.19 dB on confocal FISH and -0.04 to +0.02 on the
#: other three (the measured ``curve`` variant likewise). Impulse noise on RGB is left
#: out: on Kodak the warm start learned alpha 0.63 instead of 0.5 and ended 1 dB behind random weights.
AUTO_START_NOISE = {1: ("gaussian", "poisson", "poisson-gaussian", "curve", "impulse"), 3: ("gaussian", "poisson")}
#: Peak learning rate when fine-tuning a warm start: at 2e-3 five minutes on one 256 x 256
#: image memorised its noise (sigma learned 21-23 instead of 25, posterior below the prior).
FINE_TUNE_LR = 3e-4
#: Peak learning rate when fine-tuning on at least FINE_TUNE_LARGE_DATA pixels: with the
#: data's noise too varied to memorise, the faster rate adapts more. 15 minutes on the 68
#: BSD68 images (10.5 megapixels) gave 28.71 dB at 1e-3 against 28.61 at 3e-4.
FINE_TUNE_LR_LARGE = 1e-3
FINE_TUNE_LARGE_DATA = 1_500_000


def auto_starts(channels: int, noise: str) -> bool:
    """Whether ``init="auto"`` takes the shipped start for this noise on ``channels``."""
    return noise in AUTO_START_NOISE.get(channels, ())


def generic_start(config):
    """The shipped generic starting network that fits ``config``'s architecture, or None.

    Parameters
    ----------
    config : ModelConfig

    Returns
    -------
    importlib.resources.abc.Traversable or None
        The model file, for blind-spot models (``ssdn``, ``mu-only``) of a shipped architecture only.
    """
    from importlib.resources import files

    key = (config.channels, config.enc, config.dec, config.depth, config.ndim, config.subsample)
    name = GENERIC_STARTS.get(key)
    if config.mode not in BLIND_MODES or name is None:
        return None
    return files("napari_ssdn.core") / "weights" / name


def warm_start(model, init) -> str | None:
    """Copy prior-network weights from ``init`` into ``model``.

    Parameters
    ----------
    model : SSDNModel
    init : str, path or None
        ``auto``, ``generic``, ``none``/None or a model file (see ``TrainConfig.init``).

    Returns
    -------
    str or None
        Where the weights came from: ``generic``, the file's path, or None (random weights).
    """
    choice = str(init).lower()
    if init is None or choice == "none":
        return None
    from ..modelfile import read_model_file

    path, shipped = init, choice in ("generic", "auto")
    if shipped:
        path = generic_start(model.config)
        if choice == "auto" and (path is None or not auto_starts(model.config.channels, model.config.noise)):
            return None
        if path is None:
            raise SSDNError(
                f"{setting('init', 'generic')}: no generic starting network fits a {model.describe()} "
                f"(shipped: gray or RGB 2D images, tiny width, ssdn or mu-only mode); "
                f"use {setting('init', 'none')} or a model file"
            )
    if not shipped and not Path(path).exists():
        raise SSDNError(
            f"{setting('init', init)}: no such model file; pass a model file, "
            f"{setting('init', 'generic')} or {setting('init', 'none')}"
        )
    state = read_model_file(path)["state"]
    own = model.state_dict()
    # Every tensor of the prior network must fit. The head's last layer may differ only for
    # the mu-only baseline, whose head predicts the mean alone: it keeps the mean's rows
    # (the first C) of a blind-spot model's last layer, so both start from the same prior mean.
    last = f"net.head.{len(model.net.head) - 1}." if model.config.mode == "mu-only" else None
    weights = {
        k: v[: own[k].shape[0]] if last and k.startswith(last) else v
        for k, v in state.items()
        if k.startswith("net.") and k in own
    }
    weights = {k: v for k, v in weights.items() if own[k].shape == v.shape}
    body = [k for k in own if k.startswith("net.") and not k.startswith("net.head.")]
    if not all(k in weights for k in body):
        raise SSDNError(
            f"{setting('init', init)} holds no weights that fit a {model.describe()}; "
            f"use {setting('init', 'none')} or a model of the same width"
        )
    model.load_state_dict(weights, strict=False)
    return "generic" if shipped else str(path)


def mean_noise_std(model: SSDNModel, samples: list[np.ndarray]) -> float:
    """Noise std (normalised units) at the data's mean level, from the model's starting parameters."""
    import torch

    with torch.no_grad():
        p = {k: float(torch.as_tensor(v).mean()) for k, v in model.noise_params().items()}
    mean = float(np.mean([np.nanmean(s) for s in samples]))
    if "sigma" in p:
        return p["sigma"]
    if "lam" in p:
        return math.sqrt(max(mean, 1e-3) / p["lam"])
    if "a" in p:
        return math.sqrt(max(p["a"] * max(mean, 0.0) + p["b"], 1e-12))
    return 0.0  # impulse: no Gaussian noise level to compare with


def start_prior_std(model: SSDNModel, std: float) -> None:
    """Start the covariance factor U at ``std`` times the identity at every pixel."""
    import torch

    if not std > 0:
        return
    last = model.net.head[-1]
    c = model.config.channels
    rows, cols = np.tril_indices(c)
    with torch.no_grad():
        for k, (r, col) in enumerate(zip(rows, cols, strict=True)):
            last.weight[c + k].zero_()
            last.bias[c + k] = std if r == col else 0.0
