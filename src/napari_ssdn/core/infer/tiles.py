"""Tiles and blocks: an image or volume cut into windows that overlap by the network's
receptive field, so that the result equals a whole-image pass in bounded memory."""

from __future__ import annotations

import math
import mmap
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SSDNError, setting
from ..nets.model import SSDNModel
from ..nets.network import BRANCHES_3D, BlindSpotNet3D
from ..nets.receptive import branch_margins, receptive_margin
from ..sizes import MIN_TILE, available_memory, block_peak, pixel_bytes
from .outputs import averaged_outputs, outputs, sample_noise_params, to_tensor

__all__ = [
    "DenoiseProgress",
    "TileWriter",
    "TileJob",
    "default_tile",
    "run_tiles",
    "release_pages",
    "volume_plan",
    "volume_block",
]


@dataclass(frozen=True)
class DenoiseProgress:
    """Progress of a denoising run: tiles done out of total, seconds elapsed and left."""

    done: int
    total: int
    elapsed: float
    eta: float
    tile: int


class TileWriter:
    """Normalises what a tile reads and writes what it computes, in data units, into the
    results; pixels missing from the input (NaN or infinite) stay NaN, so no value is made
    up where none was measured.

    Parameters
    ----------
    samples : ndarray
        ``(S, *spatial, C)`` input in data units (may be a memory map).
    results : dict
        Output kind to a float32 array of the samples' shape (may be memory maps).
    offset, scale : float
        The model's normalisation.
    """

    def __init__(self, samples: np.ndarray, results: dict, offset: float, scale: float):
        self.samples, self.results = samples, results
        self.offset, self.scale = float(offset), float(scale)

    def norm(self, a: np.ndarray) -> np.ndarray:
        """Data -> network units; missing values enter as the offset (zero)."""
        o = self.offset
        return ((np.nan_to_num(a.astype(np.float32), nan=o, posinf=o, neginf=o) - o) / self.scale).astype(np.float32)

    def store(self, k: int, region: tuple, res: dict) -> None:
        """Write one tile's outputs (network units) for sample ``k`` at ``region``."""
        y = self.samples[(k,) + region]
        missing = ~np.isfinite(y)
        for kind, r in res.items():
            v = r * np.float32(self.scale)
            if kind != "posterior-std":
                v += np.float32(self.offset)
            if kind == "residual":
                v = y.astype(np.float32) - v
            v[missing] = np.nan
            self.results[kind][(k,) + region] = v
        # Memory-mapped input and output: what was read or written so far leaves the
        # resident set, so memory does not grow with the file.
        release_pages(self.samples, *self.results.values())


@dataclass
class TileJob:
    """One denoising pass: the model, the writer, what to compute and how."""

    model: SSDNModel
    writer: TileWriter
    kinds: tuple
    tile: int | None
    dev: torch.device
    half: bool = False
    given: dict | None = None
    views: int = 1


def run_tiles(job: TileJob):
    """Denoise every sample of ``job``, yielding :class:`DenoiseProgress` per tile."""
    if job.model.config.ndim == 3:
        yield from _tiles_3d(job)
    else:
        yield from _tiles_2d(job)


