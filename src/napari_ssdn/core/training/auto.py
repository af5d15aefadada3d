"""Settings read from the data: the noise model and the blind region, with the reasons."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..constants import NOISE_PARAMS
from ..data import split_phases
from ..errors import SSDNError
from ..noise.choice import choose_noise_model, dark_level
from ..noise.curve import CURVE_BEND, SPARSE_SHARE, curve_bend, variance_curve
from ..noise.estimate import PER_IMAGE_SPREAD, level_spread
from ..noise.stats import choose_blind_region, level_lag, noise_stats

__all__ = ["DataChoices", "choose_settings", "choose_layout", "channels_as_images"]


@dataclass(frozen=True)
class DataChoices:
    """What a run uses for the settings left to ``auto``, and why.

    Attributes
    ----------
    noise, noise_why : str
        The noise model and the reason (``given`` when the user chose it).
    blind_region : tuple of int
        The final shift k per spatial axis.
    blind_why : str
    correlation : dict or None
        The measured noise statistics (:meth:`NoiseStats.to_dict`), where measured.
    noise_lag : int
        Distance of the pixels the classical noise level differences (see
        :func:`~.stats.level_lag`).
    dark_level : float
        Poisson-Gaussian data with both parameters learned: the level (data units) where
        the variance line meets zero, a camera's pedestal (see
        :func:`~.choice.dark_level`); else 0.
    per_image, per_image_why : bool, str
        Whether the noise parameters vary per image, and why.
    channels_apart, channels_why : bool, str
        Whether the channels of multi-channel data train as separate gray images (a gray
        network, a noise level per channel), and why (empty for single-channel data).
    """

    noise: str
    noise_why: str
    blind_region: tuple
    blind_why: str
    correlation: dict | None = field(default=None)
    noise_lag: int = 1
    dark_level: float = 0.0
    per_image: bool = False
    per_image_why: str = "given"
    channels_apart: bool = False
    channels_why: str = ""

    def to_dict(self) -> dict:
        return {
            "noise": self.noise,
            "noise_why": self.noise_why,
            "blind_region": list(self.blind_region),
            "blind_why": self.blind_why,
            "correlation": self.correlation,
            "noise_lag": self.noise_lag,
            "dark_level": self.dark_level,
            "per_image": self.per_image,
            "per_image_why": self.per_image_why,
            "channels_apart": self.channels_apart,
            "channels_why": self.channels_why,
        }


def _slices(samples: list[np.ndarray]) -> list[np.ndarray]:
    """Volumes as stacks of 2D slices, for the estimators that work on images."""
    return [s.reshape((-1,) + s.shape[-3:]) for s in samples]


def choose_settings(config, raw: list[np.ndarray], subsample: int = 1) -> DataChoices:
    """Resolve ``noise="auto"`` and ``blind="auto"`` of ``config`` from the data.

    Parameters
    ----------
    config : TrainConfig
    raw : list of ndarray
        The training data as ``(S, *spatial, C)`` arrays in data units (NaN: missing).
        The statistics used are invariant to the data's offset and scale.
    subsample : int
        The run's pixel-shuffle factor: statistics are measured on the sub-images the
        network will see.

    Returns
    -------
    DataChoices
    """
    ndim = config.ndim
    samples = [split_phases(s, subsample, crop=True) for s in raw] if subsample > 1 else raw
    noise, region = config.noise_model_given, config.blind_region_given()
    noise_why = blind_why = "given"
    stats, measured = None, None
    if region is None:
        if config.mode == "supervised":
            region, blind_why = (1,) * ndim, "no blind spot in supervised mode"
        else:
            try:
                measured = noise_stats(samples, ndim)
            except SSDNError:
                region, blind_why = (
                    (1,) * ndim,
                    "too little data to measure the noise's correlation: the centre pixel alone",
                )
            else:
                stats = measured.to_dict()
                region, blind_why = choose_blind_region(measured, ndim)
    if measured is None and max(region[-2:]) > 1:
        try:  # a given region: the level's lag still comes from the correlation
            measured = noise_stats(samples, ndim)
        except SSDNError:
            pass
    lag = level_lag(measured, region)
    if noise is None:
        try:
            noise, noise_why = choose_noise_model(_slices(samples), lag=lag)
        except SSDNError:
            noise, noise_why = "gaussian", "too little data to tell whether the noise grows with the signal"
    dark = 0.0
    if noise == "poisson-gaussian" and not config.known_noise_params:
        try:  # given parameters keep their meaning in data units: then no offset
            dark = dark_level(_slices(samples), lag=lag)
        except (SSDNError, ValueError, np.linalg.LinAlgError):
            pass
    per_image, per_image_why = _per_image(config, samples, noise, lag)
    if noise == "poisson-gaussian" and noise_why != "given" and not per_image and config.mode == "ssdn":
        bent = _bent_variance(_slices(samples), lag)
        if bent:
            noise, noise_why, dark = "curve", f"{noise_why}; {bent}", 0.0
    return DataChoices(
        noise=noise,
        noise_why=noise_why,
        blind_region=tuple(region),
        blind_why=blind_why,
        correlation=stats,
        noise_lag=lag,
        dark_level=dark,
        per_image=per_image,
        per_image_why=per_image_why,
    )


def channels_as_images(raw: list[np.ndarray]) -> list[np.ndarray]:
    """Each channel of ``(S, *spatial, C)`` arrays as its own ``(S, *spatial, 1)`` array."""
    return [s[..., c : c + 1] for s in raw for c in range(s.shape[-1])]


def choose_layout(config, raw: list[np.ndarray], subsample: int = 1) -> tuple[list[np.ndarray], DataChoices]:
    """The training data as the network sees them, and :func:`choose_settings` of them.

    One noise model serves every channel of a multi-channel network. Where the channels'
    noise levels differ by :data:`~.estimate.PER_IMAGE_SPREAD` or more (fluorescence
    channels of one camera composed into an RGB file), the channels train as separate gray
    images with a level each: with one level, the FMD widefield RGB file's posterior mean
    fell 0.63 dB below the prior mean. Not where the user set the noise or ``per_image=False``.

    Parameters
    ----------
    config : TrainConfig
    raw : list of ndarray
        ``(S, *spatial, C)`` arrays in data units, as for :func:`choose_settings`.
    subsample : int

    Returns
    -------
    list of ndarray, DataChoices
        ``raw`` itself, or its channels as images (:func:`channels_as_images`).
    """
    chans = raw[0].shape[-1]
    choices = choose_settings(config, raw, subsample)
    if chans < 2:
        return raw, choices
    if config.mode != "ssdn" or config.known_noise_params or config.per_image_given() is False:
        return raw, replace(choices, channels_why="one noise level set or asked for")
    channels = [_slices([s[..., c : c + 1] for s in raw[:1]])[0] for c in range(chans)]
    spread = level_spread(channels, choices.noise, choices.noise_lag)
    if spread < PER_IMAGE_SPREAD:
        return raw, replace(
            choices, channels_why=f"the channels share one noise level (within {spread:.2f}x in variance)"
        )
    gray = channels_as_images(raw)
    # The statistics of what the network will see, with a level per channel image (so no
    # single measured curve, which would serve one level only).
    choices = choose_settings(replace(config, per_image=True), gray, subsample)
    why = f"noise levels differ between channels (up to {spread:.1f}x in variance)"
    return gray, replace(choices, channels_apart=True, channels_why=why, per_image=True, per_image_why=why)


def _bent_variance(samples: list[np.ndarray], lag: int) -> str:
    """Why the measured variance curve serves better than the classical line, or empty:
    where no knot falls :data:`~napari_ssdn.core.noise.curve.CURVE_BEND` or more below
    the best line through the knots (saturation) and no knot's noise is sparse (median
    share under :data:`~napari_ssdn.core.noise.curve.SPARSE_SHARE`)."""
    try:
        curve = variance_curve(samples, lag=lag)
    except SSDNError:
        return ""
    short, level = curve_bend(curve)
    if short >= CURVE_BEND:
        return (
            f"it falls below a line (the best line overstates it by {short:.0%} at level {level:.4g}, "
            "as where a camera saturates): a measured curve"
        )
    i = int(np.argmin(curve["median_share"]))
    if curve["median_share"][i] < SPARSE_SHARE:
        return (
            f"at level {curve['mean'][i]:.4g} it is sparse photon events (the median-based variance is "
            f"{curve['median_share'][i]:.0%} of the mean square), which a line fitted to medians misreads: "
            "a measured curve"
        )
    return ""


def _per_image(config, samples: list[np.ndarray], noise: str, lag: int) -> tuple[bool, str]:
    """Whether the noise parameters vary per image (as given, or where the images' levels
    differ by :data:`~.estimate.PER_IMAGE_SPREAD` or more), and why."""
    given = config.per_image_given()
    if given is not None:
        return given, "given"
    if config.mode != "ssdn" or set(config.known_noise_params) >= set(NOISE_PARAMS[noise]):
        return False, "no noise parameter to estimate"
    images = [s[k].reshape((-1,) + s.shape[-3:]) for s in samples for k in range(s.shape[0])]
    if len(images) < 2:
        return False, "one image"
    spread = level_spread(images, noise, lag)
    if spread >= PER_IMAGE_SPREAD:
        return True, f"noise levels differ between images (up to {spread:.1f}x in variance)"
    return False, f"the images share one noise level (within {spread:.2f}x in variance)"
