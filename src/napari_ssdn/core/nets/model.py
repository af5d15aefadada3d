"""The trainable denoiser: prior network, noise model and its (learned) parameters."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..constants import MAX_BLIND, MODES, NOISE_MODELS, NOISE_PARAMS, WIDTHS, check_blind_region, region_text
from ..errors import SSDNError, setting
from ..noise.bayes import n_outputs
from ..noise.estimate import estimate_noise
from .network import ArchConfig, PlainNet, build_network

__all__ = ["WIDTHS", "MODES", "MAX_BLIND", "ModelConfig", "SSDNModel", "params_to_data", "params_to_norm"]

#: Per-image models: the estimator network's log correction to each image's classical
#: estimate is bounded to +-log(2) (tanh), so that it refines and cannot run away: an
#: unbounded offset let the prior absorb the noise and sent sigma to 0 within 60 steps.
PER_IMAGE_BOUND = math.log(2.0)
#: Per-image models: each image's classical estimate is kept within this factor of the
#: data set's, so that a flat or empty image cannot give an absurd start.
ANCHOR_RANGE = math.log(50.0)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored as plain JSON in the model file.

    Attributes
    ----------
    channels : int
        Image channels C.
    enc, dec, depth : int
        Network width and depth (see :data:`WIDTHS`).
    mode : str
        One of :data:`MODES`.
    noise : str
        Noise model name.
    noise_init : dict
        Noise parameters in data units: the given values, or the starting estimates of
        learned ones.
    learned : tuple of str
        Names of the learned noise parameters.
    per_image : bool
        Learned parameters vary per image (a non-blind estimator network reads each image).
    offset, scale : float
        Normalisation, data = offset + scale * network units.
    ndim : int
        2 (images, slices of stacks) or 3 (volumes).
    flat : int
        Volumes: number of first pooling levels that pool in-plane only (anisotropic voxels).
    subsample : int
        Pixel-shuffle factor f: the network works on the f x f interleaved sub-images
        (:func:`~napari_ssdn.core.data.split_phases`), for spatially correlated noise.
    noise_lag : int
        Distance of the pixels whose differences give the classical noise estimates (0:
        the blind region's largest in-plane k).
    blind_region : tuple of int
        Blind-spot models: the final shift k per spatial axis (y, x; volumes z, y, x).
        The network never sees the offsets with ``|d| < k`` on every axis, so noise
        correlated over shorter distances stays independent of what it sees. Empty: 1
        on every axis (the centre pixel alone).
    channels_apart : bool
        A gray model trained on the channels of multi-channel data as separate images
        (their noise levels differ): it denoises each channel of such data as an image.
    noise_curve : dict
        The ``curve`` noise model's variance against the signal, data units: ``mean``
        (increasing) and ``variance`` (positive), lists of equal length; empty otherwise.
    """

    channels: int = 1
    enc: int = 32
    dec: int = 64
    depth: int = 4
    mode: str = "ssdn"
    noise: str = "gaussian"
    noise_init: dict = field(default_factory=dict)
    learned: tuple = ()
    per_image: bool = False
    offset: float = 0.0
    scale: float = 1.0
    ndim: int = 2
    flat: int = 0
    subsample: int = 1
    blind_region: tuple = ()
    noise_lag: int = 0
    channels_apart: bool = False
    noise_curve: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "blind_region", check_blind_region(self.blind_region, self.ndim))
        if self.ndim not in (2, 3):
            raise SSDNError(f"{setting('ndim', self.ndim)} must be 2 (images) or 3 (volumes)")
        if self.mode not in MODES:
            raise SSDNError(f"{setting('mode', self.mode)} is not one of {', '.join(MODES)}")
        if self.noise not in NOISE_MODELS:
            raise SSDNError(f"{setting('noise', self.noise)} is not one of {', '.join(NOISE_MODELS)}")

    @property
    def arch(self) -> ArchConfig:
        bayes = self.mode == "ssdn"
        return ArchConfig(
            channels=self.channels,
            outputs=n_outputs(self.channels) if bayes else self.channels,
            enc=self.enc,
            dec=self.dec,
            depth=self.depth,
            blind=self.mode != "supervised",
            ndim=self.ndim,
            flat=self.flat,
            blind_region=self.blind_region if self.mode != "supervised" else (),
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["learned"] = list(self.learned)
        d["blind_region"] = list(self.blind_region)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["learned"] = tuple(d.get("learned", ()))
        d["blind_region"] = tuple(d.get("blind_region", ()))
        return cls(**d)

    def splits_channels(self, channels: int) -> bool:
        """Whether data of ``channels`` channels go through this model channel by channel
        (a model trained on the channels of multi-channel data apart)."""
        return self.channels_apart and channels > 1

    def accepts_channels(self, channels: int) -> bool:
        """Whether this model denoises (or resumes training on) data of ``channels`` channels."""
        return channels == self.channels or self.splits_channels(channels)

    @property
    def level_lag(self) -> int:
        """Distance of the pixels whose differences give the classical noise estimates."""
        return self.noise_lag or max(self.region[-2:])

    @property
    def region(self) -> tuple[int, ...]:
        """The blind region's final shift per spatial axis (1 everywhere by default)."""
        return self.blind_region or (1,) * self.ndim


def _check_curve(curve: dict) -> None:
    """Refuse a variance curve that is not increasing knots with positive finite variances."""
    x = np.asarray(curve.get("mean", []), dtype=float)
    v = np.asarray(curve.get("variance", []), dtype=float)
    if not (x.size and x.shape == v.shape and np.all(np.isfinite(x)) and np.all(np.isfinite(v)) and np.all(v > 0)):
        raise SSDNError(
            "the curve noise model needs its variance curve: 'mean' and 'variance' lists of equal length, "
            "finite, variances positive; measure it from the data (noise=curve in training) or choose another model"
        )
    if np.any(np.diff(x) <= 0):
        raise SSDNError("the noise variance curve's 'mean' levels must increase; measure the curve again")


def params_to_norm(noise: str, params: dict, offset: float, scale: float) -> dict:
    """Convert noise parameters from data units to normalised network units.

    Poisson-Gaussian ``b`` is the variance at zero signal in data units and at the
    normalisation's offset in network units: var = a x + b = scale^2 (a' (x - offset) /
    scale + b'). Where that is not positive (a camera's pedestal above the offset makes
    the line cross zero), the smallest positive value stands in."""
    out = {}
    for k, v in params.items():
        if k == "sigma":
            out[k] = v / scale
        elif k == "lam":
            out[k] = v * scale  # var_data = mu_data / lam  <=>  var_norm = mu_norm / (lam * scale)
        elif k == "a":
            out[k] = v / scale
        elif k == "b":
            out[k] = max((v + params.get("a", 0.0) * offset) / scale**2, 1e-12)
        else:
            out[k] = v
    return out


def params_to_data(noise: str, params: dict, offset: float, scale: float) -> dict:
    """Convert noise parameters from normalised network units to data units (the inverse
    of :func:`params_to_norm`)."""
    inv = {"sigma": scale, "lam": 1.0 / scale, "a": scale, "b": scale**2}
    out = {k: float(v) * inv.get(k, 1.0) for k, v in params.items()}
    if "b" in out and "a" in out:
        out["b"] -= out["a"] * offset
    return out


class SSDNModel(nn.Module):
    """Prior network plus noise model; all tensors in normalised units.

    Parameters
    ----------
    config : ModelConfig
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net = build_network(config.arch)
        names = NOISE_PARAMS[config.noise]
        missing = [n for n in names if n not in config.noise_init]
        if config.mode == "ssdn" and missing:
            raise SSDNError(f"noise parameter(s) {missing} have no value or starting estimate")
        self.param_names = names
        self.learned = tuple(n for n in names if n in config.learned) if config.mode == "ssdn" else ()
        # Learned parameters are start_value * exp(v): v = 0 is the classical estimate, and
        # a unit step in v is a relative change, whatever the data's units.
        self.log_scale = nn.Parameter(torch.zeros(len(self.learned)))
        self.estimator = None
        if config.per_image and self.learned:
            self.estimator = PlainNet(
                ArchConfig(
                    config.channels,
                    len(self.learned),
                    enc=16,
                    dec=32,
                    depth=3,
                    blind=False,
                    ndim=config.ndim,
                    flat=min(config.flat, 2),
                ),
                zero_last=True,
            )
        base = params_to_norm(config.noise, config.noise_init, config.offset, config.scale)
        self.register_buffer(
            "base", torch.tensor([float(base.get(n, 1.0)) for n in names], dtype=torch.float64), persistent=True
        )
        curve = config.noise_curve if config.noise == "curve" else {}
        if config.noise == "curve" and config.mode == "ssdn":
            _check_curve(curve)
        # The curve in network units; rebuilt from the config, so not part of the weights.
        xs = (np.asarray(curve.get("mean", [0.0]), float) - config.offset) / config.scale
        vs = np.asarray(curve.get("variance", [1.0]), float) / config.scale**2
        self.register_buffer("curve_x", torch.tensor(xs, dtype=torch.float64), persistent=False)
        self.register_buffer("curve_v", torch.tensor(vs, dtype=torch.float64), persistent=False)

    @property
    def multiple(self) -> int:
        return self.config.arch.multiple

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Network output ``(N, K, *spatial)`` for normalised input ``(N, C, *spatial)``."""
        return self.net(y)

    def image_anchor(self, images: np.ndarray) -> torch.Tensor:
        """Per-image models: each image's classical noise estimate as a log offset to the
        data set's starting value, ``(N, L)`` float64 for the learned parameters.

        Parameters
        ----------
        images : ndarray
            Normalised ``(N, *spatial, C)`` images (or volumes, estimated slice by slice);
            NaN pixels are missing and skipped. An image with too few measured pixels for
            an estimate starts from the data set's value (offset 0).
        """
        rows = []
        for im in images:
            flat = im.reshape((-1,) + im.shape[-3:])  # volumes: their slices as 2D samples
            try:
                est = estimate_noise(
                    [np.where(np.isfinite(flat), flat, np.nan)], self.config.noise, lag=self.config.level_lag
                )
            except SSDNError:
                rows.append([0.0] * len(self.learned))
                continue
            rows.append(
                [math.log(max(est[n], 1e-12) / float(self.base[self.param_names.index(n)])) for n in self.learned]
            )
        return torch.tensor(rows, dtype=torch.float64).clamp(-ANCHOR_RANGE, ANCHOR_RANGE)

    def estimator_idle(self) -> bool:
        """Whether the per-image estimator network exists and outputs exactly zero for any
        input (its start: a zero last layer), so that leaving it out changes nothing."""
        if self.estimator is None:
            return False
        return not any(bool(p.detach().any()) for p in self.estimator.head[-1].parameters())

    def noise_params(
        self, y: torch.Tensor | None = None, anchor: torch.Tensor | None = None, refine: bool = True
    ) -> dict:
        """Noise parameters in normalised units: floats or ``(N, 1, 1)`` tensors per image.

        Per-image models given ``y`` return each image's classical estimate times the
        global learned factor times the estimator network's bounded correction. The
        estimate is ``anchor`` (:meth:`image_anchor` of the whole images when ``y`` holds
        crops of them), or computed from ``y`` itself when not given. ``refine=False``
        leaves the estimator's correction out (for an :meth:`estimator_idle` one: the same
        values, without its forward and backward pass).
        """
        if self.config.noise == "curve":
            return {"curve_x": self.curve_x, "curve_v": self.curve_v}
        out = {}
        per_image = None
        if self.estimator is not None and y is not None:
            if anchor is None:
                anchor = self.image_anchor(y.detach().movedim(1, -1).float().cpu().numpy())
            per_image = anchor.to(device=y.device, dtype=torch.float64)
            if refine:
                spatial = tuple(range(2, y.dim()))
                raw = self.estimator(y.float()).float().mean(dim=spatial).to(torch.float64)  # (N, L)
                per_image = PER_IMAGE_BOUND * torch.tanh(raw / PER_IMAGE_BOUND) + per_image
        for i, name in enumerate(self.param_names):
            base = self.base[i]
            if name in self.learned:
                j = self.learned.index(name)
                v = self.log_scale[j].to(torch.float64)
                if per_image is not None:
                    v = (v + per_image[:, j]).reshape((-1,) + (1,) * (y.dim() - 2))
                out[name] = base * torch.exp(v)
            else:
                out[name] = base
        return out

    def noise_params_data(self, y: torch.Tensor | None = None) -> dict:
        """Noise parameters in data units (global values, or the mean over images of ``y``);
        empty for the baselines, which have no noise model (``mu-only``, ``supervised``)."""
        if self.config.mode != "ssdn" or self.config.noise == "curve":
            return {}
        with torch.no_grad():
            p = self.noise_params(y)
        vals = {k: float(torch.as_tensor(v).mean()) for k, v in p.items()}
        return params_to_data(self.config.noise, vals, self.config.offset, self.config.scale)

    def noise_curve_data(self) -> dict:
        """The noise variance against the signal that this model's posterior uses, data
        units: the ``curve`` model's table (``mean``, ``variance``), else empty."""
        if self.config.mode != "ssdn" or self.config.noise != "curve":
            return {}
        return {k: list(self.config.noise_curve[k]) for k in ("mean", "variance")}

    def describe(self) -> str:
        c = self.config
        kind = {
            "ssdn": "blind-spot, Bayesian",
            "mu-only": "blind-spot, mean only",
            "supervised": "non-blind, supervised",
        }
        dims = "2D" if c.ndim == 2 else (f"3D, the first {c.flat} level(s) pooling y and x only" if c.flat else "3D")
        region = ""
        if c.mode != "supervised" and any(k > 1 for k in c.region):
            region = f", blind region {region_text(c.region)}"
        return (
            f"{kind[c.mode]} {dims} U-Net enc {c.enc} / dec {c.dec}, depth {c.depth}, {c.channels} channel(s){region}"
        )
