"""Tiled inference: posterior mean, prior mean, posterior standard deviation, residual."""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..alloc import reuse_freed_memory
from ..constants import OUTPUTS
from ..data import from_samples, guess_axes, merge_phases, split_phases, to_samples
from ..device import network_precision, resolve_device
from ..errors import SSDNError, SSDNWarning, setting
from ..nets.model import SSDNModel
from ..sizes import check_denoise_size, check_tile
from .outputs import noise_override
from .tiles import DenoiseProgress, TileJob, TileWriter, default_tile, run_tiles

__all__ = ["OUTPUTS", "DenoiseProgress", "denoise", "denoise_iter", "default_tile", "scale_mismatch", "compiled"]


# Auto test-time averaging up to this many pixels (all samples together), per device type:
# about a minute of 8 passes of the tiny network on a 2-core CPU.
TTA_AUTO_PIXELS = {"cpu": 2**20, "mps": 2**22, "cuda": 2**24}


def channels_to_samples(samples: np.ndarray) -> np.ndarray:
    """``(S, *spatial, C)`` as ``(S * C, *spatial, 1)``: each channel a gray sample."""
    return np.moveaxis(samples, -1, 1).reshape((-1,) + samples.shape[1:-1] + (1,))


def samples_to_channels(samples: np.ndarray, chans: int) -> np.ndarray:
    """The inverse of :func:`channels_to_samples` for ``chans`` channels."""
    return np.moveaxis(samples[..., 0].reshape((-1, chans) + samples.shape[1:-1]), 1, -1)


def denoise_iter(
    model: SSDNModel,
    image: np.ndarray,
    axes: str | None = None,
    output: str = "posterior-mean",
    tile: int | None = None,
    device: str = "auto",
    out: np.ndarray | None = None,
    mixed_precision: bool | None = None,
    noise_params: dict | None = None,
    tta: bool | None = None,
    compile_network: bool = False,
):
    """Denoise ``image`` tile by tile, yielding :class:`DenoiseProgress`; returns the result.

    Parameters
    ----------
    model : SSDNModel
        A trained model (see :func:`~napari_ssdn.core.load_model`).
    image : ndarray
        Noisy data in the units the model was trained on. May be a memory map: only the
        tile being processed is read. A model trained on the channels of
        multi-channel data apart (``model.config.channels_apart``) denoises each channel
        of such data as an image.
    axes : str, optional
        Axes of ``image`` (e.g. ``"YX"``, ``"ZYX"``, ``"YXC"``); guessed when omitted.
        A volume model (trained with ``ndim=3``) needs a Z axis. An image smaller than the
        network takes (as training refuses it: its multiple along each spatial axis, e.g.
        8 x 8 pixels for the tiny width) is refused with :class:`SSDNError`.
    output : str or sequence of str
        ``posterior-mean`` (default), ``prior-mean`` (the blind-spot prediction alone, "no
        Bayes"), ``posterior-std`` or ``residual`` (noisy minus posterior mean). Several
        kinds give a dict of arrays computed from one network pass.
    tile : int, optional
        Largest side of the part of each tile that is kept (tiles are made equal, so it may
        be smaller; at least 16, as smaller tiles are mostly margin); tiles
        overlap by the network's receptive field so the result equals a whole-image pass.
        Default: as large as memory allows. A tile whose window needs more than the
        device's whole memory is refused (:class:`SSDNError` naming the largest that fits).
    device : str
        ``auto``, ``cpu``, ``cuda``, ``mps``.
    out : ndarray, optional
        Preallocated float32 output of the image's shape (e.g. a memory map: each tile is
        written as soon as it is done, so the result never has to fit in memory).
    mixed_precision : bool or None
        Run the network in bfloat16 (float16 on GPUs without it) where the hardware is
        fast at it: CUDA, and CPUs with AVX512-BF16/AMX. The posterior stays float64.
        Default (None): on such CPUs (1.8x measured), not on CUDA, where the tiny and
        light presets denoised no faster in bfloat16 on an H200 (docs/benchmarks.md).
        False gives float32 results that do not depend on the tiling.
    noise_params : dict, optional
        Noise parameters in data units that replace the model's for this image (e.g.
        ``{"sigma": 12.0}`` when the level of this acquisition is known); parameters not
        given keep the model's values.
    tta : bool, optional
        Test-time averaging: run the network on the 8 flips and 90-degree rotations of each
        tile and average the 8 results (posterior std: the root of the mean variance).
        8x the network time for about +0.15 dB (measured, docs/benchmarks.md). Default
        (None): on for 2D models when the image has at most ``TTA_AUTO_PIXELS[device]``
        pixels in all (a few seconds to a minute of work), off otherwise and for volumes.
    compile_network : bool
        Run the network through ``torch.compile`` (PyTorch's compiler; on a CPU it needs a
        C++ compiler, else it falls back to the plain network with a warning). The first
        tile waits for the compilation, later ones run faster: about 1.35x on large
        images on a CPU, 5 % on a stack of 512 x 512 slices (docs/benchmarks.md). The
        compiled network runs on a copy of ``model`` (the caller's model is left as it
        is), kept for later calls with the same model. 2D models only.

    Returns
    -------
    ndarray
        float32, same shape and axes as ``image`` (use ``gen.send``/``StopIteration.value``
        or :func:`denoise`).
    """
    run = _prepare(model, image, axes, output, tile, device, out, mixed_precision, noise_params, tta, compile_network)
    yield from _each_tile(run)
    return _assemble(run)


