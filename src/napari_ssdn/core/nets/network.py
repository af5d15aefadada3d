"""Blind-spot and ordinary U-Nets (Laine et al. 2019; docs/design.md, "The method" and "Network").

The blind-spot network sees, for every output pixel, all pixels of its receptive field
except the pixel itself. Each of four branches (the input rotated by 0, 90, 180 and 270
degrees, one shared set of weights) only sees pixels strictly above the output pixel:
every 3x3 convolution is shifted down by one row, every max-pool is preceded by a
one-row shift, upsampling is nearest-neighbour and one final shift makes the half-plane
strict. Rotated back and concatenated, the four half-planes cover every pixel but the
centre; 1x1 layers then mix them.

A larger final shift hides more: shifting the vertical branches by k_y rows and the
horizontal ones by k_x columns leaves the (2 k_y - 1) x (2 k_x - 1) rectangle around the
pixel unseen (the *blind region*, :attr:`ArchConfig.region`), for noise that is
correlated between neighbouring pixels.

Volumes use six branches, one per half-space (before/after the voxel along z, y, x),
with 3x3x3 convolutions and the same shifts along the branch's blind axis
(:class:`BlindSpotNet3D`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import unet as _unet
from .unet import LEAK, UNet, act, chunk_pixels, conv1, low_precision, shift_down

__all__ = ["ArchConfig", "UNet", "BlindSpotNet", "BlindSpotNet3D", "PlainNet", "build_network", "BRANCHES_3D"]


@dataclass(frozen=True)
class ArchConfig:
    """Architecture of the prior network.

    Attributes
    ----------
    channels : int
        Image channels C.
    outputs : int
        Values per pixel predicted by the head (C + C(C+1)/2 for the Gaussian prior,
        C for the mu-only baseline).
    enc : int
        Width of the encoder convolutions (48 in the paper).
    dec : int
        Width of the decoder convolutions (96 in the paper).
    depth : int
        Number of max-pool levels (5 in the paper). Inputs are padded to a multiple of
        ``2**depth`` (along z of a volume: ``2**(depth - flat)``).
    blind : bool
        Blind-spot network (True) or its ordinary, non-blind twin (False).
    ndim : int
        2 for images, 3 for volumes (six half-space branches, 3D convolutions).
    flat : int
        Volumes only: the first ``flat`` pooling levels pool in-plane only, for voxels
        coarser along z than in y and x.
    blind_region : tuple of int
        Final shift k per spatial axis (y, x; or z, y, x), hiding the offsets with
        ``|d| < k`` on every axis; empty means 1 on every axis (the centre pixel alone).
    """

    channels: int = 1
    outputs: int = 2
    enc: int = 48
    dec: int = 96
    depth: int = 5
    blind: bool = True
    ndim: int = 2
    flat: int = 0
    blind_region: tuple = ()

    @property
    def region(self) -> tuple[int, ...]:
        """The final shift per spatial axis (1: the centre pixel alone)."""
        return tuple(int(k) for k in self.blind_region) or (1,) * self.ndim

    @property
    def multiple(self) -> int:
        """Multiple of the in-plane (y, x) input size."""
        return 2**self.depth

    @property
    def multiples(self) -> tuple[int, ...]:
        """Multiple of the input size along each spatial axis (z first for volumes)."""
        return tuple(math.prod(p[a] for p in self.pools()) for a in range(self.ndim))

    def pools(self) -> list[tuple[int, ...]]:
        """Pooling factor per spatial axis at each level, in the data's axis order."""
        if self.ndim == 2:
            return [(2, 2)] * self.depth
        return [(1 if level < self.flat else 2, 2, 2) for level in range(self.depth)]


