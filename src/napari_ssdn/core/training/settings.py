"""Training settings: what the user asks for (:class:`TrainConfig`) and the constants of the
optimisation (:class:`Tuning`); the concrete plan of one run is in :mod:`~.plan`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from ..constants import NOISE_MODELS, NOISE_PARAMS, WIDTHS, check_blind_region, check_noise_params
from ..errors import SSDNError, setting
from ..nets.warmstart import (
    BLIND_MODES,
    FINE_TUNE_LARGE_DATA,
    FINE_TUNE_LR,
    FINE_TUNE_LR_LARGE,
    GENERIC_STARTS,
    auto_starts,
)
from .fields import FIELDS

__all__ = ["Tuning", "TrainConfig"]


def _device_problem(device) -> str | None:
    if not isinstance(device, str):
        return None  # a torch.device
    d = device.strip().lower()
    if d in ("auto", "cpu", "cuda", "mps") or (d.startswith("cuda:") and d[5:].isdigit()):
        return None
    return f"{setting('device', device)} is not a device name; use auto, cpu, cuda, cuda:N or mps"


def _noise_problems(config) -> dict[str, SSDNError]:
    """Each bad noise parameter under its own name; a set of parameters of no one model under
    ``noise_params``."""
    if config.noise != "auto" and config.noise not in NOISE_MODELS:
        return {}  # the noise model's own problem says it
    try:
        model = config.noise_model_given or "gaussian"
    except SSDNError as exc:
        return {"noise_params": exc}
    out = {}
    for name, value in config.noise_params.items():
        try:
            check_noise_params(model, {name: value})
        except SSDNError as exc:
            out[name] = exc
    return out


@dataclass(frozen=True)
class Tuning:
    """Constants of the optimisation, measured once and kept (docs/benchmarks.md).

    Attributes
    ----------
    noise_lr_factor : float
        Learned noise parameters (log scale) move this much faster than the weights, so
        that minutes refine the classical estimate.
    noise_freeze : float
        Fraction of the budget during which learned noise parameters keep their classical
        estimate: an untrained prior would explain its own errors as noise.
    frozen_noise : tuple of str
        Noise models whose learned parameters keep their classical estimate for the whole
        run. Poisson-Gaussian: on the FMD confocal image (one 512 x 512 image, many passes
        over it) the learned gain drifted from 0.094 to 0.018 in 1,100 steps (true about
        0.08) and the posterior fell to 25.1 dB against the prior's 32.1; kept at the
        estimate, both were 32.0.
    prior_std_start : float
        Starting prior std, as a fraction of the noise std, at every pixel. Sigma_x = a^2
        has a saddle at a = 0: where a random start puts a near zero the prior variance
        stays there and a learned noise level drifts up to explain the prior's errors.
    nll_beta : float
        Each pixel's likelihood is weighted by its own marginal variance to this power,
        held constant in the gradient (beta-NLL, Seitzer et al. 2022): the NLL's gradient
        for the prior mean is r / Sigma_y, so edges and texture would learn slowest. The
        weight leaves the per-pixel optimum unchanged.
    val_pixels : int
        Most pixels scored by one validation: about 0.7 s of forward passes of the tiny
        network on a 2-core CPU.
    """

    noise_lr_factor: float = 10.0
    noise_freeze: float = 0.5
    frozen_noise: tuple = ("poisson-gaussian",)
    prior_std_start: float = 0.15
    nll_beta: float = 0.5
    val_pixels: int = 2**18


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Noise parameters are in the units of the data.

    Each setting's type, default (and what ``auto`` becomes), allowed values and help are
    in :data:`~napari_ssdn.core.training.fields.FIELDS`, which the command line and the
    Train widget read too; :meth:`problems` checks them all.

    Attributes
    ----------
    tuning : Tuning
        Constants of the optimisation that are not user settings (ablations change them).
    """

    noise: str = "auto"
    noise_params: dict = field(default_factory=dict)
    per_image: object = "auto"
    iterations: int | None = None
    time_limit: float | None = None
    patch: int | None = None
    batch: int | None = None
    width: str | None = None
    lr: float | None = None
    warmup: float = 0.1
    rampdown: float = 0.3
    seed: int = 0
    device: str = "auto"
    mode: str = "ssdn"
    mixed_precision: bool = True
    val_every: int | None = None
    val_size: int | None = None
    holdout: float = 1 / 16
    keep_best: bool = True
    init: str | None = "auto"
    ndim: int = 2
    anisotropy: float = 1.0
    subsample: int | None = None
    blind: object = "auto"
    pair_method: str = "auto"
    tuning: Tuning = field(default_factory=lambda: Tuning())

    def problems(self) -> dict[str, SSDNError]:
        """Every bad setting at once, by the rules of :data:`~.fields.FIELDS`.

        Returns
        -------
        dict
            Setting name -> :class:`SSDNError` naming the setting and its value, in the
            order of :data:`~.fields.FIELDS`; a bad noise parameter is keyed by its own
            name (``sigma``, ``alpha``), parameters of no one model by ``noise_params``.
            Empty where every setting is fine.
        """
        out: dict[str, SSDNError] = {}
        for f in FIELDS.values():
            value = getattr(self, f.name)
            if f.name == "noise_params":
                out.update(_noise_problems(self))
                continue
            if f.name == "blind":
                try:
                    self.blind_region_given(ndim=self.ndim if self.ndim in (2, 3) else 2)
                except SSDNError as exc:
                    out["blind"] = exc
                continue
            message = _device_problem(value) if f.name == "device" else f.problem(value)
            if message is None and f.name == "subsample" and self.ndim == 3 and (value or 1) > 1:
                message = (
                    f"{setting('subsample', value)} is for images; "
                    f"volumes ({setting('ndim', 3)}) take {setting('subsample', 1)}"
                )
            if message:
                out[f.name] = SSDNError(message)
        return out

    def validate(self) -> TrainConfig:
        """Raise :class:`SSDNError` naming the first bad setting (see :meth:`problems`)."""
        for exc in self.problems().values():
            raise exc
        return self

    # Defaults measured best per minute (docs/benchmarks.md). CPU: volumes take many small
    # steps of the tiny network (a 3D step of the 2D defaults costs 25x a 2D step). GPU:
    # a step of 4 x 64^2 crops is launch-bound; 8 x 128^2 takes 8x the pixels per second
    # and measured best of 4 x 64^2, 8 x 128^2 and 16 x 128^2 after a minute on an H200.
    def patch_for(self, device: torch.device) -> int:
        """Crop side: as given, else 128 for images on a GPU, 64 on a CPU, 24 for volumes
        (48 where the blind region hides more than the voxel itself).

        A volume network trained on 24-voxel crops with a blind region of 3 x 3 x 3 or more
        learns from crops that are nearly all border: on a 32 x 96 x 96 phantom with noise
        correlated along every axis its prior mean was biased (2.9 dB, the noisy volume 9.1)
        while 48-voxel crops gave 19.5 dB in fewer steps (benchmarks/NOTES.md).
        """
        if self.patch:
            return self.patch
        if self.ndim == 3:
            region = self.blind_region_given(ndim=3) or (1,)
            return 48 if max(region) > 1 else 24
        return 128 if device.type == "cuda" else 64

    def batch_for(self, device: torch.device) -> int:
        """Crops per step: as given, else 8 for images on a GPU, 4 on a CPU, 1 for volumes."""
        if self.batch:
            return self.batch
        if self.ndim == 3:
            return 1
        return 8 if device.type == "cuda" else 4

    def takes_generic_start(self, channels: int, subsample: int = 1) -> bool:
        """Whether ``init`` takes a shipped starting network for data of ``channels``
        (at the tiny width, which a GPU's default width then follows): ``auto`` for the
        noise models of :data:`AUTO_START_NOISE`, ``generic`` for any; 2D, ``ssdn`` or ``mu-only`` mode
        and ``subsample`` 1 only."""
        choice = str(self.init).lower()
        if choice not in ("auto", "generic") or self.mode not in BLIND_MODES or self.ndim != 2 or subsample != 1:
            return False
        if (channels, *WIDTHS["tiny"], 2, subsample) not in GENERIC_STARTS:
            return False
        return choice == "generic" or auto_starts(channels, self.noise)

    def width_for(self, device: torch.device, start_fits: bool = False) -> str:
        """The width preset: as given, else the best per minute of this device. On a CPU
        (2D and 3D) that is tiny: four times the steps of light in the same minutes, which
        measured better after 5 minutes on an AVX2 CPU. On a GPU, tiny where the shipped
        starting network fits (``start_fits``: it is tiny; 1 and 2 minutes on an H200
        measured it ahead of light from scratch), else light (docs/benchmarks.md)."""
        if self.width:
            return self.width
        return "tiny" if self.ndim == 3 or device.type == "cpu" or start_fits else "light"

    def lr_for(self, enc: int, warm: bool = False, pixels: int = 0) -> float:
        """Peak learning rate: as given, else from a warm start :data:`FINE_TUNE_LR`, or
        :data:`FINE_TUNE_LR_LARGE` for ``pixels`` (of training data, channels not counted)
        of at least :data:`FINE_TUNE_LARGE_DATA`; from scratch 2e-3 for the tiny 2D network
        (measured better than 1e-3 in minutes of CPU training) and the paper-like 1e-3
        otherwise."""
        if self.lr is not None:
            return float(self.lr)
        if warm:
            return FINE_TUNE_LR_LARGE if pixels >= FINE_TUNE_LARGE_DATA else FINE_TUNE_LR
        return 2e-3 if self.ndim == 2 and enc == WIDTHS["tiny"][0] else 1e-3

    @property
    def val_side(self) -> int:
        return self.val_size or (256 if self.ndim == 2 else 64)

    def val_interval(self, val_pixels: int, step_pixels: int) -> int:
        """Steps between validations: as given, else so that validating costs about 5 %
        of the time. A validation is one forward pass over ``val_pixels``, which took half
        the time per pixel of a training step over ``step_pixels`` (tiny network, 2-core
        CPU: 0.73 s for 2^18 pixels against 0.097 s for a step of 4 x 64^2), so every
        ``10 * val_pixels / step_pixels`` steps; and at least ten times in a budget of
        ``iterations`` (a short run's loss curve and best weights need them)."""
        if self.val_every:
            return int(self.val_every)
        every = max(10, math.ceil(10 * val_pixels / max(step_pixels, 1)))
        return min(every, max(1, self.iterations // 10)) if self.iterations else every

    @property
    def flat_levels(self) -> int:
        """In-plane-only pooling levels for the voxel anisotropy (0 for images)."""
        if self.ndim != 3 or self.anisotropy < 1.5:
            return 0
        return int(round(math.log2(self.anisotropy)))

    @property
    def noise_model_given(self) -> str | None:
        """The noise model asked for: ``noise``, or with ``auto`` the one whose parameters
        are given (``sigma``: Gaussian, ...); None where the data must decide."""
        if self.noise != "auto":
            return self.noise
        names = {k for k, v in self.noise_params.items() if v is not None}
        if not names:
            return None
        fits = [m for m, params in NOISE_PARAMS.items() if names <= set(params)]
        if not fits:
            models = "; ".join(m + ": " + ", ".join(p) for m, p in NOISE_PARAMS.items() if p)
            raise SSDNError(
                f"noise parameters {sorted(names)} do not belong to one noise model; give those of one ({models})"
            )
        return fits[0]

    def blind_region_given(self, ndim: int | None = None) -> tuple | None:
        """The blind region asked for, one k per spatial axis; None for ``auto``."""
        b = self.blind
        if isinstance(b, str):
            if b.strip().lower() == "auto":
                return None
            parts = [p for p in b.replace(" ", "").split(",") if p]
            try:
                b = tuple(int(p) for p in parts)
            except ValueError:
                b = (b,)
        elif isinstance(b, (int, np.integer)):
            b = (int(b),)
        return check_blind_region(tuple(b) if b is not None else ("?",), ndim or self.ndim, shown=self.blind)

    def budget_fraction(self, step: int, elapsed: float) -> float:
        """How much of the budget ``step`` steps in ``elapsed`` seconds have spent (the
        larger of the two where both are set; 2000 steps where neither is)."""
        spent = [step / self.iterations] if self.iterations else []
        if self.time_limit:
            spent.append(elapsed / self.time_limit)
        return max(spent or [step / 2000])

    def planned_steps(self, step: int, elapsed: float) -> int:
        """Steps the run will take: as given, or estimated from the time spent so far."""
        f = self.budget_fraction(step, elapsed)
        if self.iterations and not self.time_limit:
            return self.iterations
        if step == 0 or f <= 0:
            return self.iterations or 2000
        return max(step, int(round(step / f)))

    def per_image_given(self) -> bool | None:
        """Whether noise parameters vary per image as asked; None where the data must decide."""
        return None if self.per_image == "auto" else bool(self.per_image)

    @property
    def known_noise_params(self) -> dict:
        """The noise parameters given by the user, as floats (the others are learned)."""
        return {k: float(v) for k, v in self.noise_params.items() if v is not None}
