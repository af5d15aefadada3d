"""Checks and preparation of the arrays a user trains on."""

from __future__ import annotations

import numpy as np

from ..constants import region_extent
from ..data import to_samples
from ..errors import SSDNError, setting
from ..sizes import first_too_small

__all__ = ["prepare_images", "check_sizes", "check_resumable"]


def prepare_images(arrays, axes, ndim: int = 2) -> list[np.ndarray]:
    """The arrays as ``(samples, *spatial, C)`` views, or :class:`SSDNError` naming the bad one.

    Parameters
    ----------
    arrays : ndarray or list of ndarray
    axes : str, list of str or None
        Axes of each array; guessed where None.
    ndim : int
        2 for images (other axes become samples), 3 for volumes.
    """
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
            from ..data import guess_axes

            ax = guess_axes(a.shape, ndim=ndim)
        out.append(to_samples(a, ax, ndim))
    chans = {s.shape[-1] for s in out}
    if len(chans) > 1:
        raise SSDNError(f"images have different channel counts {sorted(chans)}; train on images with the same channels")
    for i, s in enumerate(out):
        if not np.isfinite(s).any():
            raise SSDNError(f"image {i} holds no finite values (all NaN or infinite); check the file")
    return out


def check_sizes(
    samples: list[np.ndarray],
    mults: tuple[int, ...],
    subsample: int,
    patch: int,
    tiny: bool,
    region: tuple[int, ...] = (),
) -> None:
    """Refuse data or a patch smaller than the network's smallest input, or a blind region
    that would hide much of the data, naming what to change.

    ``samples`` are ``(S, *spatial, C)`` before the split into ``subsample``^2 sub-images,
    which divides the two image axes."""
    if patch < max(mults):
        raise SSDNError(
            f"{setting('patch', patch)} is smaller than the {max(mults)} pixels this network needs; "
            f"use a patch of {max(mults)} or more"
        )
    small = first_too_small([min(s.shape[1 + a] for s in samples) for a in range(len(mults))], mults, subsample)
    if small is not None:  # the rule denoising checks too
        a, smallest, mult = small
        split = subsample if a >= len(mults) - 2 else 1
        across = f"{smallest * split} pixel{'s' if smallest * split != 1 else ''}" + (
            f" ({smallest} per sub-image of subsample={subsample})" if split > 1 else ""
        )
        if len(mults) == 3 and a == 0:
            raise SSDNError(
                f"the smallest volume has {smallest} slices but a 3D network needs at least {mult}; "
                f"train a 2D network on the slices instead ({setting('ndim', 2)})"
            )
        remedy = "give larger images" + ("" if tiny else ", or use the tiny width preset")
        if split > 1:
            remedy += f", or a smaller subsample than {subsample}"
        raise SSDNError(
            f"the smallest image is {across} along {'ZYX'[a - len(mults)]} but this network needs at least {mult}; "
            f"{remedy}"
        )
    sides = [
        min(s.shape[1 + a] for s in samples) // (subsample if a >= len(region) - 2 else 1) for a in range(len(region))
    ]
    for a, (k, smallest) in enumerate(zip(region, sides, strict=True)):
        if smallest < 4 * k:
            fits = ",".join(str(max(1, min(kk, n // 4))) for kk, n in zip(region, sides, strict=True))
            raise SSDNError(
                f"{setting('blind', region)} hides {region_extent((k,))} pixels across but the smallest image is "
                f"{smallest} pixels along {'ZYX'[a - len(region)]}; use a smaller blind region (e.g. "
                f"{setting('blind', fits)}) "
                "or larger images"
            )


def check_resumable(resume, config, channels: int) -> None:
    """Refuse to resume a model that cannot continue on this data with these settings."""
    if resume.config.channels != channels:
        raise SSDNError(
            f"the model to resume has {resume.config.channels} channel(s) but the data has {channels}; "
            "resume with data of the same kind or train a new model"
        )
    if config.subsample is not None and config.subsample != resume.config.subsample:
        raise SSDNError(
            f"the model to resume was trained with subsample {resume.config.subsample} but "
            f"{setting('subsample', config.subsample)}; "
            f"leave {setting('subsample')} unset to keep the model's"
        )
    given = config.noise_model_given
    if given is not None and given != resume.config.noise:
        raise SSDNError(
            f"{setting('noise', given)} differs from the resumed model's {resume.config.noise!r}; "
            f"leave {setting('noise', 'auto')} to keep the model's, or train a new model"
        )
    region = config.blind_region_given(resume.config.ndim) if resume.config.ndim == config.ndim else None
    if region is not None and region != resume.config.region:
        raise SSDNError(
            f"{setting('blind', config.blind)} differs from the resumed model's blind region {resume.config.region}; "
            f"leave {setting('blind', 'auto')} to keep the model's, or train a new model"
        )
    if resume.config.ndim != config.ndim:
        raise SSDNError(
            f"the model to resume is a {resume.config.ndim}D network but this is {setting('ndim', config.ndim)}; "
            f"resume with {setting('ndim', resume.config.ndim)}"
        )