@dataclass
class _Layout:
    """How an image's axes map to the network's samples, and back."""

    shape: tuple
    axes: str
    nd: int
    chans: int
    apart: bool
    subsample: int
    height: int
    width: int


@dataclass
class _Pass:
    """One denoising pass, set up: the tiles still to run and where their results go."""

    tiles: Iterator[DenoiseProgress]
    dev: object
    mixed: bool
    results: dict
    layout: _Layout
    kinds: tuple
    many: bool
    out: np.ndarray | None


def _prepare(model, image, axes, output, tile, device, out, mixed_precision, noise_params, tta, compile_network):
    """Check the request, lay the image out as the network's samples and set up its tiles.

    The arguments are :func:`denoise_iter`'s; returns a :class:`_Pass`.
    """
    cfg = model.config
    kinds, many, image = _checked_request(cfg, image, output, out)
    samples, layout = _network_samples(cfg, image, axes)
    nd, f = layout.nd, layout.subsample
    given = noise_override(model, noise_params)
    dev = resolve_device(device)
    # A subsampling model sees the interleaved sub-images; results are merged back at the end.
    samples = split_phases(samples, f)
    if tta and nd == 3:
        raise SSDNError("tta=True is for 2D models; a volume model averages its six branches already, use tta=None")
    if tta is None:
        tta = nd == 2 and samples[..., 0].size <= TTA_AUTO_PIXELS.get(dev.type, TTA_AUTO_PIXELS["cuda"])
    if compile_network and nd == 3:
        raise SSDNError("compile_network=True is for 2D models (images and stacks); denoise volumes without it")
    model = model.to(dev).eval()
    if compile_network:
        model = compiled(model)
    results = {
        k: (
            np.empty(samples.shape, np.float32)
            if out is None or f > 1 or layout.apart
            else to_samples(out, layout.axes, nd)
        )
        for k in kinds
    }

    # Row by row (slice by slice for volumes), stopping at the first finite value: real data
    # cost one row, and a volume larger than memory is never held whole.
    if not any(np.isfinite(part).any() for sample in samples for part in sample):
        raise SSDNError("the image holds no finite values (all NaN or infinite): nothing to denoise; check the file")

    mixed = dev.type != "cuda" if mixed_precision is None else mixed_precision
    half = not isinstance(network_precision(dev, mixed), contextlib.nullcontext)
    check_tile(model, tile, dev, half)
    writer = TileWriter(samples, results, cfg.offset, cfg.scale)
    tiles = run_tiles(TileJob(model, writer, kinds, tile, dev, half, given, 8 if tta else 1))
    return _Pass(tiles, dev, mixed, results, layout, kinds, many, out)


