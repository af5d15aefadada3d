"""The user-facing training settings, one row each: type, default (and what ``auto`` becomes),
allowed values and one help text. :meth:`TrainConfig.validate`, the command line's options
and the Train widget's fields and tooltips all read this table (torch-free)."""

from __future__ import annotations

from ..constants import MAX_BLIND, MODES, NOISE_MODELS, PAIR_METHODS, WIDTHS
from ..nets.warmstart import AUTO_START_NOISE, BLIND_MODES, FINE_TUNE_LARGE_DATA, FINE_TUNE_LR, FINE_TUNE_LR_LARGE
from .field import Field

__all__ = ["Field", "FIELDS", "field_help", "noise_param_help"]


def _num(x: float) -> str:
    """``3e-4`` rather than ``0.0003`` for a learning rate."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _either(names) -> str:
    """``a, b or c``."""
    names = list(names)
    return " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def _auto_init() -> str:
    """What ``init="auto"`` starts from, read from the table of measured starts."""
    gray, rgb = (_either(AUTO_START_NOISE.get(c, ())) for c in (1, 3))
    return (
        f"the shipped generic network where the noise model, given or picked by noise auto, is {gray} on gray "
        f"2D images or {rgb} on RGB 2D images, in {_either(BLIND_MODES)} mode, at the tiny width and without "
        "subsampling; else random weights"
    )


def _auto_noise() -> str:
    curve = ""
    if "curve" in NOISE_MODELS:
        curve = "curve where that variance falls below a line (saturation) or is sparse photon events, "
    return (
        f"poisson-gaussian where the noise variance grows with the signal, {curve}else gaussian; "
        "the model of the noise parameters given, where some are"
    )


_NOISE_WORDS = {
    "gaussian": "additive",
    "poisson": "photon counts",
    "poisson-gaussian": "camera: counts plus read noise",
    "curve": "the noise variance against the signal measured from the data, e.g. clipped at zero or at saturation",
    "impulse": "a fraction of pixels replaced by random values",
}
#: What each noise parameter given in data units means, for the command line and tooltips.
_PARAM_WORDS = {
    "sigma": "Gaussian noise: its standard deviation, in data units",
    "lam": "Poisson noise: photon counts per data unit (counts = lam * mean), so the noise variance = mean / lam",
    "a": "Poisson-Gaussian noise: the gain a of the noise variance = a * mean + b, in data units",
    "b": "Poisson-Gaussian noise: the noise variance at zero signal (b of variance = a * mean + b; the read "
    "noise squared), in data units squared",
    "alpha": "impulse noise: the fraction of pixels replaced by random values, above 0 and below 1",
}
_WHOLE = "must be a positive whole number"
_IMAGE_CROPS = "64 for images on a CPU, 128 on a GPU; 24 for volumes (48 with a blind region beyond the voxel)"

#: The user-facing training settings, in the order :meth:`TrainConfig.validate` checks them.
FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field(
            "noise",
            "choice",
            "auto",
            _auto_noise(),
            "noise model: auto, "
            + ", ".join(f"{m} ({_NOISE_WORDS[m]})" if m in _NOISE_WORDS else m for m in NOISE_MODELS),
            choices=("auto", *NOISE_MODELS),
            rule=f"is not a noise model; use auto or one of {', '.join(NOISE_MODELS)}",
        ),
        Field(
            "mode",
            "choice",
            "ssdn",
            "ssdn",
            "training objective: ssdn (blind spot and Bayesian posterior), "
            "mu-only (blind spot trained to the noisy input, no posterior) or supervised (clean targets)",
            choices=MODES,
            rule=f"is not one of {', '.join(MODES)}",
        ),
        Field(
            "noise_params",
            "text",
            {},
            "every parameter learned, from a classical estimate",
            "known noise parameters in data units: sigma (Gaussian std), lam (Poisson: variance = mean / lam), "
            "a and b (Poisson-Gaussian: variance = a * mean + b), alpha (impulse: fraction of corrupted pixels, "
            "below 1); those left out are learned",
        ),
        Field(
            "blind",
            "text",
            "auto",
            "from the noise's correlation between neighbouring pixels measured "
            "in the data, the pixel alone where it is negligible",
            f"blind region: K hides every pixel closer than K along every axis (2: a 3 x 3 square, 1: the "
            f"pixel alone), or one K per axis, KY,KX (volumes KZ,KY,KX); K from 1 to {MAX_BLIND}",
            low=1,
            high=MAX_BLIND,
        ),
        Field(
            "pair_method",
            "choice",
            "auto",
            "noise2noise where the measured noise is correlated between neighbours, else mean",
            "how to learn from a second observation of each image: noise2noise (a "
            "non-blind network from each half to the other) or mean (the blind-spot network on the halves' "
            "mean, its noise measured from them)",
            choices=PAIR_METHODS,
            rule=f"is not one of {', '.join(PAIR_METHODS)}",
        ),
        Field(
            "per_image",
            "choice",
            "auto",
            "per image where the images' noise levels differ by 2x or more",
            "a noise level for each image (a frame of a stack, a volume), each from its own classical "
            "estimate; or one level shared by all",
            choices=(True, False, "auto"),
            rule="must be True, False or 'auto'",
        ),
        Field("iterations", "int", None, "2000 unless a time limit is given", "training steps", low=1, rule=_WHOLE),
        Field(
            "patch",
            "int",
            None,
            _IMAGE_CROPS,
            "side of the training crops in pixels, rounded down to a multiple of the network's smallest input",
            low=8,
            rule=_WHOLE,
            too_small="is smaller than the 8 pixels the smallest network needs; use a patch of 8 or more",
        ),
        Field(
            "batch",
            "int",
            None,
            "4 for images on a CPU, 8 on a GPU; 1 for volumes",
            "crops per training step",
            low=1,
            rule=_WHOLE,
        ),
        Field(
            "val_every",
            "int",
            None,
            "validating costs about 5 percent of the training time, and at least ten validations in the step budget",
            "steps between validation losses",
            low=1,
            rule=_WHOLE,
        ),
        Field(
            "val_size",
            "int",
            None,
            "256 for images, 64 for volumes",
            "side of the fixed validation windows",
            low=1,
            rule=_WHOLE,
        ),
        Field(
            "holdout",
            "float",
            1 / 16,
            "1/16",
            "share of the pixels kept out of the loss and scored by the validation loss instead, from 0 (off) to 0.5",
            low=0.0,
            high=0.5,
            rule="must be a fraction of the pixels from 0 (off) to 0.5, e.g. 0.0625",
        ),
        Field(
            "ndim",
            "choice",
            2,
            "",
            "2 trains on images (a Z axis is a stack of 2D samples); 3 trains a volume network on ZYX data",
            choices=(2, 3),
            rule="must be 2 (images) or 3 (volumes)",
        ),
        Field(
            "anisotropy",
            "float",
            1.0,
            "",
            "volumes: z voxel size over in-plane voxel size; from 1.5 up the first pooling levels pool in-plane only",
            low=0.0,
            open_low=True,
            rule="must be a positive number (z voxel size / xy voxel size)",
        ),
        Field(
            "subsample",
            "int",
            None,
            "1 for a new model, the model's own factor when resuming",
            "train and denoise on the F x F interleaved sub-images, for noise correlated between neighbouring "
            "pixels (resampled or demosaiced camera images), which a blind-spot network would learn to "
            "reproduce: try 2; images only, 1 to 4",
            low=1,
            high=4,
            rule="must be a whole number from 1 to 4 (2 for noise correlated between neighbours)",
        ),
        Field(
            "time_limit",
            "float",
            None,
            "none",
            "wall-clock budget in seconds; with a step budget too, whichever ends first",
            low=0.0,
            open_low=True,
            rule="must be a positive number of seconds",
        ),
        Field(
            "width",
            "choice",
            None,
            "tiny on a CPU and for volumes; on a GPU tiny where the shipped starting "
            "network fits (see init), else light",
            "network size: tiny, light or paper (Laine et al.'s network; use a GPU)",
            choices=tuple(sorted(WIDTHS, key=lambda w: WIDTHS[w][0])),
            rule=f"is not a preset; use one of {', '.join(WIDTHS)}",
        ),
        Field(
            "lr",
            "float",
            None,
            f"from a warm start {_num(FINE_TUNE_LR)}, or {_num(FINE_TUNE_LR_LARGE)} on "
            f"{FINE_TUNE_LARGE_DATA / 1e6:g} megapixels of data or more; from scratch 2e-3 for the tiny 2D "
            "network, else 1e-3",
            "peak learning rate of Adam, at most 0.1",
            low=0.0,
            high=0.1,
            open_low=True,
            rule="must be positive, e.g. 1e-3",
            too_large="is too large; use about 1e-3 (at most 0.1)",
        ),
        Field(
            "warmup",
            "float",
            0.1,
            "",
            "fraction of the budget for the half-cosine ramp up of the learning rate",
            low=0.0,
            high=1.0,
            rule="must be a fraction of the budget from 0 to 1",
        ),
        Field(
            "rampdown",
            "float",
            0.3,
            "",
            "fraction of the budget for the half-cosine ramp down of the learning rate",
            low=0.0,
            high=1.0,
            rule="must be a fraction of the budget from 0 to 1",
        ),
        Field(
            "seed",
            "int",
            0,
            "",
            "random seed of the crops, augmentation and initial weights (same seed, same result)",
            low=0,
            rule="must be a whole number of 0 or more",
        ),
        Field(
            "device",
            "text",
            "auto",
            "CUDA, then MPS, then the CPU",
            "where to train: auto, cpu, cuda, cuda:N or mps",
        ),
        Field(
            "mixed_precision",
            "choice",
            True,
            "",
            "bfloat16/float16 network arithmetic where the hardware is "
            "fast at it (CUDA, CPUs with AVX512-BF16); likelihoods and posteriors stay float64",
            choices=(True, False),
            rule="must be True or False",
        ),
        Field(
            "keep_best",
            "choice",
            True,
            "",
            "at the end of a run, go back to the weights and noise parameters of the lowest validation loss",
            choices=(True, False),
            rule="must be True or False",
        ),
        Field(
            "init",
            "text",
            "auto",
            _auto_init(),
            "starting weights: auto, generic (the shipped network, for "
            "any noise model), none (random) or a model file of the same width; a warm start fine-tunes at "
            "a lower learning rate (see lr)",
        ),
    )
}


def field_help(name: str) -> str:
    """The help of the training setting ``name`` with its default in words (:attr:`Field.text`)."""
    return FIELDS[name].text


def noise_param_help(name: str) -> str:
    """What the noise parameter ``name`` means, in data units.

    Parameters
    ----------
    name : str
        A parameter of a noise model (:data:`~napari_ssdn.core.constants.NOISE_PARAMS`).

    Returns
    -------
    str
        One line without a final full stop, for the command line's help and the tooltips.
    """
    return _PARAM_WORDS[name]
