"""Tiled inference: posterior mean, prior mean, posterior standard deviation, residual."""

from __future__ import annotations

import contextlib
import math
import mmap
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .bayes import posterior, split_prior
from .constants import OUTPUTS, check_noise_params
from .data import from_samples, guess_axes, merge_phases, split_phases, to_samples
from .device import network_precision, resolve_device
from .errors import SSDNError, SSDNWarning
from .model import SSDNModel, params_to_norm
from .network import BRANCHES_3D, BlindSpotNet, BlindSpotNet3D, branch_margins, receptive_margin

__all__ = ["OUTPUTS", "DenoiseProgress", "denoise", "denoise_iter", "default_tile", "scale_mismatch"]



@dataclass(frozen=True)
class DenoiseProgress:
    """Progress of a denoising run: tiles done out of total, seconds elapsed and left."""

    done: int
    total: int
    elapsed: float
    eta: float
    tile: int


# Auto test-time averaging up to this many pixels (all samples together), per device type:
# about a minute of 8 passes of the tiny network on a 2-core CPU.
TTA_AUTO_PIXELS = {"cpu": 2**20, "mps": 2**22, "cuda": 2**24}


def default_tile(model: SSDNModel, device: torch.device) -> int:
    """Largest tile side (input, with margins) that keeps activations near 1.5 GB on a
    CPU and a quarter of free memory on a GPU (images)."""
    cfg = model.config
    # Floats alive per pixel at the peak of one branch (decoder input, output, skip) plus
    # the four kept branch outputs, in float32.
    per_pixel = 4 * (3 * cfg.dec + cfg.enc + 4 * cfg.dec + 2 * cfg.dec)
    side = int(math.sqrt(_budget(device, 1.5e9) / per_pixel))
    return max(model.multiple, (side // model.multiple) * model.multiple)


def _budget(device: torch.device, cpu_bytes: float) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 4
    return cpu_bytes


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


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
        tile being processed is read.
    axes : str, optional
        Axes of ``image`` (e.g. ``"YX"``, ``"ZYX"``, ``"YXC"``); guessed when omitted.
        A volume model (trained with ``ndim=3``) needs a Z axis.
    output : str or sequence of str
        ``posterior-mean`` (default), ``prior-mean`` (the blind-spot prediction alone, "no
        Bayes"), ``posterior-std`` or ``residual`` (noisy minus posterior mean). Several
        kinds give a dict of arrays computed from one network pass.
    tile : int, optional
        Largest side of the part of each tile that is kept (tiles are made equal, so it may
        be smaller; for volumes at least 16, as smaller blocks are mostly margin); tiles
        overlap by the network's receptive field so the result equals a whole-image pass.
        Default: as large as memory allows.
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
        images on a CPU, 5 % on a stack of 512 x 512 slices (docs/benchmarks.md). The model keeps the compiled network for later
        calls. 2D models only.

    Returns
    -------
    ndarray
        float32, same shape and axes as ``image`` (use ``gen.send``/``StopIteration.value``
        or :func:`denoise`).
    """
    many = not isinstance(output, str)
    kinds = tuple(output) if many else (output,)
    for kind in kinds:
        if kind not in OUTPUTS:
            raise SSDNError(f"output={kind!r} is not one of {', '.join(OUTPUTS)}")
    cfg = model.config
    nd = cfg.ndim
    if cfg.mode != "ssdn" and "posterior-std" in kinds:
        raise SSDNError(f"a {cfg.mode} model has no posterior; use output='prior-mean'")
    if many and out is not None:
        raise SSDNError("out= takes a single output kind")
    if not isinstance(image, np.ndarray):
        image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise SSDNError(f"image has dtype {image.dtype}; pass real-valued image data")
    if out is not None and tuple(out.shape) != tuple(image.shape):
        raise SSDNError(f"out has shape {tuple(out.shape)} but the image has {tuple(image.shape)}; pass an array of the image's shape")
    axes = axes or guess_axes(image.shape, rgb=cfg.channels in (3, 4) and image.shape[-1] == cfg.channels, ndim=nd)
    samples = to_samples(image, axes, nd)
    if samples.shape[-1] != cfg.channels:
        raise SSDNError(
            f"the image has {samples.shape[-1]} channel(s) (axes {axes!r}) but the model was trained on "
            f"{cfg.channels}; pick a model trained on this kind of data or fix the axes"
        )
    given = noise_override(model, noise_params)
    dev = resolve_device(device)
    # A subsampling model sees the interleaved sub-images; results are merged back at the end.
    f = cfg.subsample
    height, width = samples.shape[1:3]
    samples = split_phases(samples, f)
    if tta and nd == 3:
        raise SSDNError("tta=True is for 2D models; a volume model averages its six branches already, use tta=None")
    if tta is None:
        tta = nd == 2 and samples[..., 0].size <= TTA_AUTO_PIXELS.get(dev.type, TTA_AUTO_PIXELS["cuda"])
    if compile_network and nd == 3:
        raise SSDNError("compile_network=True is for 2D models (images and stacks); denoise volumes without it")
    model = model.to(dev).eval()
    if compile_network:
        model.net.unet.compile_for_inference()
    results = {k: (np.empty(samples.shape, np.float32) if out is None or f > 1 else to_samples(out, axes, nd)) for k in kinds}

    def norm(a):
        return ((np.nan_to_num(a.astype(np.float32), nan=cfg.offset, posinf=cfg.offset, neginf=cfg.offset) - cfg.offset) / cfg.scale).astype(np.float32)

    # Row by row (slice by slice for volumes), stopping at the first finite value: real data
    # cost one row, and a volume larger than memory is never held whole.
    if not any(np.isfinite(part).any() for sample in samples for part in sample):
        raise SSDNError("the image holds no finite values (all NaN or infinite): nothing to denoise; check the file")

    def store(k, region, res):
        """Write one tile's outputs, in data units, into the results; pixels missing from
        the input (NaN or infinite) stay NaN, so no value is made up where none was measured."""
        y = samples[(k,) + region]
        missing = ~np.isfinite(y)
        for kind in kinds:
            v = res[kind] * np.float32(cfg.scale)
            if kind != "posterior-std":
                v += np.float32(cfg.offset)
            if kind == "residual":
                v = y.astype(np.float32) - v
            v[missing] = np.nan
            results[kind][(k,) + region] = v
        # Memory-mapped input and output: what was read or written so far leaves the
        # resident set, so memory does not grow with the file.
        release_pages(samples, *results.values())

    precision = network_precision(dev, dev.type != "cuda" if mixed_precision is None else mixed_precision)
    with precision:
        half = not isinstance(precision, contextlib.nullcontext)
        if nd == 3:
            yield from _tiles_3d(model, samples, norm, store, kinds, tile, dev, half, given)
        else:
            yield from _tiles_2d(model, samples, norm, store, kinds, tile, dev, half, given, 8 if tta else 1)
    final = {}
    for kind, result in results.items():
        result = merge_phases(result, f, height, width)
        if out is None:
            final[kind] = from_samples(result, image.shape, axes, nd)
        else:
            if not np.shares_memory(result, out):  # axes order made to_samples copy
                out[...] = from_samples(result, image.shape, axes, nd)
            final[kind] = out
    return final if many else final[kinds[0]]



def _even_inner(h: int, w: int, largest: int, margin: int, mult: int) -> int:
    """Kept tile side up to ``largest`` that covers h x w with the fewest window pixels.

    Every window costs its full side (kept part plus margins), so a ragged last row of
    tiles costs as much as a full one: splitting evenly made a 2048^2 image 1.9x faster on a 2-core CPU.
    """
    def cost(inner):
        return -(-h // inner) * -(-w // inner) * (inner + 2 * margin) ** 2

    return min(range(largest, mult - 1, -mult), key=cost)


def _tiles_2d(model, samples, norm, store, kinds, tile, dev, half=False, given=None, views=1):
    """Square windows inside a square padded canvas (the four rotations need squares)."""
    n, h, w, c = samples.shape
    mult = model.multiple
    margin = receptive_margin(model.config.arch)
    side = _round_up(max(h, w), mult)
    max_side = default_tile(model, dev) if tile is None else _round_up(int(tile), mult) + 2 * margin
    t0 = time.perf_counter()
    done = 0
    while True:
        if side <= max_side:
            plan = [(0, 0)]  # the whole image in one padded square
            inner, m = side, 0
        else:
            inner = _even_inner(h, w, max(mult, ((max_side - 2 * margin) // mult) * mult), margin, mult)
            m = margin
            plan = [(y0, x0) for y0 in range(0, h, inner) for x0 in range(0, w, inner)]
        total = n * len(plan)
        try:
            for k in range(n):
                noise = _sample_noise_params(model, samples[k], norm, dev, given)
                for y0, x0 in plan:
                    # The window stays inside the padded square canvas, so the network's
                    # zero padding falls where it falls in a whole-image pass and the
                    # result is identical; the kept part has >= margin of context.
                    L = inner + 2 * m
                    ay = min(max(y0 - m, 0), side - L)
                    ax = min(max(x0 - m, 0), side - L)
                    buf = np.zeros((L, L, c), np.float32)
                    sy1, sx1 = min(h, ay + L), min(w, ax + L)
                    if sy1 > ay and sx1 > ax:
                        buf[: sy1 - ay, : sx1 - ax] = norm(samples[k, ay:sy1, ax:sx1])
                    y = _tensor(buf, dev)
                    with torch.no_grad():
                        res = _averaged_outputs(model, y, noise, kinds, views)
                    oy1, ox1 = min(h, y0 + inner), min(w, x0 + inner)
                    store(k, (slice(y0, oy1), slice(x0, ox1)), {kd: r[y0 - ay : oy1 - ay, x0 - ax : ox1 - ax] for kd, r in res.items()})
                    done += 1
                    el = time.perf_counter() - t0
                    yield DenoiseProgress(done, total, el, el / done * (total - done), inner)
            return
        except torch.cuda.OutOfMemoryError:
            # Halve the tile and start again rather than fail.
            torch.cuda.empty_cache()
            new = ((min(max_side, side) // 2) // mult) * mult
            if new - 2 * margin < mult:
                raise SSDNError("the GPU ran out of memory even with the smallest tile; use --device cpu") from None
            max_side, done = new, 0


MIN_VOLUME_TILE = 16


def _volume_plan(model: SSDNModel, canvas: list[int], tile: int | None, dev: torch.device, half: bool = False) -> list[int]:
    """Kept block size per axis: the largest cube-like block whose branch windows fit.

    ``half``: the convolutions run in 16-bit floats, so their activations take half the memory.
    """
    arch = model.config.arch
    mults = arch.multiples
    margins = branch_margins(arch)
    d = arch.dec
    # float32 values alive per voxel: one branch's full-resolution decoder (input copy,
    # concatenation, padded copy, outputs) in its window; the head's accumulators in the
    # block. Since the head runs over voxel chunks the block term overstates its need, but
    # larger blocks measured a higher peak than the estimate (2,274 MiB for a 200 x 512^2
    # volume with 84^3 blocks against 1,364 MiB with these 64^3 ones; issue 5 asks < 2 GB).
    branch_bytes = (2 if half else 4) * (6 * d + 2 * arch.enc + 4 * arch.channels)
    block_bytes = 4 * (9 * d + 4 * arch.outputs) + 8 * 6 * arch.outputs

    def inner_for(side):
        return [min(n, _round_up(side, m)) for n, m in zip(canvas, mults)]

    def peak(inner):
        win = max(math.prod(min(n, i + b + a) for n, i, (b, a) in zip(canvas, inner, mb)) for mb in margins)
        return win * branch_bytes + math.prod(inner) * block_bytes

    if tile is not None:
        # Each block recomputes its margins: below this side the margins dominate (tile 3
        # meant 5,760 blocks and 200x the time for a 40 x 96^2 volume).
        return inner_for(max(int(tile), MIN_VOLUME_TILE))
    budget = _budget(dev, 0.9e9)
    step = max(mults)
    for side in range(_round_up(max(canvas), step), 0, -step):
        inner = inner_for(side)
        if peak(inner) <= budget:
            return inner
    return inner_for(step)


def _tiles_3d(model, samples, norm, store, kinds, tile, dev, half=False, given=None):
    """Blocks of a volume; each of the six branches reads its own window around the block.

    A branch blind along one axis needs context on one side of that axis only, so its
    window is much smaller than the block plus the full receptive field on every side;
    the head's first layer is linear and is accumulated over the branches in the block.
    """
    net = model.net
    arch = model.config.arch
    n = samples.shape[0]
    spatial = samples.shape[1:-1]
    mults = arch.multiples
    canvas = [_round_up(s, m) for s, m in zip(spatial, mults)]
    margins = branch_margins(arch)
    blind = isinstance(net, BlindSpotNet3D)
    inner = _volume_plan(model, canvas, tile, dev, half)
    t0 = time.perf_counter()
    while True:
        starts = [range(0, s, i) for s, i in zip(spatial, inner)]
        blocks = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
        total = n * len(blocks)
        done = 0
        try:
            for k in range(n):
                noise = _sample_noise_params(model, samples[k], norm, dev, given)
                for start in blocks:
                    core = [(s0, min(cv, s0 + i)) for s0, cv, i in zip(start, canvas, inner)]
                    y = None  # the noisy block, cut from the first window read
                    with torch.no_grad():
                        if blind:
                            acc = None
                            for b, (axis, after) in enumerate(BRANCHES_3D):
                                x, crop = _window(samples[k], core, margins[b], canvas, norm, dev)
                                crop = (slice(None), slice(None)) + crop
                                if y is None:
                                    y = x[crop].clone()
                                acc = net.head_part(net.branch(x, axis, after)[crop], b, acc)
                                del x
                            raw = net.head_rest(acc)
                            del acc
                        else:
                            x, crop = _window(samples[k], core, margins[0], canvas, norm, dev)
                            crop = (slice(None), slice(None)) + crop
                            y = x[crop].clone()
                            raw = net(x)[crop]
                        res = _outputs(model, y, raw, noise, kinds)
                    keep = tuple(slice(0, min(s, b1) - b0) for s, (b0, b1) in zip(spatial, core))
                    region = tuple(slice(b0, min(s, b1)) for s, (b0, b1) in zip(spatial, core))
                    store(k, region, {kd: r[keep] for kd, r in res.items()})
                    done += 1
                    el = time.perf_counter() - t0
                    yield DenoiseProgress(done, total, el, el / done * (total - done), max(inner))
            return
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            smaller = [max(m, _round_up(i // 2, m)) for i, m in zip(inner, mults)]
            if smaller == inner:
                raise SSDNError("the GPU ran out of memory even with the smallest block; use --device cpu") from None
            inner = smaller


def release_pages(*arrays) -> None:
    """Drop the pages of memory-mapped arrays from this process's resident memory.

    The data stay in the operating system's page cache (written pages of a shared file
    mapping are not lost) and are mapped again on the next access; without this, every
    page of a large input or output file read or written so far would count as resident.
    Arrays that are not memory maps, and copy-on-write maps, are left alone.
    """
    for a in arrays:
        base = a
        while base is not None and not (isinstance(base, np.memmap) and getattr(base, "_mmap", None) is not None):
            base = getattr(base, "base", None)
        if base is None or getattr(base, "mode", "c") not in ("r", "r+", "w+"):
            continue
        try:
            base._mmap.madvise(mmap.MADV_DONTNEED)
        except (AttributeError, OSError, ValueError):
            pass  # not available on this platform: only the resident figure grows


def _window(sample, core, margin, canvas, norm, dev):
    """Normalised window ``(1, C, D, H, W)`` around ``core`` with ``margin`` (before, after)
    per axis, clipped to the padded canvas and zero beyond the data, and the slices of
    ``core`` inside it."""
    lo = [max(0, b0 - mb) for (b0, _), (mb, _) in zip(core, margin)]
    hi = [min(cv, b1 + ma) for (_, b1), (_, ma), cv in zip(core, margin, canvas)]
    buf = np.zeros([h - l for l, h in zip(lo, hi)] + [sample.shape[-1]], np.float32)
    data_hi = [min(h, s) for h, s in zip(hi, sample.shape[:-1])]
    if all(d > l for d, l in zip(data_hi, lo)):
        buf[tuple(slice(0, d - l) for l, d in zip(lo, data_hi))] = norm(sample[tuple(slice(l, d) for l, d in zip(lo, data_hi))])
    x = _tensor(buf, dev)
    return x, tuple(slice(b0 - l, b1 - l) for (b0, b1), l in zip(core, lo))


def noise_override(model: SSDNModel, noise_params: dict | None) -> dict:
    """Noise parameters given for inference (data units), checked against ``model`` and
    converted to its normalised units; raises :class:`SSDNError` naming a bad one."""
    cfg = model.config
    if not noise_params:
        return {}
    if cfg.mode != "ssdn":
        raise SSDNError(f"a {cfg.mode} model has no noise model; give it no noise parameters")
    clean = check_noise_params(cfg.noise, noise_params)
    return params_to_norm(cfg.noise, clean, cfg.offset, cfg.scale)


def _sample_noise_params(model: SSDNModel, sample: np.ndarray, norm, dev: torch.device, given: dict | None = None) -> dict:
    """Noise parameters for one image or volume; per-image models start from its classical
    estimate and their estimator reads a central crop of it; ``given`` (normalised units)
    replaces what it names."""
    given = given or {}
    if model.estimator is None or all(n in given for n in model.learned):
        with torch.no_grad():
            return {**model.noise_params(None), **given}
    mults = model.estimator.arch.multiples
    size = [max(m, (min(256 if len(mults) == 2 else 64, n) // m) * m) for n, m in zip(sample.shape[:-1], mults)]
    region = tuple(slice(max(0, (n - s) // 2), max(0, (n - s) // 2) + s) for n, s in zip(sample.shape[:-1], size))
    crop = np.zeros(size + [sample.shape[-1]], np.float32)
    part = norm(sample[region])
    crop[tuple(slice(0, e) for e in part.shape[:-1])] = part
    anchor = model.image_anchor(norm(sample)[None])  # the whole image, not only the crop
    with torch.no_grad():
        return {**model.noise_params(_tensor(crop, dev), anchor), **given}


def _tensor(a: np.ndarray, dev: torch.device) -> torch.Tensor:
    """Channels-last array -> ``(1, C, *spatial)`` tensor on ``dev``."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 0))[None]).to(dev)


def _view(t: torch.Tensor, v: int, inverse: bool = False) -> torch.Tensor:
    """View ``v`` of the 8 symmetries of a square (4 rotations, each mirrored or not) of
    ``(N, C, H, W)``, or its inverse."""
    k, flip = v % 4, v >= 4
    if inverse:
        t = torch.rot90(t, -k, (-2, -1))
        return t.flip(-1) if flip else t
    t = t.flip(-1) if flip else t
    return torch.rot90(t, k, (-2, -1))


def _averaged_outputs(model: SSDNModel, y: torch.Tensor, noise: dict, kinds: tuple, views: int) -> dict:
    """Outputs of a square tile averaged over ``views`` symmetries of it (1: a single pass).

    Each view's network output is mapped back before the posterior, so every view combines
    the same noisy pixel with its own prior; means are averaged, standard deviations as the
    root of the mean variance.
    """
    if views == 1:
        return _outputs(model, y, model(y), noise, kinds)
    acc = {}
    for out in _view_outputs(model, y, views):
        res = _outputs(model, y, out, noise, kinds)
        for k, r in res.items():
            r = r * r if k == "posterior-std" else r
            acc[k] = r if k not in acc else acc[k] + r
    return {k: np.sqrt(a / views) if k == "posterior-std" else a / views for k, a in acc.items()}


def _view_outputs(model: SSDNModel, y: torch.Tensor, views: int):
    """Network outputs of the first ``views`` symmetries of a square tile, each mapped back.

    For the blind-spot network, the view turned by k quarter turns feeds its shared U-Net the
    same four turned copies as the plain view, only in cyclic order (the 1x1 head commutes
    with rotations). So the four turns of each mirror reuse one set of branch features
    and differ only in the head: 8 U-Net passes instead of 32, with the same result.
    """
    net = model.net
    if not isinstance(net, BlindSpotNet) or views % 4:
        for v in range(views):
            yield _view(model(_view(y, v)), v, inverse=True)
        return
    for mirrored in range(views // 4):
        feats = net.branch_features(y.flip(-1) if mirrored else y)
        if mirrored:
            feats = [f.flip(-1) for f in feats]
        yield from net.turned_head_outputs(feats)


def _outputs(model: SSDNModel, y: torch.Tensor, out: torch.Tensor, noise: dict, kinds: tuple) -> dict:
    """Requested outputs (normalised units, channels last) from the network output of a tile."""
    cfg = model.config
    if cfg.mode != "ssdn":
        mu = out[0].float().movedim(0, -1).cpu().numpy()
        return {k: mu for k in kinds}
    mu, sx = split_prior(out, cfg.channels)
    res = {}
    if any(k != "prior-mean" for k in kinds):
        mean, var = posterior(cfg.noise, y.movedim(1, -1), mu, sx, noise)
        # A non-finite posterior (degenerate prior) falls back to the prior mean.
        mean = torch.where(torch.isfinite(mean), mean, mu)
        std = torch.where(torch.isfinite(var), torch.sqrt(var), torch.zeros_like(var))
    for k in kinds:
        t = mu if k == "prior-mean" else std if k == "posterior-std" else mean
        res[k] = t[0].float().cpu().numpy()
    return res


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
    axes = axes or guess_axes(image.shape, rgb=cfg.channels in (3, 4) and image.shape[-1] == cfg.channels, ndim=cfg.ndim)
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
        f"(about {cfg.offset:.4g} to {cfg.offset + cfg.scale:.4g}); a model fits data of the same kind and scale, and here "
        "the result may be the input nearly unchanged: train a model on this data, or scale it like the training data"
    )


def denoise(model: SSDNModel, image: np.ndarray, axes: str | None = None, output: str = "posterior-mean", **kwargs) -> np.ndarray:
    """Denoise ``image`` and return a float32 array of the same shape (see :func:`denoise_iter`).

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