class BlindSpotNet(nn.Module):
    """Four rotated half-plane U-Net branches with shared weights and a 1x1 head.

    Input must be square with a side that is a multiple of ``2**depth``.
    """

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.unet = UNet(arch.channels, arch.enc, arch.dec, arch.depth, blind=True)
        d = arch.dec
        self.head = nn.ModuleList([conv1(4 * d, 4 * d), conv1(4 * d, d), conv1(d, arch.outputs, last=True)])

    def _shift(self, turn: int) -> int:
        """Final shift of the branch turned by ``turn`` quarter turns: its rows run along y
        for even turns and along x for odd ones."""
        return self.arch.region[turn % 2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"blind-spot network needs square inputs, got {tuple(x.shape[-2:])}")
        if torch.is_grad_enabled():
            # One batched pass: faster for training.
            n = x.shape[0]
            rot = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], dim=0)
            h = self.unet(rot)
            h = torch.cat(
                [torch.rot90(shift_down(h[k * n : (k + 1) * n], self._shift(k)), -k, dims=(2, 3)) for k in range(4)],
                dim=1,
            )
            return _head(self.head, h)
        # Branch by branch: a quarter of the peak memory for inference.
        return self.head_output(self.branch_features(x))

    def branch_features(self, x: torch.Tensor) -> torch.Tensor:
        """The four branches' features ``(N, 4 dec, H, W)``, each turned back to ``x``'s
        orientation: channel block k comes from ``x`` rotated by k quarter turns (no
        gradient: inference only). Each branch is written into its block as it finishes,
        so no concatenation is made and one branch's own maps are alive at a time."""
        d = self.arch.dec
        out = None
        for k in range(4):
            h = self.unet(torch.rot90(x, k, dims=(2, 3)))
            if out is None:
                layout = _unet.inference_layout(h)
                out = torch.empty(
                    (h.shape[0], 4 * d, *h.shape[2:]),
                    dtype=h.dtype,
                    device=h.device,
                    memory_format=layout or torch.contiguous_format,
                )
            _place_turned_back(h, out[:, k * d : (k + 1) * d], k, self._shift(k))
        return out

    def head_output(self, features: torch.Tensor) -> torch.Tensor:
        """The 1x1 head on the four branch features of :meth:`branch_features`."""
        return self.turned_head_outputs(features, (0,))[0]

    def turned_head_outputs(self, features: torch.Tensor, turns=(0, 1, 2, 3)) -> list[torch.Tensor]:
        """Head outputs for cyclic turns of the four branch features (no gradient).

        Item i equals the head on the channel blocks of ``features`` rolled by k = turns[i]
        blocks (block j taken from block (j + k) mod 4): the output of the input turned by
        k quarter turns, already turned back. A turn only permutes the first layer's input
        blocks, so the turns' permuted weights are stacked into one matrix multiplication,
        and the head runs over pixel chunks small enough to stay in cache. On a CPU this is
        4-5x faster than 1x1 convolutions on concatenated full-resolution maps.
        """
        d = self.arch.dec
        first, second, last = self.head
        # Turn k feeds block j of the first layer with features[(k + j) % 4]: in terms of the
        # unturned stack, its input block b meets the weight block (b - k) % 4, a roll by k.
        blocks = first.weight.flatten(1).view(-1, 4, d)
        w1s = torch.cat([blocks.roll(k, 1).flatten(1) for k in turns])
        b1s = first.bias.repeat(len(turns))[:, None]
        n, _, h, w = features.shape
        out = _chunked_head(features.flatten(2), (w1s, b1s), second, last, len(turns))
        return [o.view(n, -1, h, w) for o in out]


