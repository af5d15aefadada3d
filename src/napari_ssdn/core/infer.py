"""Tiled inference: posterior mean, prior mean, posterior standard deviation, residual."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .bayes import posterior, split_prior
from .constants import OUTPUTS
from .data import from_samples, guess_axes, to_samples
from .device import resolve_device
from .errors import SSDNError
from .model import SSDNModel
from .network import receptive_margin

__all__ = ["OUTPUTS", "DenoiseProgress", "denoise", "denoise_iter", "default_tile"]



@dataclass(frozen=True)
class DenoiseProgress:
    """Progress of a denoising run: tiles done out of total, seconds elapsed and left."""

    done: int
    total: int
    elapsed: float
    eta: float
    tile: int


def default_tile(model: SSDNModel, device: torch.device) -> int:
    """Largest tile side (input, with margins) that keeps activations near 1.5 GB on a
    CPU and a quarter of free memory on a GPU."""
    cfg = model.config
    # Floats alive per pixel at the peak of one branch (decoder input, output, skip) plus
    # the four kept branch outputs, in float32.
    per_pixel = 4 * (3 * cfg.dec + cfg.enc + 4 * cfg.dec + 2 * cfg.dec)
    budget = 1.5e9
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free / 4
    side = int(math.sqrt(budget / per_pixel))
    return max(model.multiple, (side // model.multiple) * model.multiple)


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
):
    """Denoise ``image`` tile by tile, yielding :class:`DenoiseProgress`; returns the result.

    Parameters
    ----------
    model : SSDNModel
        A trained model (see :func:`~napari_ssdn.core.load_model`).
    image : ndarray
        Noisy data in the units the model was trained on.
    axes : str, optional
        Axes of ``image`` (e.g. ``"YX"``, ``"ZYX"``, ``"YXC"``); guessed when omitted.
    output : str or sequence of str
        ``posterior-mean`` (default), ``prior-mean`` (the blind-spot prediction alone, "no
        Bayes"), ``posterior-std`` or ``residual`` (noisy minus posterior mean). Several
        kinds give a dict of arrays computed from one network pass.
    tile : int, optional
        Side of the part of each tile that is kept; tiles overlap by the network's receptive
        field so the result equals a whole-image pass. Default: as large as memory allows.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``mps``.
    out : ndarray, optional
        Preallocated float32 output of the image's shape (e.g. a memory map).

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
    if cfg.mode != "ssdn" and "posterior-std" in kinds:
        raise SSDNError(f"a {cfg.mode} model has no posterior; use output='prior-mean'")
    if many and out is not None:
        raise SSDNError("out= takes a single output kind")
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise SSDNError(f"image has dtype {image.dtype}; pass real-valued image data")
    axes = axes or guess_axes(image.shape, rgb=cfg.channels in (3, 4) and image.shape[-1] == cfg.channels)
    samples = to_samples(image, axes)
    if samples.shape[-1] != cfg.channels:
        raise SSDNError(
            f"the image has {samples.shape[-1]} channel(s) (axes {axes!r}) but the model was trained on "
            f"{cfg.channels}; pick a model trained on this kind of data or fix the axes"
        )
    dev = resolve_device(device)
    model = model.to(dev).eval()
    n, h, w, c = samples.shape
    mult = model.multiple
    margin = receptive_margin(cfg.arch)
    side = _round_up(max(h, w), mult)
    max_side = default_tile(model, dev) if tile is None else _round_up(int(tile), mult) + 2 * margin
    results = {k: (np.empty((n, h, w, c), np.float32) if out is None else to_samples(out, axes)) for k in kinds}
    t0 = time.perf_counter()

    def norm(a):
        return ((np.nan_to_num(a.astype(np.float32), nan=cfg.offset) - cfg.offset) / cfg.scale).astype(np.float32)

    done = 0
    while True:
        if side <= max_side:
            plan = [(0, 0, side, side)]  # the whole image in one padded square
            inner, m = side, 0
        else:
            inner = max(mult, ((max_side - 2 * margin) // mult) * mult)
            m = margin
            plan = [(y0, x0, inner, inner) for y0 in range(0, h, inner) for x0 in range(0, w, inner)]
        total = n * len(plan)
        try:
            for k in range(n):
                noise = _sample_noise_params(model, norm(samples[k]), dev)
                for y0, x0, th, tw in plan:
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
                    res = _run_tile(model, buf, noise, kinds, dev)
                    oy1, ox1 = min(h, y0 + th), min(w, x0 + tw)
                    for kind in kinds:
                        results[kind][k, y0:oy1, x0:ox1] = res[kind][y0 - ay : oy1 - ay, x0 - ax : ox1 - ax]
                    done += 1
                    el = time.perf_counter() - t0
                    yield DenoiseProgress(done, total, el, el / done * (total - done), inner)
            break
        except torch.cuda.OutOfMemoryError:
            # Halve the tile and start again rather than fail.
            torch.cuda.empty_cache()
            new = ((min(max_side, side) // 2) // mult) * mult
            if new - 2 * margin < mult:
                raise SSDNError("the GPU ran out of memory even with the smallest tile; use --device cpu") from None
            max_side, done = new, 0
    final = {}
    for kind, result in results.items():
        result *= cfg.scale
        if kind != "posterior-std":
            result += cfg.offset
        if kind == "residual":
            np.subtract(samples, result, out=result, casting="unsafe")
        if out is None:
            final[kind] = from_samples(result, image.shape, axes)
        else:
            if not np.shares_memory(result, out):  # axes order made to_samples copy
                out[...] = from_samples(result, image.shape, axes)
            final[kind] = out
    return final if many else final[kinds[0]]


def _sample_noise_params(model: SSDNModel, sample: np.ndarray, dev: torch.device) -> dict:
    """Noise parameters for one image; per-image models read a central crop of it."""
    if model.estimator is None:
        with torch.no_grad():
            return model.noise_params(None)
    h, w = sample.shape[:2]
    s = min(256, (min(h, w) // 8) * 8)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = torch.from_numpy(np.ascontiguousarray(np.moveaxis(sample[y0 : y0 + s, x0 : x0 + s], -1, 0))[None]).to(dev)
    with torch.no_grad():
        return model.noise_params(crop)


@torch.no_grad()
def _run_tile(model: SSDNModel, buf: np.ndarray, noise: dict, kinds: tuple, dev: torch.device) -> dict:
    """All requested outputs for one tile from a single network pass (normalised units)."""
    cfg = model.config
    y = torch.from_numpy(np.ascontiguousarray(np.moveaxis(buf, -1, 0))[None]).to(dev)
    out = model(y)
    if cfg.mode != "ssdn":
        mu = out[0].float().permute(1, 2, 0).cpu().numpy()
        return {k: mu for k in kinds}
    mu, sx = split_prior(out, cfg.channels)
    res = {}
    if any(k != "prior-mean" for k in kinds):
        mean, var = posterior(cfg.noise, y.permute(0, 2, 3, 1), mu, sx, noise)
        # A non-finite posterior (degenerate prior) falls back to the prior mean.
        mean = torch.where(torch.isfinite(mean), mean, mu)
        std = torch.where(torch.isfinite(var), torch.sqrt(var), torch.zeros_like(var))
    for k in kinds:
        t = mu if k == "prior-mean" else std if k == "posterior-std" else mean
        res[k] = t[0].float().cpu().numpy()
    return res


def denoise(model: SSDNModel, image: np.ndarray, axes: str | None = None, output: str = "posterior-mean", **kwargs) -> np.ndarray:
    """Denoise ``image`` and return a float32 array of the same shape (see :func:`denoise_iter`).

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
            return stop.value