def _checked_request(cfg, image, output, out):
    """The output kinds asked for, whether there are several, and ``image`` as an array.

    Refuses an unknown kind, a kind the model cannot give, ``out`` with several kinds or
    of another shape, and data that is not real numbers.
    """
    many = not isinstance(output, str)
    kinds = tuple(output) if many else (output,)
    for kind in kinds:
        if kind not in OUTPUTS:
            raise SSDNError(f"{setting('output', kind)} is not one of {', '.join(OUTPUTS)}")
    if cfg.mode != "ssdn" and "posterior-std" in kinds:
        raise SSDNError(f"a {cfg.mode} model has no posterior; use {setting('output', 'prior-mean')}")
    if many and out is not None:
        raise SSDNError("out= takes a single output kind")
    if not isinstance(image, np.ndarray):
        image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise SSDNError(f"image has dtype {image.dtype}; pass real-valued image data")
    if out is not None and tuple(out.shape) != tuple(image.shape):
        raise SSDNError(
            f"out has shape {tuple(out.shape)} but the image has {tuple(image.shape)}; "
            "pass an array of the image's shape"
        )
    return kinds, many, image


def _network_samples(cfg, image: np.ndarray, axes: str | None) -> tuple[np.ndarray, _Layout]:
    """``image`` as the samples ``(S, *spatial, C)`` the network takes, and its :class:`_Layout`."""
    nd = cfg.ndim
    colour = image.shape[-1] in (3, 4) and cfg.accepts_channels(image.shape[-1])
    axes = axes or guess_axes(image.shape, rgb=colour, ndim=nd)
    samples = to_samples(image, axes, nd)
    chans = samples.shape[-1]
    if not cfg.accepts_channels(chans):
        raise SSDNError(
            f"the image has {chans} channel(s) (axes {axes!r}) but the model was trained on "
            f"{cfg.channels}; pick a model trained on this kind of data or fix the axes"
        )
    check_denoise_size(samples.shape[1:-1], cfg.arch.multiples, cfg.subsample, axes)
    apart = cfg.splits_channels(chans)
    if apart:
        samples = channels_to_samples(samples)
    height, width = samples.shape[1:3]
    return samples, _Layout(image.shape, axes, nd, chans, apart, cfg.subsample, height, width)


def _each_tile(run: _Pass) -> Iterator[DenoiseProgress]:
    """Run the pass's tiles, yielding the progress after each."""
    # Held across yields: it is process-wide and counted, not per thread.
    with reuse_freed_memory():
        while True:
            # Autocast is entered and left around each tile, never held across a yield: a run
            # closed from another thread (a widget's cancelled worker) would otherwise leave
            # that thread's autocast nesting off by one, and its cast-weight cache never cleared.
            with network_precision(run.dev, run.mixed):
                try:
                    progress = next(run.tiles)
                except StopIteration:
                    break
            yield progress


def _assemble(run: _Pass):
    """The results in the image's own layout: one array, or a dict of them by kind."""
    layout = run.layout
    final = {}
    for kind, result in run.results.items():
        result = merge_phases(result, layout.subsample, layout.height, layout.width)
        if layout.apart:
            result = samples_to_channels(result, layout.chans)
        if run.out is None:
            final[kind] = from_samples(result, layout.shape, layout.axes, layout.nd)
        else:
            if not np.shares_memory(result, run.out):  # axes order made to_samples copy
                run.out[...] = from_samples(result, layout.shape, layout.axes, layout.nd)
            final[kind] = run.out
    return final if run.many else final[run.kinds[0]]


#: Compiled copies of the models given to :func:`compiled`, alive as long as their model.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(model: SSDNModel) -> SSDNModel:
    """A copy of ``model`` whose inference passes run through ``torch.compile``, kept for
    later calls with the same model and given its current weights each time; ``model``
    itself is not changed."""
    import copy

    twin = _COMPILED.get(model)
    if twin is None:
        twin = copy.deepcopy(model)
        twin.net.unet.compile_for_inference()
        _COMPILED[model] = twin
    else:
        twin.load_state_dict(model.state_dict())  # in place: the compiled graph stays valid
    return twin.to(next(model.parameters()).device).eval()


