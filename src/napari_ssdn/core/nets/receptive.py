"""The receptive field of the networks, exactly, per axis: how far tiles must overlap so
that tiled inference equals a whole-image pass."""

from __future__ import annotations

import math

import numpy as np

from .network import BRANCHES_3D, ArchConfig

__all__ = ["receptive_margin", "receptive_margins", "branch_margins"]


def _reach_1d(pools: list[int], blind: bool, n: int = 4096, shift: int = 1) -> tuple[int, int]:
    """Exact reach (before, after) along one axis of one U-Net branch, in input pixels.

    Tracks, for every index of a long line, the first and last input index it depends
    on, through the same sequence of layers as :meth:`UNet.forward` (convolutions,
    shifts, pools, nearest upsampling, skip concatenations), then the final ``shift``.
    """
    idx = np.arange(n)

    def take(a, i):
        return a[np.clip(i, 0, a.size - 1)]

    def conv(lo, hi):
        i = np.arange(lo.size)
        return (take(lo, i - 2), take(hi, i)) if blind else (take(lo, i - 1), take(hi, i + 1))

    def pool(lo, hi, f):
        if f == 1:
            return lo, hi
        if blind:
            lo, hi = take(lo, np.arange(lo.size) - 1), take(hi, np.arange(hi.size) - 1)
        j = np.arange(lo.size // 2)
        return lo[2 * j], hi[2 * j + 1]

    def up(lo, hi, f):
        if f == 1:
            return lo, hi
        i = np.arange(lo.size * 2)
        return lo[i // 2], hi[i // 2]

    depth = len(pools)
    skips = [(idx.copy(), idx.copy())]
    h = (idx.copy(), idx.copy())
    h = conv(*conv(*h))
    h = pool(*h, pools[0])
    for i in range(depth):
        if i < depth - 1:
            skips.append(h)
        h = conv(*h)
        if i < depth - 1:
            h = pool(*h, pools[i + 1])
    for level in range(depth - 1, -1, -1):
        h = up(*h, pools[level])
        s = skips.pop()
        h = (np.minimum(h[0], s[0]), np.maximum(h[1], s[1]))
        h = conv(*conv(*h))
    lo, hi = h
    if blind:
        lo, hi = take(lo, idx - shift), take(hi, idx - shift)
    centre = idx[n // 4 : 3 * n // 4]  # away from the ends, where indices are clipped
    return int((centre - lo[centre]).max()), int((hi[centre] - centre).max())


def receptive_margins(arch: ArchConfig) -> tuple[int, ...]:
    """Receptive-field radius per spatial axis, rounded up to that axis's multiple.

    Tiles overlapping by these margins give exactly the output of a whole-image pass.
    Every axis is the shifted ("blind") axis of some branches and an ordinary axis of
    the others; the margin covers both.
    """
    out = []
    for a, mult in enumerate(arch.multiples):
        pools = [p[a] for p in arch.pools()]
        reach = max(_reach_1d(pools, blind=False))
        if arch.blind:
            reach = max(reach, *(max(_reach_1d(pools, blind=True, shift=k)) for k in arch.region))
        out.append(int(math.ceil(reach / mult) * mult))
    if arch.ndim == 2:
        return (max(out),) * 2  # rotations mix the two axes
    return tuple(out)


def branch_margins(arch: ArchConfig) -> list[tuple[tuple[int, int], ...]]:
    """Context (before, after) per spatial axis that each branch of a 3D network needs.

    One entry per branch of :data:`BRANCHES_3D` for a blind network, a single entry for
    a plain one; each margin is rounded up to its axis's multiple so that windows keep
    the pooling grid of the whole volume.
    """
    mults = arch.multiples
    pools = [[p[a] for p in arch.pools()] for a in range(arch.ndim)]
    up = lambda r, m: int(math.ceil(max(r, 0) / m) * m)  # noqa: E731
    plain = [tuple(up(r, m) for r in _reach_1d(pools[a], blind=False)) for a, m in enumerate(mults)]
    if not arch.blind:
        return [tuple(plain)]
    out = []
    for axis, after in BRANCHES_3D:
        a = axis - 2
        before_reach, _ = _reach_1d(pools[a], blind=True, shift=arch.region[a])
        blind = (0, up(before_reach, mults[a])) if after else (up(before_reach, mults[a]), 0)
        out.append(tuple(blind if b == a else plain[b] for b in range(arch.ndim)))
    return out


def receptive_margin(arch: ArchConfig) -> int:
    """Largest of :func:`receptive_margins` (one figure for square 2D tiles)."""
    return max(receptive_margins(arch))
