"""Sizes a network takes: the smallest image (one rule for training and denoising) and
the largest tile a device can hold (torch is imported only to ask a GPU its memory).

Each level of the U-Net halves the image along the axes it pools, so an image must span at
least the network's multiple along each spatial axis (``ArchConfig.multiples``; a model
trained on sub-images of ``subsample`` needs that many times more along y and x). Smaller
images are all padding: training fails obscurely on them and denoising returns a made-up
value, so both refuse them with one line.
"""

from __future__ import annotations

import math
import os

from .errors import SSDNError, setting

__all__ = [
    "MIN_TILE",
    "first_too_small",
    "spatial_sides",
    "check_denoise_size",
    "pixel_bytes",
    "block_peak",
    "tile_bytes",
    "device_memory",
    "check_tile",
]

#: Smallest kept tile side: smaller tiles are mostly margin, each costing a whole window.
MIN_TILE = 16


def first_too_small(sides, mults, subsample: int = 1) -> tuple[int, int, int] | None:
    """The first spatial axis too small for the network, or None when all fit.

    Parameters
    ----------
    sides : sequence of int
        The smallest size of the data along each spatial axis (z first for volumes).
    mults : sequence of int
        The network's multiple along each spatial axis (``ArchConfig.multiples``).
    subsample : int
        Sub-image factor: divides the two image axes (the last two).

    Returns
    -------
    tuple of int or None
        ``(axis, side, multiple)``: the axis index, its side per sub-image and what the
        network needs there.
    """
    for a, mult in enumerate(mults):
        split = subsample if a >= len(mults) - 2 else 1
        side = int(sides[a]) // split
        if side < mult:
            return a, side, int(mult)
    return None


def spatial_sides(shape, axes: str, ndim: int) -> tuple[int, ...]:
    """Sizes of data of ``shape`` and ``axes`` along its spatial axes (Z, Y, X for volumes)."""
    return tuple(int(shape[axes.upper().index(a)]) for a in ("ZYX" if ndim == 3 else "YX"))


def check_denoise_size(sides, mults, subsample: int = 1, axes: str = "") -> None:
    """Refuse an image or volume smaller than the network takes, naming both sizes.

    ``sides``, ``mults`` and ``subsample`` as for :func:`first_too_small`; ``axes`` is
    named in the message (axes that put a short axis in Y or X shrink the image plane).
    """
    if first_too_small(sides, mults, subsample) is None:
        return
    need = [m * (subsample if a >= len(mults) - 2 else 1) for a, m in enumerate(mults)]
    volume = len(mults) == 3
    what, unit = ("volume", "voxels") if volume else ("image", "pixels")
    given = f" (axes {axes})" if axes else ""
    remedy = "denoise a larger volume, or its slices with a 2D model" if volume else "denoise a larger image"
    raise SSDNError(
        f"the {what} is {' x '.join(map(str, sides))} {unit}{given} but this model's network needs at least "
        f"{' x '.join(map(str, need))}; {remedy}, or check the axes"
    )


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def pixel_bytes(cfg) -> int:
    """Bytes of activations per pixel of a 2D window (``cfg``: a ModelConfig)."""
    # Floats alive per pixel at the peak of one branch (decoder input, output, skip) plus
    # the four kept branch outputs, in float32.
    return 4 * (3 * cfg.dec + cfg.enc + 4 * cfg.dec + 2 * cfg.dec)


def block_peak(arch, canvas, inner, half: bool = False) -> float:
    """Estimated peak bytes of a volume block of kept size ``inner`` in a padded volume ``canvas``."""
    from .nets.receptive import branch_margins

    d = arch.dec
    # float32 values alive per voxel: one branch's full-resolution decoder (input copy,
    # concatenation, padded copy, outputs) in its window; the head's accumulators in the
    # block. Since the head runs over voxel chunks the block term overstates its need, but
    # larger blocks measured a higher peak than the estimate (2,274 MiB for a 200 x 512^2
    # volume with 84^3 blocks against 1,364 MiB with these 64^3 ones; the aim is under 2 GB).
    branch_bytes = (2 if half else 4) * (6 * d + 2 * arch.enc + 4 * arch.channels)
    block_bytes = 4 * (9 * d + 4 * arch.outputs) + 8 * 6 * arch.outputs
    win = max(
        math.prod(min(n, i + b + a) for n, i, (b, a) in zip(canvas, inner, mb, strict=True))
        for mb in branch_margins(arch)
    )
    return win * branch_bytes + math.prod(inner) * block_bytes


def tile_bytes(model, tile: int, half: bool = False) -> float:
    """Bytes of activations one tile (volumes: one block) of kept side ``tile`` needs."""
    from .nets.receptive import receptive_margin

    arch = model.config.arch
    if model.config.ndim == 3:
        inner = [_round_up(max(int(tile), MIN_TILE), m) for m in arch.multiples]
        return block_peak(arch, [2**62] * 3, inner, half)  # margins unclipped: no volume bounds them
    side = _round_up(max(int(tile), MIN_TILE), model.multiple) + 2 * receptive_margin(arch)
    return float(side * side * pixel_bytes(model.config))


def device_memory(device) -> float | None:
    """The device's memory in bytes: the GPU's, else the machine's (None where unknown)."""
    if device.type == "cuda":
        import torch

        return float(torch.cuda.mem_get_info(device)[1])
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): not checked
        return None


def available_memory() -> float | None:
    """Bytes the machine can give a new allocation now (Linux's MemAvailable: free memory
    and the page cache it may drop), else its free pages; None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_tile(model, tile: int | None, device, half: bool = False) -> None:
    """Refuse a tile whose single window needs more memory than the device has at all,
    naming the largest tile that fits (a typo such as 100000 would otherwise run out of
    memory on a large image, or pass unnoticed on a small one).

    Parameters
    ----------
    model : SSDNModel
    tile : int or None
        The kept tile side asked for (None: chosen from the memory; nothing to check).
    device : torch.device
    half : bool
        The network runs in 16-bit floats (volume blocks take half the memory).
    """
    total = device_memory(device)
    if tile is None or total is None or tile_bytes(model, tile, half) <= total:
        return
    lo, hi = MIN_TILE, int(tile)  # the largest tile that fits, by bisection
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if tile_bytes(model, mid, half) <= total else (lo, mid)
    where = "GPU" if device.type == "cuda" else "machine"
    raise SSDNError(
        f"{setting('tile', tile)} needs about {tile_bytes(model, tile, half) / 1e9:,.0f} GB for one tile, more "
        f"than this {where}'s {total / 1e9:,.0f} GB; use a tile of at most {lo} or leave it unset "
        "(as large as memory allows)"
    )