# How far an image's value range may be from the training data's (in the model's units,
# where the training data spans about 1) before a warning: a model applies to data of the
# same kind and scale, and on data 1000x brighter it returns the input nearly unchanged.
SCALE_TOLERANCE = (1 / 50, 20)


def scale_mismatch(model: SSDNModel, image: np.ndarray, axes: str | None = None) -> str | None:
    """Say whether ``image``'s values lie far from the range the model was trained on.

    Reads a few rows or slices spread over the image (a memory-mapped volume is not read
    whole) and compares their 0.1-99.9th percentiles with the model's normalisation.

    Parameters
    ----------
    model : SSDNModel
    image : ndarray
    axes : str, optional
        As in :func:`denoise_iter`.

    Returns
    -------
    str or None
        A warning naming both ranges and the remedy, or None when the ranges are alike.
    """
    cfg = model.config
    image = image if isinstance(image, np.ndarray) else np.asarray(image)
    axes = axes or guess_axes(
        image.shape, rgb=cfg.channels in (3, 4) and image.shape[-1] == cfg.channels, ndim=cfg.ndim
    )
    samples = to_samples(image, axes, cfg.ndim)
    planes = [(k, i) for k in range(samples.shape[0]) for i in range(samples.shape[1])]
    limit = 16 if cfg.ndim == 3 else 256  # slices of a volume, rows of images
    picks = [planes[j] for j in np.unique(np.linspace(0, len(planes) - 1, min(len(planes), limit)).round().astype(int))]
    values = []
    for k, i in picks:
        part = np.asarray(samples[k, i]).reshape(-1)
        values.append(part[:: max(1, part.size // 4096)].astype(np.float64))
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    if v.size < 16:
        return None
    lo, hi = (float(x) for x in np.percentile(v, [0.1, 99.9]))
    span = (hi - lo) / cfg.scale
    centre = ((lo + hi) / 2 - cfg.offset) / cfg.scale
    if SCALE_TOLERANCE[0] <= span <= SCALE_TOLERANCE[1] and -5 <= centre <= 6:
        return None
    return (
        f"the image's values (0.1-99.9th percentiles {lo:.4g} to {hi:.4g}) are far from those the model was trained on "
        f"(about {cfg.offset:.4g} to {cfg.offset + cfg.scale:.4g}); a model fits data of the same kind and scale, and "
        "here "
        "the result may be the input nearly unchanged: train a model on this data, or scale it like the training data"
    )


def denoise(
    model: SSDNModel, image: np.ndarray, axes: str | None = None, output: str = "posterior-mean", **kwargs
) -> np.ndarray:
    """Denoise ``image`` and return a float32 array of the same shape (see :func:`denoise_iter`).

    Parameters
    ----------
    model : SSDNModel
        A trained model (:func:`~napari_ssdn.core.load_model`, :func:`~napari_ssdn.core.train`).
    image : ndarray
        The noisy data, in the units the model was trained on.
    axes : str, optional
        Its axes (e.g. ``"YX"``, ``"ZYX"``, ``"SYXC"``); guessed from the shape if omitted.
    output : str
        ``posterior-mean`` (the default), ``prior-mean``, ``posterior-std``, ...
    **kwargs
        As for :func:`denoise_iter`: ``tile``, ``device``, ``noise_params``, ``tta``, ...

    Returns
    -------
    ndarray
        float32, the shape of ``image``; NaN where the input is not finite.

    Warns (:class:`SSDNWarning`) when the image's values are far from the training data's
    (see :func:`scale_mismatch`).

    Examples
    --------
    >>> from napari_ssdn.core import load_model, denoise
    >>> model, _ = load_model("model.ssdn")
    >>> clean = denoise(model, noisy, "YX")
    """
    gen = denoise_iter(model, image, axes, output, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            result = stop.value
            break
    message = scale_mismatch(model, image, axes)  # after denoise_iter has checked the arguments
    if message:
        warnings.warn(message, SSDNWarning, stacklevel=2)
    return result
