"""A new model for a training run: its architecture and noise model from the settings and
the choices read from the data, its noise parameters at their classical estimate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..data import Normalization
from ..nets.model import WIDTHS, ModelConfig, SSDNModel, params_to_data
from ..nets.warmstart import mean_noise_std, start_prior_std
from ..noise.bayes import NOISE_PARAMS
from ..noise.curve import variance_curve
from ..noise.estimate import estimate_noise
from .settings import TrainConfig, Tuning

__all__ = ["model_config", "new_model", "new_optimizer", "curve_to_data"]


def model_config(c: TrainConfig, channels: int, device: torch.device, subsample: int, choices=None) -> ModelConfig:
    """The new model's architecture and noise model, before the data's normalisation and
    noise estimate are known; ``choices`` (:class:`~.auto.DataChoices`) fill what was left
    to the data."""
    enc, dec, depth = WIDTHS[c.width_for(device, c.takes_generic_start(channels, subsample))]
    if c.ndim == 3:
        # One level less for volumes: a 3D level sees 8x the voxels of a 2D one, and
        # the receptive field (hence the tile overlap) halves.
        depth -= 1
    return ModelConfig(
        channels=channels,
        enc=enc,
        dec=dec,
        depth=depth,
        mode=c.mode,
        noise=c.noise,
        per_image=choices.per_image if choices is not None else bool(c.per_image),
        ndim=c.ndim,
        flat=min(c.flat_levels, depth - 1),
        subsample=subsample,
        blind_region=c.blind_region_given() if c.mode != "supervised" else (),
        noise_lag=choices.noise_lag if choices is not None else 0,
        channels_apart=choices is not None and choices.channels_apart,
    )


def new_model(
    c: TrainConfig, base: ModelConfig, gaps: list[np.ndarray], norm: Normalization, tuning: Tuning
) -> SSDNModel:
    """A model of ``base`` for the normalised data ``gaps`` (``(S, *spatial, C)``, NaN where
    held out), its learned noise parameters at their classical estimate and its prior's
    spread at the noise's."""
    init = dict(c.known_noise_params)
    learned = tuple(n for n in NOISE_PARAMS[c.noise] if n not in init)
    if learned and c.mode == "ssdn":
        # Volumes are estimated slice by slice: the estimators work on 2D images.
        # Pixels as far apart as the blind region: under correlated noise, neighbours
        # differ by only part of it.
        est = estimate_noise([s.reshape((-1,) + s.shape[-3:]) for s in gaps], c.noise, lag=base.level_lag)
        est_data = params_to_data(c.noise, est, norm.offset, norm.scale)
        init.update({n: est_data[n] for n in learned})
    curve = {}
    if base.noise == "curve" and c.mode == "ssdn":
        curve = curve_to_data(variance_curve([s.reshape((-1,) + s.shape[-3:]) for s in gaps], lag=base.level_lag), norm)
    torch.manual_seed(c.seed)
    model = SSDNModel(
        replace(base, noise_init=init, learned=learned, offset=norm.offset, scale=norm.scale, noise_curve=curve)
    )
    if c.mode == "ssdn":
        start_prior_std(model, tuning.prior_std_start * mean_noise_std(model, gaps))
    return model


def curve_to_data(curve: dict, norm: Normalization) -> dict:
    """A variance curve measured in network units, in data units."""
    return {
        "mean": [norm.offset + norm.scale * x for x in curve["mean"]],
        "variance": [norm.scale**2 * v for v in curve["variance"]],
    }


def new_optimizer(model: SSDNModel, lr: float, resume_info: dict | None = None) -> torch.optim.Optimizer:
    """Adam over the prior network, the learned noise scalars and the per-image estimator
    (three groups: the run sets each one's rate), with a resumed model's state."""
    est = model.estimator
    groups = [
        {"params": list(model.net.parameters())},
        {"params": [model.log_scale]},
        {"params": list(est.parameters()) if est is not None else []},
    ]
    optimizer = torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.99))
    if (resume_info or {}).get("optimizer"):
        try:
            optimizer.load_state_dict(resume_info["optimizer"])
        except (ValueError, KeyError):
            pass  # a different optimizer layout: start Adam afresh, keep the weights
    return optimizer