def _chunked_head(stacked: torch.Tensor, first: tuple, second: nn.Module, last: nn.Module, turns: int = 1):
    """The 1x1 head's three layers on ``stacked`` ``(N, C, P)`` as matrix products over
    chunks of pixels that stay in cache (no gradient): ``first`` is the first layer's
    weight and bias ``(turns * hidden, C)``, ``(turns * hidden, 1)``, one stacked per turn;
    the other two layers are shared by the turns. Returns ``(turns, N, outputs, P)``."""
    dev = stacked.device
    w1, b1 = first
    w2 = second.weight.flatten(1).expand(turns, -1, -1)
    w3 = last.weight.flatten(1).expand(turns, -1, -1)
    b2, b3 = second.bias[None, :, None], last.bias[None, :, None]
    w1, b1, w2, b2, w3, b3, stacked = low_precision(dev, w1, b1, w2, b2, w3, b3, stacked)
    n, _, pixels = stacked.shape  # stacked is a view of either memory layout
    chunk = chunk_pixels(dev, pixels)
    out = None
    for i in range(n):
        for s in range(0, pixels, chunk):
            z = F.leaky_relu_(torch.addmm(b1, w1, stacked[i, :, s : s + chunk]), LEAK)
            z = F.leaky_relu_(torch.baddbmm(b2, w2, z.view(turns, -1, z.shape[-1])), LEAK)
            z = torch.baddbmm(b3, w3, z)
            if out is None:
                out = z.new_empty(turns, n, z.shape[1], pixels)
            out[:, i, :, s : s + chunk] = z
    return out


def _place_turned_back(h: torch.Tensor, dst: torch.Tensor, k: int, rows: int) -> None:
    """``dst[:] = rot90(shift_down(h, rows), -k)`` with one copy of ``h`` (two where it turns)."""
    kept = h[:, :, : h.shape[2] - rows]
    # Where the shifted rows land once turned back by k quarter turns; the rest is zero.
    side = dst.shape[2] - rows
    region, zero = {
        0: ((slice(rows, None), slice(None)), (slice(None, rows), slice(None))),
        1: ((slice(None), slice(None, side)), (slice(None), slice(side, None))),
        2: ((slice(None, side), slice(None)), (slice(side, None), slice(None))),
        3: ((slice(None), slice(rows, None)), (slice(None), slice(None, rows))),
    }[k % 4]
    dst[(slice(None), slice(None), *region)].copy_(torch.rot90(kept, -k, dims=(2, 3)) if k % 4 else kept)
    dst[(slice(None), slice(None), *zero)].zero_()


