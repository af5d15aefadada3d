"""Training settings: what the user asks for (:class:`TrainConfig`) and the constants of the
optimisation (:class:`Tuning`); the concrete plan of one run is in :mod:`~.plan`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from ..constants import MODES, NOISE_MODELS, NOISE_PARAMS, PAIR_METHODS, WIDTHS, check_blind_region, check_noise_params
from ..errors import SSDNError, setting
from ..nets.warmstart import (
    BLIND_MODES,
    FINE_TUNE_LARGE_DATA,
    FINE_TUNE_LR,
    FINE_TUNE_LR_LARGE,
    GENERIC_STARTS,
    auto_starts,
)

__all__ = ["Tuning", "TrainConfig"]


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

    Attributes
    ----------
    noise : str
        ``auto`` (default: Poisson-Gaussian where the data's noise variance grows with
        the signal, else Gaussian; the model of the parameters in ``noise_params`` where
        some are given), ``gaussian``, ``poisson``, ``poisson-gaussian`` or ``impulse``.
    noise_params : dict
        Known parameters (``sigma``, ``lam``, ``a`` and ``b``, ``alpha``); any parameter of
        the model that is missing is learned, starting from a classical estimate.
    per_image : bool or "auto"
        Noise parameters vary per image: each image (a frame of a stack, a volume) starts
        from its own classical estimate. ``auto``: where the images' noise levels differ
        (:func:`~napari_ssdn.core.noise.estimate.level_spread`), e.g. channels or exposures
        given as separate images.
    iterations : int or None
        Number of optimisation steps.
    time_limit : float or None
        Wall-clock budget in seconds. With both budgets, whichever ends first; with
        neither, 2000 steps.
    patch, batch : int
        Crop side (rounded down to a multiple of ``2**depth``) and crops per step; default
        64 and 4 for images on a CPU, 128 and 8 on a GPU, 24 (48 with a blind region beyond
        the voxel) and 1 for volumes.
    width : str or None
        A preset of :data:`~napari_ssdn.core.nets.model.WIDTHS`; default ``tiny`` on a CPU and
        for volumes; on a GPU ``tiny`` where a shipped starting network fits (see ``init``),
        else ``light``.
    lr : float or None
        Peak learning rate of Adam; default 2e-3 for the tiny 2D network, else 1e-3.
    warmup, rampdown : float
        Fractions of the budget for the half-cosine ramp up and down of the learning rate.
    seed : int
        Seed of crops, augmentation and initialisation.
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    mode : str
        ``ssdn``, ``mu-only`` or ``supervised`` (needs clean targets).
    mixed_precision : bool
        bfloat16/float16 network arithmetic where the hardware is fast at it (CUDA, and
        CPUs with AVX512-BF16); likelihoods and posteriors stay float64.
    val_every : int or None
        Steps between validation losses; default: as many that validating costs about 5 %
        of the training time, and at least ten validations in ``iterations``
        (see :meth:`val_interval`).
    val_size : int or None
        Side of the fixed validation windows (default 256 for images, 64 for volumes).
    holdout : float
        Share of the pixels kept out of the loss (but not out of the input) and scored by
        the validation loss instead, which is then an honest measure of how well the model
        predicts pixels it has not been fitted to (:class:`~napari_ssdn.core.data.HoldoutPattern`).
        0 turns it off: validation then scores pixels the network was trained on.
    keep_best : bool
        At the end (or stop) of a run, go back to the weights and noise parameters of the
        lowest validation loss. Long training on little data fits the noise of the training
        pixels (docs/benchmarks.md); the held-out pixels show when that starts.
    init : str or None
        Starting weights of the prior network: ``"auto"`` (default: the shipped generic
        network where one fits and helps, i.e. Gaussian, Poisson or impulse noise on gray
        2D images and Gaussian or Poisson noise on RGB 2D images, at the tiny width; else
        random), ``"generic"`` (the shipped network, for any noise model; an
        error where none fits), ``None`` or ``"none"`` (random), or the path of a model
        file of the same architecture. A warm start fine-tunes at
        :data:`~napari_ssdn.core.nets.warmstart.FINE_TUNE_LR` (``FINE_TUNE_LR_LARGE`` on large
        data sets) unless ``lr`` is given.
    ndim : int
        2: train on 2D images (a Z axis is a stack of 2D samples). 3: train a volume
        network on ZYX data (six half-space branches, 3D convolutions).
    anisotropy : float
        Volumes: z voxel size over in-plane voxel size. From 1.5 up, the first pooling
        levels pool in-plane only (one level per factor 2).
    subsample : int or None
        Pixel-shuffle subsampling factor for noise that is correlated between neighbouring
        pixels (e.g. resampled or demosaiced camera images), which a blind-spot network
        would otherwise learn to reproduce: 2 trains and denoises on the four interleaved
        half-size sub-images. Images only. Default 1 for a new model, the model's own
        factor when resuming.
    blind : str, int or tuple
        The blind region: ``auto`` (default: from the noise's correlation between
        neighbouring pixels measured in the data, 1 where it is negligible), one final
        shift k for every axis, or one per spatial axis (y, x; volumes z, y, x) as a
        tuple or a string like ``"1,3"``. The network never sees the offsets with
        ``|d| < k`` on every axis.
    pair_method : str
        With a second observation of each image (``Trainer(..., pair=...)``): ``auto``
        (default: ``noise2noise`` where the measured noise is correlated between
        neighbours, else ``mean``), ``noise2noise`` (a non-blind network from each half to
        the other) or ``mean`` (the blind-spot network on the halves' mean, its noise measured
        from them); see :mod:`~napari_ssdn.core.training.pairing`.
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

    def validate(self) -> TrainConfig:
        """Raise :class:`SSDNError` naming the first bad field."""
        if self.noise != "auto" and self.noise not in NOISE_MODELS:
            raise SSDNError(
                f"{setting('noise', self.noise)} is not a noise model; use auto or one of {', '.join(NOISE_MODELS)}"
            )
        if self.mode not in MODES:
            raise SSDNError(f"{setting('mode', self.mode)} is not one of {', '.join(MODES)}")
        check_noise_params(self.noise_model_given or "gaussian", self.noise_params)
        self.blind_region_given(ndim=self.ndim)
        if self.pair_method not in PAIR_METHODS:
            raise SSDNError(f"{setting('pair_method', self.pair_method)} is not one of {', '.join(PAIR_METHODS)}")
        if self.per_image not in (True, False, "auto"):
            raise SSDNError(f"{setting('per_image', self.per_image)} must be True, False or 'auto'")
        for name in ("iterations", "patch", "batch", "val_every", "val_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
                raise SSDNError(f"{setting(name, v)} must be a positive whole number")
        if not (isinstance(self.holdout, (int, float)) and 0 <= self.holdout <= 0.5):
            raise SSDNError(
                f"{setting('holdout', self.holdout)} must be a fraction of the pixels from 0 (off) to 0.5, e.g. 0.0625"
            )
        if self.ndim not in (2, 3):
            raise SSDNError(f"{setting('ndim', self.ndim)} must be 2 (images) or 3 (volumes)")
        if not (isinstance(self.anisotropy, (int, float)) and math.isfinite(self.anisotropy) and self.anisotropy > 0):
            raise SSDNError(
                f"{setting('anisotropy', self.anisotropy)} must be a positive number (z voxel size / xy voxel size)"
            )
        if self.subsample is not None and (
            not isinstance(self.subsample, (int, np.integer)) or not 1 <= self.subsample <= 4
        ):
            raise SSDNError(
                f"{setting('subsample', self.subsample)} must be a whole number from 1 to 4 "
                "(2 for noise correlated between neighbours)"
            )
        if self.ndim == 3 and (self.subsample or 1) > 1:
            raise SSDNError(
                f"{setting('subsample', self.subsample)} is for images; "
                f"volumes ({setting('ndim', 3)}) take {setting('subsample', 1)}"
            )
        if self.time_limit is not None and not self.time_limit > 0:
            raise SSDNError(f"{setting('time_limit', self.time_limit)} must be a positive number of seconds")
        if self.width is not None and self.width not in WIDTHS:
            raise SSDNError(f"{setting('width', self.width)} is not a preset; use one of {', '.join(WIDTHS)}")
        if self.lr is not None and not self.lr > 0:
            raise SSDNError(f"{setting('lr', self.lr)} must be positive, e.g. 1e-3")
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
            models = "; ".join(m + ": " + ", ".join(p) for m, p in NOISE_PARAMS.items())
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