def default_tile(model: SSDNModel, device: torch.device) -> int:
    """Largest tile side (input, with margins) whose activations fit the memory budget
    (:func:`memory_budget`; images)."""
    side = int(math.sqrt(memory_budget(device, 1.5e9) / pixel_bytes(model.config)))
    return max(model.multiple, (side // model.multiple) * model.multiple)


#: A CPU run's activations take at most this share of the memory available when it starts ...
CPU_SHARE = 1 / 8
#: ... and at most this much: larger tiles and blocks gain little more.
CPU_CAP = 4e9


def memory_budget(device: torch.device, cpu_floor: float) -> float:
    """Bytes of activations a tile or block may take: a quarter of a GPU's free memory; on
    a CPU an eighth of the memory available now, at least ``cpu_floor`` and at most 4 GB.

    Larger windows spend less of their time on margins: on a 24 GB machine a 48 x 256 x 256
    volume took 20.5 s in 9 blocks sized for 0.9 GB and 16.2 s in the 4 of this rule
    (docs/benchmarks.md, "Speed and memory on a CPU").
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 4
    available = available_memory()
    return cpu_floor if available is None else max(cpu_floor, min(available * CPU_SHARE, CPU_CAP))


def round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _even_inner(h: int, w: int, largest: int, margin: int, mult: int) -> int:
    """Kept tile side up to ``largest`` that covers h x w with the fewest window pixels.

    Every window costs its full side (kept part plus margins), so a ragged last row of
    tiles costs as much as a full one: splitting evenly made a 2048^2 image 1.9x faster on a 2-core CPU.
    """

    def cost(inner):
        return -(-h // inner) * -(-w // inner) * (inner + 2 * margin) ** 2

    return min(range(largest, mult - 1, -mult), key=cost)


def _tiles_2d(job: TileJob):
    """Square windows inside a square padded canvas (the four rotations need squares)."""
    model, samples, dev, norm = job.model, job.writer.samples, job.dev, job.writer.norm
    n, h, w, c = samples.shape
    mult = model.multiple
    margin = receptive_margin(model.config.arch)
    side = round_up(max(h, w), mult)
    max_side = (
        default_tile(model, dev) if job.tile is None else round_up(max(int(job.tile), MIN_TILE), mult) + 2 * margin
    )
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
                noise = sample_noise_params(model, samples[k], norm, dev, job.given)
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
                    y = to_tensor(buf, dev)
                    with torch.no_grad():
                        res = averaged_outputs(model, y, noise, job.kinds, job.views)
                    oy1, ox1 = min(h, y0 + inner), min(w, x0 + inner)
                    job.writer.store(
                        k,
                        (slice(y0, oy1), slice(x0, ox1)),
                        {kd: r[y0 - ay : oy1 - ay, x0 - ax : ox1 - ax] for kd, r in res.items()},
                    )
                    done += 1
                    el = time.perf_counter() - t0
                    yield DenoiseProgress(done, total, el, el / done * (total - done), inner)
            return
        except torch.cuda.OutOfMemoryError:
            # Halve the tile and start again rather than fail.
            torch.cuda.empty_cache()
            new = ((min(max_side, side) // 2) // mult) * mult
            if new - 2 * margin < mult:
                raise SSDNError(
                    f"the GPU ran out of memory even with the smallest tile; use {setting('device', 'cpu')}"
                ) from None
            max_side, done = new, 0


def _volume_plan(
    model: SSDNModel, canvas: list[int], tile: int | None, dev: torch.device, half: bool = False
) -> list[int]:
    """Kept block size per axis: the largest cube-like block whose branch windows fit.

    ``half``: the convolutions run in 16-bit floats, so their activations take half the memory.
    """
    mults = model.config.arch.multiples

    def inner_for(side):
        return [min(n, round_up(side, m)) for n, m in zip(canvas, mults, strict=True)]

    def peak(inner):
        return block_peak(model.config.arch, canvas, inner, half)

    if tile is not None:
        # Each block recomputes its margins: below this side the margins dominate (tile 3
        # meant 5,760 blocks and 200x the time for a 40 x 96^2 volume).
        return inner_for(max(int(tile), MIN_TILE))
    budget = memory_budget(dev, 0.9e9)
    step = max(mults)
    for side in range(round_up(max(canvas), step), 0, -step):
        inner = inner_for(side)
        if peak(inner) <= budget:
            return inner
    return inner_for(step)


def volume_plan(
    model: SSDNModel, spatial, tile: int | None, dev: torch.device, half: bool = False
) -> tuple[list[int], list[tuple]]:
    """Blocks of a volume of ``spatial`` size (Z, Y, X): the kept block size per axis and
    the start of every block, in the order :func:`run_tiles` denoises them."""
    canvas = [round_up(s, m) for s, m in zip(spatial, model.config.arch.multiples, strict=True)]
    inner = _volume_plan(model, canvas, tile, dev, half)
    return inner, block_starts(spatial, inner)


def block_starts(spatial, inner) -> list[tuple]:
    """The start of every block of kept size ``inner`` in a volume of ``spatial`` size."""
    starts = [range(0, s, i) for s, i in zip(spatial, inner, strict=True)]
    return [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]


def _tiles_3d(job: TileJob):
    """Blocks of a volume (see :func:`volume_block`), smaller ones after a GPU ran out of memory."""
    samples, dev = job.writer.samples, job.dev
    n = samples.shape[0]
    inner, blocks = volume_plan(job.model, samples.shape[1:-1], job.tile, dev, job.half)
    margins = branch_margins(job.model.config.arch)
    t0 = time.perf_counter()
    while True:
        total = n * len(blocks)
        done = 0
        try:
            for k in range(n):
                noise = sample_noise_params(job.model, samples[k], job.writer.norm, dev, job.given)
                for start in blocks:
                    volume_block(job, k, start, inner, noise, margins)
                    done += 1
                    el = time.perf_counter() - t0
                    yield DenoiseProgress(done, total, el, el / done * (total - done), max(inner))
            return
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            mults = job.model.config.arch.multiples
            smaller = [max(m, round_up(i // 2, m)) for i, m in zip(inner, mults, strict=True)]
            if smaller == inner:
                raise SSDNError(
                    f"the GPU ran out of memory even with the smallest block; use {setting('device', 'cpu')}"
                ) from None
            inner = smaller
            blocks = [
                (z, y, x)
                for z in range(0, samples.shape[1], inner[0])
                for y in range(0, samples.shape[2], inner[1])
                for x in range(0, samples.shape[3], inner[2])
            ]


def volume_block(job: TileJob, k: int, start, inner, noise: dict, margins=None) -> None:
    """Denoise the block of sample ``k`` starting at ``start`` (kept size ``inner`` per
    axis) and store it through ``job.writer``; ``noise`` from :func:`sample_noise_params`
    of the whole sample, ``margins`` from :func:`branch_margins` (computed if omitted).

    Each of the six branches reads its own window around the block: a branch blind along
    one axis needs context on one side of that axis only, so its window is much smaller
    than the block plus the full receptive field on every side; the 1x1x1 head then runs
    once on the six branches' features in the block. The result depends only on
    the block, so blocks can be computed in any order, by any process.
    """
    model, samples, dev, norm = job.model, job.writer.samples, job.dev, job.writer.norm
    net = model.net
    arch = model.config.arch
    spatial = samples.shape[1:-1]
    canvas = [round_up(s, m) for s, m in zip(spatial, arch.multiples, strict=True)]
    margins = branch_margins(arch) if margins is None else margins
    core = [(s0, min(cv, s0 + i)) for s0, cv, i in zip(start, canvas, inner, strict=True)]
    y = None  # the noisy block, cut from the first window read
    with torch.no_grad():
        if isinstance(net, BlindSpotNet3D):
            features = None
            for b in range(len(BRANCHES_3D)):
                x, crop = _window(samples[k], core, margins[b], canvas, norm, dev)
                crop = (slice(None), slice(None)) + crop
                if y is None:
                    y = x[crop].clone()
                features = net.place_branch(x, b, features, crop[2:])
                del x
            raw = net.head_output(features)
            del features
        else:
            x, crop = _window(samples[k], core, margins[0], canvas, norm, dev)
            crop = (slice(None), slice(None)) + crop
            y = x[crop].clone()
            raw = net(x)[crop]
        res = outputs(model, y, raw, noise, job.kinds)
    keep = tuple(slice(0, min(s, b1) - b0) for s, (b0, b1) in zip(spatial, core, strict=True))
    region = tuple(slice(b0, min(s, b1)) for s, (b0, b1) in zip(spatial, core, strict=True))
    job.writer.store(k, region, {kd: r[keep] for kd, r in res.items()})


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
    lo = [max(0, b0 - mb) for (b0, _), (mb, _) in zip(core, margin, strict=True)]
    hi = [min(cv, b1 + ma) for (_, b1), (_, ma), cv in zip(core, margin, canvas, strict=True)]
    buf = np.zeros([h - w0 for w0, h in zip(lo, hi, strict=True)] + [sample.shape[-1]], np.float32)
    data_hi = [min(h, s) for h, s in zip(hi, sample.shape[:-1], strict=True)]
    if all(d > w0 for d, w0 in zip(data_hi, lo, strict=True)):
        buf[tuple(slice(0, d - w0) for w0, d in zip(lo, data_hi, strict=True))] = norm(
            sample[tuple(slice(w0, d) for w0, d in zip(lo, data_hi, strict=True))]
        )
    x = to_tensor(buf, dev)
    return x, tuple(slice(b0 - w0, b1 - w0) for (b0, b1), w0 in zip(core, lo, strict=True))