def _head(head: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
    for i, conv in enumerate(head):
        h = conv(h)
        if i < len(head) - 1:
            h = act(h)
    return h


class BlindSpotNet3D(nn.Module):
    """Six half-space U-Net branches with shared weights and a 1x1x1 head (volumes).

    Each branch turns the volume so that one of the six half-spaces (before or after the
    voxel along z, y or x) lies "above" along the first spatial axis: axes are swapped
    and, for "after", that axis is reversed. The pooling factors travel with the axes,
    so anisotropic pooling stays in the data's frame. Input sizes must be multiples of
    :attr:`ArchConfig.multiples`; the volume need not be a cube.
    """

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.unet = UNet(arch.channels, arch.enc, arch.dec, arch.depth, blind=True, ndim=3)
        d = arch.dec
        # 3d rather than 6d hidden units: the head's first layer holds a full-resolution
        # map per voxel during inference and dominates the memory of a tile.
        hidden = 3 * d
        self.head = nn.ModuleList(
            [conv1(6 * d, hidden, ndim=3), conv1(hidden, d, ndim=3), conv1(d, arch.outputs, last=True, ndim=3)]
        )

    def _pools(self, axis: int) -> list[tuple[int, ...]]:
        # Pooling factors follow the axes when the branch swaps dim 2 with ``axis``.
        order = {0: axis - 2, axis - 2: 0}
        return [tuple(p[order.get(a, a)] for a in range(3)) for p in self.arch.pools()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mult = self.arch.multiples
        if any(s % m for s, m in zip(x.shape[2:], mult, strict=True)):
            raise ValueError(f"volume sizes {tuple(x.shape[2:])} must be multiples of {mult}")
        if torch.is_grad_enabled():
            # The two branches along one axis share a shape: one batched pass each.
            n = x.shape[0]
            feats = []
            for axis in (2, 3, 4):
                xt = x.transpose(2, axis)
                h = shift_down(
                    self.unet(torch.cat([xt, xt.flip(2)], dim=0), self._pools(axis)), self.arch.region[axis - 2]
                )
                feats += [h[:n].transpose(2, axis), h[n:].flip(2).transpose(2, axis)]
            return _head(self.head, torch.cat(feats, dim=1))
        features = None
        for k in range(len(BRANCHES_3D)):
            features = self.place_branch(x, k, features)
        return self.head_output(features)

    # Inference helpers: one branch runs at a time and writes its features, turned back to
    # the data's frame, into its block of the head's input; the head then runs once.
    def place_branch(self, x: torch.Tensor, k: int, features: torch.Tensor | None = None, crop=None) -> torch.Tensor:
        """Run half-space branch ``k`` (of :data:`BRANCHES_3D`) on ``x`` and write its
        features over the spatial slices ``crop`` of ``x`` (all of it where None) into
        channel block k of ``features`` ``(N, 6 dec, *cropped)``, created where None; return
        ``features`` (no gradient).

        The features are written plane by plane along the branch's blind axis, shifted and
        reversed by indexing, so no shifted, flipped or transposed copy of the branch's
        maps is made.
        """
        axis, after = BRANCHES_3D[k]
        xt = x.transpose(2, axis)
        h = self.unet(xt.flip(2) if after else xt, self._pools(axis))
        crop = tuple(crop or (slice(None),) * 3)
        d = self.arch.dec
        if features is None:
            layout = _unet.inference_layout(h) or torch.contiguous_format
            cropped = [len(range(*c.indices(n))) for c, n in zip(crop, x.shape[2:], strict=True)]
            features = torch.empty((h.shape[0], 6 * d, *cropped), dtype=h.dtype, device=h.device, memory_format=layout)
        # The branch frame swaps data axes 2 and ``axis``: the crop and the block follow.
        order = [0, 1, 2, 3, 4]
        order[2], order[axis] = axis, 2
        cb = [crop[order[j] - 2] for j in (2, 3, 4)]
        src = h[:, :, :, cb[1], cb[2]]
        dst = features[:, k * d : (k + 1) * d].transpose(2, axis)
        depth, shift, first = h.shape[2], self.arch.region[axis - 2], cb[0].indices(h.shape[2])[0]
        for q in range(dst.shape[2]):
            # Data plane q holds the branch's plane p, shifted by ``shift`` (zeros before).
            p = (depth - 1 - (first + q) if after else first + q) - shift
            if p < 0:
                dst[:, :, q].zero_()
            else:
                dst[:, :, q].copy_(src[:, :, p])
        return features

    def head_output(self, features: torch.Tensor) -> torch.Tensor:
        """The 1x1x1 head on the six branches' features of :meth:`place_branch`, as matrix
        products over voxel chunks that stay in cache (no gradient)."""
        first, second, last = self.head
        n, _, *spatial = features.shape
        out = _chunked_head(features.flatten(2), (first.weight.flatten(1), first.bias[:, None]), second, last)
        return out[0].view(n, -1, *spatial)


#: (tensor dimension, after) of the six half-space branches, in head order.
BRANCHES_3D = tuple((axis, after) for axis in (2, 3, 4) for after in (False, True))


class PlainNet(nn.Module):
    """The non-blind twin: same U-Net without shifts or rotations, head dec -> dec -> K."""

    def __init__(self, arch: ArchConfig, zero_last: bool = False):
        super().__init__()
        self.arch = arch
        self.unet = UNet(arch.channels, arch.enc, arch.dec, arch.depth, blind=False, ndim=arch.ndim)
        d = arch.dec
        self.head = nn.ModuleList([conv1(d, d, ndim=arch.ndim), conv1(d, arch.outputs, last=True, ndim=arch.ndim)])
        if zero_last:
            # The noise-level estimator does not converge otherwise (docs/design.md, "Noise parameters").
            nn.init.zeros_(self.head[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.unet(x, self.arch.pools())
        h = act(self.head[0](h))
        return self.head[1](h)


def build_network(arch: ArchConfig) -> nn.Module:
    """Create the blind-spot or plain network described by ``arch``."""
    if not arch.blind:
        return PlainNet(arch)
    return BlindSpotNet(arch) if arch.ndim == 2 else BlindSpotNet3D(arch)
