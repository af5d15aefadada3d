"""Training on one noisy data set, as a generator of progress records."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .bayes import NOISE_MODELS, NOISE_PARAMS, marginal_variance, nll_loss, noise_covariance, posterior, split_prior
from .constants import check_noise_params
from .data import CropSampler, HoldoutPattern, Normalization, split_phases, to_samples
from .device import device_name, network_precision, resolve_device
from .errors import SSDNError
from .estimate import estimate_noise
from .model import MODES, WIDTHS, ModelConfig, SSDNModel, params_to_data

__all__ = ["TrainConfig", "TrainProgress", "Trainer", "train"]

NOISE_LR_FACTOR = 10.0
#: Weight of the paper's -0.1 * (noise std) term that keeps learned noise from being
#: explained as prior variance (method.md, section 4). The paper learns the level from
#: scratch; ours starts from a classical estimate, and in minutes of training the level
#: drifts up, not down, and the term adds to that drift (Set12 house, same network: 25.60
#: with it, 25.17 without, true 25), so it is off (docs/benchmarks.md).
NOISE_PUSH = 0.0
#: Fraction of the budget during which learned noise parameters keep their classical
#: estimate: an untrained prior would explain its own errors as noise.
NOISE_FREEZE = 0.5
#: Starting prior std, as a fraction of the noise std, of every pixel (the head's diagonal
#: covariance outputs start constant at this value). Sigma_x = a^2 has a saddle at a = 0:
#: where a random start puts a near zero, its gradient vanishes, the prior variance stays
#: near zero and a learned noise level drifts up to explain the prior's errors.
PRIOR_STD_START = 0.15
#: Each pixel's likelihood term is weighted by its own variance to this power, held
#: constant in the gradient (beta-NLL, Seitzer et al. 2022). The NLL's gradient for the
#: prior mean is r / Sigma_y: pixels with a large prior variance (edges, texture) learn
#: slowest. The weight leaves the per-pixel optimum unchanged.
NLL_BETA = 0.5
#: Most pixels scored by one validation (fewer where the data has fewer): about 0.7 s of
#: forward passes of the tiny network on a 2-core CPU; the held-out share of them (1/16:
#: 16,384 pixels) scores every validation, the same pixels each time.
VAL_PIXELS = 2**18
#: Bounds of the end-of-run calibration (:meth:`Trainer.calibrate`): the prior covariance
#: scale within [1/4, 4], each learned noise parameter within a factor e^0.5 of its value;
#: a fit is kept only where every fitted log value has a standard error below
#: CALIBRATE_MAX_SE (one 481 x 321 image: 0.014 for log sigma, 0.08 for log k).
CALIBRATE_LOG_SCALE = math.log(4.0)
CALIBRATE_LOG_PARAM = 0.5
CALIBRATE_MAX_SE = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Noise parameters are in the units of the data.

    Attributes
    ----------
    noise : str
        ``gaussian``, ``poisson``, ``poisson-gaussian`` or ``impulse``.
    noise_params : dict
        Known parameters (``sigma``, ``lam``, ``a`` and ``b``, ``alpha``); any parameter of
        the model that is missing is learned, starting from a classical estimate.
    per_image : bool
        Learned parameters vary per image.
    iterations : int or None
        Number of optimisation steps.
    time_limit : float or None
        Wall-clock budget in seconds. With both budgets, whichever ends first; with
        neither, 2000 steps.
    patch, batch : int
        Crop side (rounded down to a multiple of ``2**depth``) and crops per step; default
        64 and 4 for images on a CPU, 128 and 8 on a GPU, 24 and 1 for volumes.
    width : str or None
        A preset of :data:`~napari_ssdn.core.model.WIDTHS`; default ``tiny`` on a CPU and
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
    calibrate : bool
        At the end of a run, fit a scale of the prior covariance and the learned noise
        parameters to the held-out pixels (:meth:`Trainer.calibrate`). Gaussian-family
        noise models with hold-out only.
    init : str or None
        Starting weights of the prior network: ``"auto"`` (default: the shipped generic
        network where one fits and helps, i.e. Gaussian, Poisson or impulse noise on gray
        2D images and Gaussian or Poisson noise on RGB 2D images, at the tiny width; else
        random), ``"generic"`` (the shipped network, for any noise model; an
        error where none fits), ``None`` or ``"none"`` (random), or the path of a model
        file of the same architecture. A warm start fine-tunes at :data:`FINE_TUNE_LR`
        (:data:`FINE_TUNE_LR_LARGE` on large data sets) unless ``lr`` is given.
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
    """

    noise: str = "gaussian"
    noise_params: dict = field(default_factory=dict)
    per_image: bool = False
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
    calibrate: bool = False
    init: str | None = "auto"
    ndim: int = 2
    anisotropy: float = 1.0
    subsample: int | None = None

    def validate(self) -> "TrainConfig":
        """Raise :class:`SSDNError` naming the first bad field."""
        if self.noise not in NOISE_MODELS:
            raise SSDNError(f"noise={self.noise!r} is not a noise model; use one of {', '.join(NOISE_MODELS)}")
        if self.mode not in MODES:
            raise SSDNError(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        check_noise_params(self.noise, self.noise_params)
        for name in ("iterations", "patch", "batch", "val_every", "val_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
                raise SSDNError(f"{name}={v!r} must be a positive whole number")
        if not (isinstance(self.holdout, (int, float)) and 0 <= self.holdout <= 0.5):
            raise SSDNError(f"holdout={self.holdout!r} must be a fraction of the pixels from 0 (off) to 0.5, e.g. 0.0625")
        if self.ndim not in (2, 3):
            raise SSDNError(f"ndim={self.ndim!r} must be 2 (images) or 3 (volumes)")
        if not (isinstance(self.anisotropy, (int, float)) and math.isfinite(self.anisotropy) and self.anisotropy > 0):
            raise SSDNError(f"anisotropy={self.anisotropy!r} must be a positive number (z voxel size / xy voxel size)")
        if self.subsample is not None and (not isinstance(self.subsample, (int, np.integer)) or not 1 <= self.subsample <= 4):
            raise SSDNError(f"subsample={self.subsample!r} must be a whole number from 1 to 4 (2 for noise correlated between neighbours)")
        if self.ndim == 3 and (self.subsample or 1) > 1:
            raise SSDNError(f"subsample={self.subsample!r} is for images; volumes (ndim=3) take subsample=1")
        if self.time_limit is not None and not self.time_limit > 0:
            raise SSDNError(f"time_limit={self.time_limit!r} must be a positive number of seconds")
        if self.width is not None and self.width not in WIDTHS:
            raise SSDNError(f"width={self.width!r} is not a preset; use one of {', '.join(WIDTHS)}")
        if self.lr is not None and not self.lr > 0:
            raise SSDNError(f"lr={self.lr!r} must be positive, e.g. 1e-3")
        return self

    # Defaults measured best per minute (docs/benchmarks.md). CPU: volumes take many small
    # steps of the tiny network (a 3D step of the 2D defaults costs 25x a 2D step). GPU:
    # a step of 4 x 64^2 crops is launch-bound; 8 x 128^2 takes 8x the pixels per second
    # and measured best of 4 x 64^2, 8 x 128^2 and 16 x 128^2 after a minute on an H200.
    def patch_for(self, device: torch.device) -> int:
        """Crop side: as given, else 128 for images on a GPU, 64 on a CPU, 24 for volumes."""
        if self.patch:
            return self.patch
        if self.ndim == 3:
            return 24
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
        return choice == "generic" or _auto_starts(channels, self.noise)

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
    def given(self) -> dict:
        return {k: float(v) for k, v in self.noise_params.items() if v is not None}


@dataclass(frozen=True)
class TrainProgress:
    """One step of training, small enough to send across threads.

    Attributes
    ----------
    step, total : int
        Steps done in this run (total: planned, or estimated from the time limit).
    loss : float
        Training loss of this step.
    val_loss : float or None
        Loss on the fixed validation crop (same crop every time), when measured this step.
    noise_params : dict
        Current noise parameters in data units.
    lr : float
    elapsed, eta : float
        Seconds since the start and estimated seconds left.
    skipped : int
        Steps skipped so far because the gradient was not finite.
    done : bool
        Last record of the run.
    kept_step : int or None
        Last record: the step whose weights the model keeps (``keep_best``: the lowest
        validation loss; else the last step).
    """

    step: int
    total: int
    loss: float
    val_loss: float | None
    noise_params: dict
    lr: float
    elapsed: float
    eta: float
    skipped: int = 0
    done: bool = False
    kept_step: int | None = None


def _lr_factor(f: float, warmup: float, rampdown: float) -> float:
    """Half-cosine ramp up over the first ``warmup`` and down over the last ``rampdown`` of the budget."""
    f = min(max(f, 0.0), 1.0)
    if warmup > 0 and f < warmup:
        return 0.5 - 0.5 * math.cos(math.pi * f / warmup)
    if rampdown > 0 and f > 1 - rampdown:
        return 0.5 + 0.5 * math.cos(math.pi * (f - (1 - rampdown)) / rampdown)
    return 1.0


def _mean_noise_std(model: SSDNModel, samples: list[np.ndarray]) -> float:
    """Noise std (normalised units) at the data's mean level, from the model's starting parameters."""
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


@torch.no_grad()
def _start_prior_std(model: SSDNModel, std: float) -> None:
    """Start the covariance factor U at ``std`` times the identity at every pixel."""
    if not std > 0:
        return
    last = model.net.head[-1]
    c = model.config.channels
    rows, cols = np.tril_indices(c)
    for k, (r, col) in enumerate(zip(rows, cols)):
        last.weight[c + k].zero_()
        last.bias[c + k] = std if r == col else 0.0


#: Generic starting networks shipped in ``napari_ssdn/core/weights`` (trained by
#: benchmarks/pretrain_generic.py, self-supervised: gray on Kodak in gray, RGB on Set14),
#: by architecture: (channels, enc, dec, depth, ndim, subsample).
GENERIC_STARTS = {(1, 16, 32, 3, 2, 1): "generic_gray_tiny.ssdn", (3, 16, 32, 3, 2, 1): "generic_rgb_tiny.ssdn"}
#: Modes that start from the shipped (blind-spot) networks: the mu-only baseline keeps their
#: mean rows, so that it differs from ours only in its loss.
BLIND_MODES = ("ssdn", "mu-only")
#: Noise models that ``init="auto"`` starts from the shipped network, by image channels:
#: where it was measured to help (docs/benchmarks.md). Poisson-Gaussian is left out: on the
#: FMD microscopy images the warm prior predicted more of their correlated noise, the
#: learned gain fell to half the classical estimate and the posterior dropped below the
#: prior mean. Impulse noise on RGB is left out: on Kodak the warm start learned alpha 0.63
#: instead of 0.5 and ended 1 dB behind random weights.
AUTO_START_NOISE = {1: ("gaussian", "poisson", "impulse"), 3: ("gaussian", "poisson")}
#: Peak learning rate when fine-tuning a warm start: at 2e-3 five minutes on one 256 x 256
#: image memorised its noise (sigma learned 21-23 instead of 25, posterior below the prior).
FINE_TUNE_LR = 3e-4
#: Peak learning rate when fine-tuning on at least FINE_TUNE_LARGE_DATA pixels: with the
#: data's noise too varied to memorise, the faster rate adapts more. 15 minutes on the 68
#: BSD68 images (10.5 megapixels) gave 28.71 dB at 1e-3 against 28.61 at 3e-4.
FINE_TUNE_LR_LARGE = 1e-3
FINE_TUNE_LARGE_DATA = 1_500_000


def _auto_starts(channels: int, noise: str) -> bool:
    """Whether ``init="auto"`` takes the shipped start for this noise on ``channels``."""
    return noise in AUTO_START_NOISE.get(channels, ())


def generic_start(config: ModelConfig):
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


def _warm_start(model: SSDNModel, init) -> str | None:
    """Copy prior-network weights from ``init`` into ``model``; returns where they came from."""
    choice = str(init).lower()
    if init is None or choice == "none":
        return None
    from .modelfile import read_model_file

    path, shipped = init, choice in ("generic", "auto")
    if shipped:
        path = generic_start(model.config)
        if choice == "auto" and (path is None or not _auto_starts(model.config.channels, model.config.noise)):
            return None
        if path is None:
            raise SSDNError(
                f"init='generic': no generic starting network fits a {model.describe()} "
                f"(shipped: gray or RGB 2D images, tiny width, ssdn or mu-only mode); use init='none' or a model file"
            )
    state = read_model_file(path)["state"]
    own = model.state_dict()
    # Every tensor of the prior network must fit. The head's last layer may differ only for
    # the mu-only baseline, whose head predicts the mean alone: it keeps the mean's rows
    # (the first C) of a blind-spot model's last layer, so both start from the same prior mean.
    last = f"net.head.{len(model.net.head) - 1}." if model.config.mode == "mu-only" else None
    weights = {k: v[: own[k].shape[0]] if last and k.startswith(last) else v
               for k, v in state.items() if k.startswith("net.") and k in own}
    weights = {k: v for k, v in weights.items() if own[k].shape == v.shape}
    body = [k for k in own if k.startswith("net.") and not k.startswith("net.head.")]
    if not all(k in weights for k in body):
        raise SSDNError(f"init={str(init)!r} holds no weights that fit a {model.describe()}; use init='none' or a model of the same width")
    model.load_state_dict(weights, strict=False)
    return "generic" if shipped else str(path)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def _check_sizes(samples: list[np.ndarray], mults: tuple[int, ...], subsample: int, patch: int, tiny: bool) -> None:
    """Refuse data or a patch smaller than the network's smallest input, naming what to change.

    ``samples`` are ``(S, *spatial, C)`` before the split into ``subsample``^2 sub-images,
    which divides the two image axes."""
    if patch < max(mults):
        raise SSDNError(f"patch={patch} is smaller than the {max(mults)} pixels this network needs; use a patch of {max(mults)} or more")
    for a, mult in enumerate(mults):
        split = subsample if a >= len(mults) - 2 else 1
        smallest = min(s.shape[1 + a] for s in samples) // split
        if smallest >= mult:
            continue
        across = f"{smallest * split} pixel{'s' if smallest * split != 1 else ''}" + (f" ({smallest} per sub-image of subsample={subsample})" if split > 1 else "")
        if len(mults) == 3 and a == 0:
            raise SSDNError(f"the smallest volume has {smallest} slices but a 3D network needs at least {mult}; "
                            "train a 2D network on the slices instead (ndim=2, no --3d)")
        remedy = "give larger images" + ("" if tiny else ", or use the tiny width preset")
        if split > 1:
            remedy += f", or a smaller subsample than {subsample}"
        raise SSDNError(f"the smallest image is {across} along {'ZYX'[a - len(mults)]} but this network needs at least {mult}; {remedy}")


def _square_plane(sizes: list[int]) -> tuple[int, ...]:
    """Crop sizes with y and x equal (the smaller): rotations in the image plane need it."""
    side = min(sizes[-2:])
    return tuple(sizes[:-2]) + (side, side)


def _prepare(arrays, axes, ndim: int = 2) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    if not arrays:
        raise SSDNError("no training data: pass at least one image")
    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise SSDNError(f"image {i} has dtype {a.dtype}; pass real-valued image data")
        ax = axes if isinstance(axes, str) or axes is None else axes[i]
        if ax is None:
            from .data import guess_axes

            ax = guess_axes(a.shape, ndim=ndim)
        out.append(to_samples(a, ax, ndim))
    chans = {s.shape[-1] for s in out}
    if len(chans) > 1:
        raise SSDNError(f"images have different channel counts {sorted(chans)}; train on images with the same channels")
    for i, s in enumerate(out):
        if not np.isfinite(s).any():
            raise SSDNError(f"image {i} holds no finite values (all NaN or infinite); check the file")
    return out


class Trainer:
    """Train a model on one noisy data set.

    Parameters
    ----------
    images : ndarray or list of ndarray
        The noisy data; arrays may differ in size.
    axes : str or list of str, optional
        Axes of the arrays (e.g. ``"YX"``, ``"ZYX"``, ``"YXC"``); guessed when omitted.
    config : TrainConfig
    targets : list of ndarray, optional
        Clean images matching ``images`` (``mode="supervised"`` only).
    resume : SSDNModel, optional
        Continue training this model (its normalisation and noise model are kept).
    resume_info : dict, optional
        The model file's metadata (optimizer state and steps done) from :func:`load_model`.

    Examples
    --------
    >>> trainer = Trainer(noisy, "YX", TrainConfig(iterations=500))
    >>> for record in trainer.run():
    ...     print(record.step, record.loss)
    >>> trainer.save("model.ssdn")
    """

    def __init__(self, images, axes=None, config: TrainConfig | None = None, targets=None, resume=None, resume_info=None):
        self.config = config = (config or TrainConfig()).validate()
        self.samples_raw = _prepare(images, axes, config.ndim)
        self.device = resolve_device(config.device)
        self._stop = threading.Event()
        self.steps_before = 0
        self.elapsed_before = 0.0
        self.init_source = None
        if resume is not None:
            if resume.config.channels != self.samples_raw[0].shape[-1]:
                raise SSDNError(
                    f"the model to resume has {resume.config.channels} channel(s) but the data has "
                    f"{self.samples_raw[0].shape[-1]}; resume with data of the same kind or train a new model"
                )
            if config.subsample is not None and config.subsample != resume.config.subsample:
                raise SSDNError(
                    f"the model to resume was trained with subsample={resume.config.subsample} but subsample={config.subsample}; "
                    "leave subsample unset to keep the model's"
                )
            if resume.config.ndim != config.ndim:
                raise SSDNError(
                    f"the model to resume is a {resume.config.ndim}D network but ndim={config.ndim}; "
                    f"resume with {'--3d' if resume.config.ndim == 3 else 'no --3d'}"
                )
        self.subsample = resume.config.subsample if resume is not None else (config.subsample or 1)
        arch = (resume.config if resume is not None else self._model_config(self.samples_raw[0].shape[-1])).arch
        # Before the noise estimate and the normalisation, which fail obscurely on a
        # sliver of an image.
        _check_sizes(self.samples_raw, arch.multiples, self.subsample, config.patch_for(self.device), arch.enc == WIDTHS["tiny"][0])
        if resume is not None:
            self.model = resume
            # Keep the original start: it sets the default learning rate (a fine-tune stays one).
            self.init_source = (resume_info or {}).get("training", {}).get("init")
            norm = Normalization(resume.config.offset, resume.config.scale)
        else:
            norm = Normalization.fit(self.samples_raw, config.noise)
        # Sub-images before anything else, so the noise estimate, crops and validation all
        # see the data the network will see.
        self.samples_raw = [split_phases(s, self.subsample, crop=True) for s in self.samples_raw]
        self.norm = norm
        self.samples = [norm(np.nan_to_num(s, nan=norm.offset, posinf=norm.offset, neginf=norm.offset)) for s in self.samples_raw]
        # Missing pixels (NaN or infinite in any channel) enter the network as zeros but stay
        # out of the loss, the validation and the noise estimate: a masked area is not a flat,
        # noise-free one. None when every pixel was measured.
        measured = [np.isfinite(s).all(-1) for s in self.samples_raw]
        self.measured = None if all(m.all() for m in measured) else measured
        # Built once for the noise statistics of construction (the start and per-image anchors), then dropped.
        gaps = self.samples if self.measured is None else [
            np.where(m[..., None], s, np.float32(np.nan)) for s, m in zip(self.samples, self.measured)]
        self.targets = None
        if config.mode == "supervised":
            if targets is None:
                raise SSDNError("mode='supervised' needs clean targets matching the images")
            self.targets = [norm(split_phases(t, self.subsample, crop=True)) for t in _prepare(targets, axes, config.ndim)]
        if resume is None:
            self.model = self._new_model(gaps)
        self.model.to(self.device)
        mults = self.model.config.arch.multiples
        patch = []
        for a, mult in enumerate(mults):
            smallest = min(s.shape[1 + a] for s in self.samples)
            patch.append((min(config.patch_for(self.device), smallest) // mult) * mult)  # >= mult: sizes checked
        self.patch_shape = _square_plane(patch)
        # Groups: the prior network, the learned noise scalars (faster, see run), and the
        # per-image estimator (the network's rate: it is a network, not a scalar).
        est = self.model.estimator
        groups = [{"params": list(self.model.net.parameters())}, {"params": [self.model.log_scale]},
                  {"params": list(est.parameters()) if est is not None else []}]
        # Per-image models start every image from its own classical estimate.
        self.anchors = [self.model.image_anchor(s) for s in gaps] if est is not None else None
        del gaps
        pixels = sum(s.size // s.shape[-1] for s in self.samples)
        self.lr = config.lr_for(self.model.config.enc, warm=self.init_source is not None, pixels=pixels)
        self.optimizer = torch.optim.Adam(groups, lr=self.lr, betas=(0.9, 0.99))
        if resume_info:
            self.steps_before = int(resume_info.get("training", {}).get("steps", 0))
            self.elapsed_before = float(resume_info.get("training", {}).get("elapsed", 0.0))
            if resume_info.get("optimizer"):
                try:
                    self.optimizer.load_state_dict(resume_info["optimizer"])
                except (ValueError, KeyError):
                    pass  # a different optimizer layout: start Adam afresh, keep the weights
        self.rng = np.random.default_rng(config.seed)
        self.holdout = HoldoutPattern(config.ndim, config.holdout) if config.holdout > 0 else None
        self.sampler = CropSampler(self.samples, self.patch_shape, self.rng, augment=True, holdout=self.holdout, measured=self.measured)
        self._val = self._validation_windows()
        self.val_every = config.val_interval(self._val[0].shape[0] * math.prod(self._val[0].shape[2:]),
                                             config.batch_for(self.device) * math.prod(self.patch_shape))
        self.step = 0
        #: Lowest validation loss of this run, its step and a copy of the model's state then.
        self.best_val_loss = math.inf
        self.best_step: int | None = None
        self._best_state: dict | None = None
        #: What :meth:`calibrate` fitted at the end of the run (empty: nothing).
        self.calibration: dict = {}
        #: Validation loss of the model as the run left it (None until the run ends).
        self.final_val_loss: float | None = None
        self.history: list[TrainProgress] = []
        self.resumed = resume is not None

    # -- construction -------------------------------------------------------------------
    def _model_config(self, channels: int) -> ModelConfig:
        """The new model's architecture and noise model, before the data's normalisation
        and noise estimate are known."""
        c = self.config
        enc, dec, depth = WIDTHS[c.width_for(self.device, c.takes_generic_start(channels, self.subsample))]
        if c.ndim == 3:
            # One level less for volumes: a 3D level sees 8x the voxels of a 2D one, and
            # the receptive field (hence the tile overlap) halves.
            depth -= 1
        return ModelConfig(channels=channels, enc=enc, dec=dec, depth=depth, mode=c.mode, noise=c.noise,
                           per_image=c.per_image, ndim=c.ndim, flat=min(c.flat_levels, depth - 1), subsample=self.subsample)

    def _new_model(self, gaps: list[np.ndarray]) -> SSDNModel:
        """A new model for the data; ``gaps`` are the normalised samples with missing pixels
        as NaN, which the noise statistics skip."""
        c = self.config
        base = self._model_config(self.samples[0].shape[-1])
        given = c.given
        names = NOISE_PARAMS[c.noise]
        learned = tuple(n for n in names if n not in given)
        init = dict(given)
        if learned and c.mode == "ssdn":
            # Volumes are estimated slice by slice: the estimators work on 2D images.
            est = estimate_noise([s.reshape((-1,) + s.shape[-3:]) for s in gaps], c.noise)
            est_data = params_to_data(c.noise, est, self.norm.offset, self.norm.scale)
            init.update({n: est_data[n] for n in learned})
        torch.manual_seed(c.seed)
        model = SSDNModel(replace(base, noise_init=init, learned=learned, offset=self.norm.offset, scale=self.norm.scale))
        if c.mode == "ssdn" and PRIOR_STD_START > 0:
            _start_prior_std(model, PRIOR_STD_START * _mean_noise_std(model, gaps))
        self.init_source = _warm_start(model, c.init)
        return model

    def _validation_windows(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Fixed windows (fixed seed, independent of training randomness) tiling the data,
        at most :data:`VAL_PIXELS` of them in all: ``(N, C, *size)`` crops, their targets,
        anchors (per-image models) and held-out masks ``(N, *size)`` (None without hold-out)."""
        mults = self.model.config.arch.multiples
        shapes = [s.shape[1:-1] for s in self.samples]
        size = _square_plane([max(m, (min(self.config.val_side, min(sh[a] for sh in shapes)) // m) * m) for a, m in enumerate(mults)])
        windows = []
        for i, s in enumerate(self.samples):
            # Non-overlapping windows from the start of each axis, the last one flush with its end.
            starts = [sorted({*range(0, n - z + 1, z), n - z}) for n, z in zip(s.shape[1:-1], size)]
            windows += [(i, k, corner) for k in range(s.shape[0]) for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(size))]
        count = max(1, min(len(windows), VAL_PIXELS // math.prod(size)))
        picked = np.sort(np.random.default_rng(12345).choice(len(windows), count, replace=False))

        def stack(arrays) -> torch.Tensor:
            crops = []
            for w in picked:
                i, k, corner = windows[w]
                crops.append(np.moveaxis(arrays[i][(k,) + tuple(slice(c, c + z) for c, z in zip(corner, size))], -1, 0))
            return torch.from_numpy(np.ascontiguousarray(np.stack(crops)))

        y = stack(self.samples)
        target = stack(self.targets) if self.targets is not None else None
        anchor = self._anchor([windows[w][:2] for w in picked])
        held = None
        if self.holdout is not None:
            held = np.stack([self.holdout.window(windows[w][2], size) for w in picked])
        if self.measured is not None:
            seen = np.stack([self.measured[i][(k,) + tuple(slice(c, c + z) for c, z in zip(corner, size))] for i, k, corner in (windows[w] for w in picked)])
            held = seen if held is None else held & seen
        return y, target, anchor, None if held is None else torch.from_numpy(held)

    # -- one step -----------------------------------------------------------------------
    def _anchor(self, drawn: list[tuple[int, int]]) -> torch.Tensor | None:
        """Per-image models: the classical-estimate offsets of the images the crops came from."""
        if self.anchors is None:
            return None
        return torch.stack([self.anchors[i][k] for i, k in drawn])

    def _pixel_losses(self, y: torch.Tensor, target: torch.Tensor | None = None, weighted: bool = True,
                      anchor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | float, tuple | None]:
        """The loss of every pixel ``(N, *spatial)``, a penalty to add to their mean and
        (``ssdn`` mode) the prior mean, prior covariance and noise parameters."""
        model = self.model
        cfg = model.config
        with network_precision(self.device, self.config.mixed_precision):
            out = model(y)
        if cfg.mode != "ssdn":
            ref = target if cfg.mode == "supervised" else y
            return (out.float() - ref).square().mean(1), 0.0, None
        c = cfg.channels
        mu, sx = split_prior(out, c)
        yy = y.movedim(1, -1)
        params = model.noise_params(y, anchor)
        nll = nll_loss(cfg.noise, yy, mu, sx, params)
        if weighted and NLL_BETA:
            nll = nll * marginal_variance(cfg.noise, mu, sx, params).detach() ** NLL_BETA
        penalty = 0.0
        if model.learned and cfg.noise != "impulse" and NOISE_PUSH:
            # The likelihood only constrains Sigma_x + Sigma_n; this push keeps the network
            # from explaining noise as prior variance (method.md, section 4).
            sn = noise_covariance(cfg.noise, params, mu.detach())
            penalty = -NOISE_PUSH * torch.sqrt(torch.diagonal(sn, dim1=-2, dim2=-1).mean(-1)).mean()
        return nll, penalty, (mu, sx, params)

    def _loss(self, y: torch.Tensor, target: torch.Tensor | None = None, anchor: torch.Tensor | None = None,
              kept: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss: the mean over the pixels of ``kept`` (all without it)."""
        losses, penalty, _ = self._pixel_losses(y, target, anchor=anchor)
        return _masked_mean(losses, kept) + penalty

    @torch.no_grad()
    def validate(self) -> float:
        """Loss on the fixed validation windows, over their held-out pixels (all pixels
        without hold-out), unweighted so that values compare across steps and with the
        paper; NaN when the prior or posterior is not finite."""
        was = self.model.training
        self.model.eval()
        total, count = 0.0, 0.0
        try:
            for y, target, anchor, held in self._val_batches():
                losses, _, prior = self._pixel_losses(y, target, weighted=False, anchor=anchor)
                weights = None if held is None else held.to(losses.dtype)
                total += float(losses.sum() if weights is None else (losses * weights).sum())
                count += losses.numel() if weights is None else float(weights.sum())
                if prior is not None:
                    mean, _ = posterior(self.model.config.noise, y.movedim(1, -1), *prior)
                    if not bool(torch.isfinite(mean).all()):
                        return float("nan")
        finally:
            self.model.train(was)
        return total / max(count, 1.0)

    def calibrate(self) -> dict:
        """Fit a scale k of the prior covariance and the learned noise parameters to the
        held-out pixels of the validation windows, the network's outputs fixed, and put
        them in the model (k as sqrt(k) on the covariance factor's last layer).

        On the pixels it is trained on, a network that has begun to fit their noise
        predicts too small an error, and a learned noise level held at its classical
        estimate for the first half of the run pulls the split between prior and noise
        variance the other way; held-out pixels are free of both. Only where the prior
        variance varies enough between pixels does their likelihood pin that split: the
        fit is kept only when the standard error of every fitted log value is below
        :data:`CALIBRATE_MAX_SE` and none sits at its bound.

        Returns
        -------
        dict
            ``prior_variance_scale`` (k) and ``noise_params`` (data units) after the fit;
            empty when it does not apply (no hold-out, not ``ssdn`` mode, impulse noise),
            is not pinned, or does not lower the held-out loss.
        """
        model = self.model
        cfg = model.config
        if self.holdout is None or cfg.mode != "ssdn" or cfg.noise == "impulse":
            return {}
        ys, mus, sxs, params = [], [], [], {}
        was = model.training
        model.eval()
        with torch.no_grad():
            for y, _, anchor, held in self._val_batches():
                with network_precision(self.device, self.config.mixed_precision):
                    out = model(y)
                mu, sx = split_prior(out, cfg.channels)
                ys.append(y.movedim(1, -1)[held])
                mus.append(mu[held])
                sxs.append(sx[held])
                for name, v in model.noise_params(y, anchor).items():
                    v = torch.as_tensor(v, dtype=torch.float64, device=self.device)
                    params.setdefault(name, []).append(v.expand(held.shape)[held] if v.dim() else v.expand(int(held.sum())))
        model.train(was)
        y, mu, sx = torch.cat(ys), torch.cat(mus), torch.cat(sxs)
        params = {name: torch.cat(v) for name, v in params.items()}
        bounds = torch.tensor([CALIBRATE_LOG_SCALE] + [CALIBRATE_LOG_PARAM] * len(model.learned), dtype=torch.float64, device=self.device)

        def held_out_loss(logs: torch.Tensor) -> torch.Tensor:
            p = dict(params)
            for j, name in enumerate(model.learned):
                p[name] = params[name] * torch.exp(logs[1 + j])
            return nll_loss(cfg.noise, y, mu, sx * torch.exp(logs[0]), p).mean()

        free = torch.zeros(len(bounds), dtype=torch.float64, device=self.device, requires_grad=True)
        opt = torch.optim.LBFGS([free], max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = held_out_loss(torch.tanh(free) * bounds)  # within the bounds, whatever the optimiser tries
            loss.backward()
            return loss

        with torch.no_grad():
            before = float(held_out_loss(torch.zeros_like(bounds)))
        opt.step(closure)
        logs = (torch.tanh(free) * bounds).detach()
        # Standard errors from the likelihood's curvature over the held-out pixels.
        info = torch.autograd.functional.hessian(held_out_loss, logs) * y.shape[0] / 2
        try:
            se = torch.sqrt(torch.diagonal(torch.linalg.inv(info)))
        except RuntimeError:  # singular: nothing pinned
            return {}
        pinned = bool(torch.isfinite(se).all() and (se < CALIBRATE_MAX_SE).all() and (logs.abs() < 0.95 * bounds).all())
        with torch.no_grad():
            if not (pinned and float(held_out_loss(logs)) < before):
                return {}
            last = model.net.head[-1]
            root = float(torch.exp(logs[0] / 2))
            last.weight[cfg.channels :] *= root
            last.bias[cfg.channels :] *= root
            model.log_scale += logs[1:].to(model.log_scale.dtype)
        return {"prior_variance_scale": float(torch.exp(logs[0])), "noise_params": model.noise_params_data()}

    def _val_batches(self):
        """The validation windows on the device, as ``(y, target, anchor, held)`` batches of
        about the training batch's pixel count, so that memory stays that of training."""
        y_all, target_all, anchor_all, held_all = self._val
        per = max(1, (self.config.batch_for(self.device) * math.prod(self.patch_shape)) // math.prod(y_all.shape[2:]))
        on = lambda t: None if t is None else t.to(self.device)  # noqa: E731
        for lo in range(0, y_all.shape[0], per):
            part = slice(lo, lo + per)
            yield (on(y_all[part]), on(None if target_all is None else target_all[part]),
                   None if anchor_all is None else anchor_all[part], on(None if held_all is None else held_all[part]))

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish after the current step (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _fraction(self, step: int, elapsed: float) -> float:
        c = self.config
        fs = []
        if c.iterations:
            fs.append(step / c.iterations)
        if c.time_limit:
            fs.append(elapsed / c.time_limit)
        if not fs:
            fs.append(step / 2000)
        return max(fs)

    def run(self):
        """Train, yielding a :class:`TrainProgress` after every step.

        Stops when the budget is spent or :meth:`request_stop` is called; closing the
        generator also stops it. The model trained so far stays in :attr:`model`: with
        ``keep_best``, the weights of the lowest validation loss (see
        :attr:`TrainProgress.kept_step`), also when the run stops on an error.
        """
        c = self.config
        model = self.model
        model.train()
        warmup = 0.0 if self.resumed else c.warmup  # Adam state is restored: no need to ramp up again
        # Learned noise parameters (log scale) move 10x faster than the weights, so that
        # minutes are enough to refine the classical estimate; they stay put while the
        # untrained prior would push them towards explaining everything as noise.
        base_lrs = [self.lr, NOISE_LR_FACTOR * self.lr, self.lr]
        t0 = time.perf_counter()
        try:
            yield from self._steps(t0, base_lrs, warmup)
        finally:
            self._restore_best()
            model.eval()

    def _steps(self, t0: float, base_lrs: list[float], warmup: float):
        c = self.config
        model = self.model
        skipped = 0
        val_loss = None
        step = 0
        while True:
            elapsed = time.perf_counter() - t0
            f = self._fraction(step, elapsed)
            if step > 0 and (f >= 1.0 or self._stop.is_set()):
                break
            factor = _lr_factor(f + 0.5 / max(self._planned(step, elapsed), 1), warmup, c.rampdown)
            for g, base in zip(self.optimizer.param_groups, base_lrs):
                g["lr"] = base * factor
            if f < NOISE_FREEZE and not self.resumed:
                for g in self.optimizer.param_groups[1:]:
                    g["lr"] = 0.0
            crops = self.sampler.sample(c.batch_for(self.device), *([self.targets] if self.targets is not None else []))
            y = torch.from_numpy(crops[0]).to(self.device)
            target = torch.from_numpy(crops[1]).to(self.device) if len(crops) > 1 else None
            kept = None if self.sampler.kept is None else torch.from_numpy(self.sampler.kept).to(self.device)
            loss = self._loss(y, target, anchor=self._anchor(self.sampler.drawn), kept=kept)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            # One host-device sync for the whole check, not one per tensor: on a GPU each
            # sync waits for all queued work, and a small step is only milliseconds.
            norms = torch._foreach_norm(grads) if grads else []
            finite = bool(torch.isfinite(torch.stack([loss.detach().float(), *[n.float() for n in norms]]).sum()))
            if finite:
                self.optimizer.step()
            else:
                skipped += 1
            step += 1
            self.step = step
            elapsed = time.perf_counter() - t0
            f = self._fraction(step, elapsed)
            last = f >= 1.0 or self._stop.is_set()
            validated = step % self.val_every == 0 or last or step == 1
            if validated:
                val_loss = self.validate()
                if c.keep_best and val_loss < self.best_val_loss:  # NaN is never best
                    self.best_val_loss, self.best_step = val_loss, step
                    self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if last:
                restored = self._restore_best()
                if c.calibrate:
                    self.calibration = self.calibrate()
                if restored or self.calibration:
                    val_loss, validated = self.validate(), True
                self.final_val_loss = val_loss
            total = self._planned(step, elapsed)
            rec = TrainProgress(
                step=step,
                total=total,
                loss=float(loss.detach()),
                val_loss=val_loss if validated else None,
                noise_params=model.noise_params_data(),
                lr=float(self.optimizer.param_groups[0]["lr"]),
                elapsed=elapsed,
                eta=max(0.0, elapsed * (1 - f) / max(f, 1e-9)),
                skipped=skipped,
                done=last,
                kept_step=self.kept_step if last else None,
            )
            self.history.append(rec)
            self.elapsed = elapsed
            yield rec

    @property
    def kept_step(self) -> int:
        """The step (of this run) whose weights the model holds at the end of the run."""
        return self.best_step if self.config.keep_best and self.best_step is not None else self.step

    def _restore_best(self) -> bool:
        """Go back to the weights of the lowest validation loss (``keep_best``); whether it did."""
        restore = self._best_state is not None and self.best_step != self.step and self.config.keep_best
        if restore:
            self.model.load_state_dict(self._best_state)
        # Restored once: a step taken afterwards (a resumed run) must not be undone.
        self._best_state = None
        return restore

    def _planned(self, step: int, elapsed: float) -> int:
        c = self.config
        f = self._fraction(step, elapsed)
        if c.iterations and not c.time_limit:
            return c.iterations
        if step == 0 or f <= 0:
            return c.iterations or 2000
        return max(step, int(round(step / f)))

    def train_state(self) -> dict:
        last = self.history[-1] if self.history else None
        return {
            "steps": self.steps_before + self.step,
            "elapsed": self.elapsed_before + getattr(self, "elapsed", 0.0),
            "last_loss": None if last is None else last.loss,
            "last_val_loss": None if last is None else next((r.val_loss for r in reversed(self.history) if r.val_loss is not None), None),
            # The weights saved: the lowest validation loss's with keep_best.
            "kept_step": self.steps_before + self.kept_step,
            "val_loss": self.final_val_loss,
            "holdout": self.config.holdout,
            "calibration": self.calibration,
            "device": device_name(self.device),
            "patch": list(self.patch_shape),
            "batch": self.config.batch_for(self.device),
            "lr": self.lr,
            "seed": self.config.seed,
            "init": self.init_source,
        }

    def save(self, path) -> None:
        """Write the model, optimizer and training state to ``path`` (atomic)."""
        from .modelfile import save_model

        save_model(self.model, path, optimizer_state=self.optimizer.state_dict(), train_state=self.train_state())


def train(images, axes=None, config: TrainConfig | None = None, **kwargs) -> SSDNModel:
    """Train to the end of the budget and return the model (see :class:`Trainer`).

    Keyword arguments not taken by :class:`Trainer` update ``config``, e.g.
    ``train(img, "YX", iterations=500, noise_params={"sigma": 25})``.
    """
    trainer_kw = {k: kwargs.pop(k) for k in ("targets", "resume", "resume_info") if k in kwargs}
    config = replace(config or TrainConfig(), **kwargs)
    trainer = Trainer(images, axes, config, **trainer_kw)
    for _ in trainer.run():
        pass
    return trainer.model
