"""Blind-spot and ordinary U-Nets (Laine et al. 2019, section 2 of docs/method.md).

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
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ArchConfig", "UNet", "BlindSpotNet", "BlindSpotNet3D", "PlainNet", "build_network", "BRANCHES_3D"]

LEAK = 0.1


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


def _shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Move the feature map along the first spatial axis (dim 2) by ``rows``: zeros enter
    at index 0, the last ``rows`` drop."""
    nd = x.dim() - 2
    return F.pad(x, (0, 0) * (nd - 1) + (rows, 0))[:, :, : x.shape[2]]


def _conv_cls(ndim: int):
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class _PaddedConv:
    """3x3(x3) convolution; in blind mode output index i along dim 2 only depends on input
    indices <= i."""

    def _setup(self, blind: bool, ndim: int) -> None:
        # Blind: one zero row on top plus 'same' padding, last row dropped, is the same as
        # padding two rows on top and none at the bottom.
        self._pad = (1, 1) * (ndim - 1) + ((2, 0) if blind else (1, 1))
        nn.init.kaiming_normal_(self.weight, a=LEAK, nonlinearity="leaky_relu")
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self._pad))


class _Conv3x3(_PaddedConv, nn.Conv2d):
    pass


class _Conv3x3x3(_PaddedConv, nn.Conv3d):
    pass


def _conv3(cin: int, cout: int, blind: bool, ndim: int = 2) -> nn.Module:
    conv = (_Conv3x3 if ndim == 2 else _Conv3x3x3)(cin, cout, 3, padding=0)
    conv._setup(blind, ndim)
    return conv


def _conv1(cin: int, cout: int, last: bool = False, ndim: int = 2) -> nn.Module:
    conv = _conv_cls(ndim)(cin, cout, 1)
    if last:
        nn.init.kaiming_normal_(conv.weight, nonlinearity="linear")
    else:
        nn.init.kaiming_normal_(conv.weight, a=LEAK, nonlinearity="leaky_relu")
    nn.init.zeros_(conv.bias)
    return conv


def _act(t: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(t, LEAK)


def _chunk(device: torch.device, pixels: int) -> int:
    """Pixels per chunk of a 1x1 head run as matrix products: on a CPU chunks that stay in
    its caches (4-5x faster than 1x1 convolutions); a GPU wants few large launches, but
    chunks of 2^18 pixels keep the four turns' hidden maps to about 1 GB (light) where a
    whole 4096^2 tile would need 68 GB."""
    return min(pixels, 4096 if device.type == "cpu" else 1 << 18)


def _low(device: torch.device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` in the autocast precision where autocast is on: cast once, not once per
    chunk inside autocast."""
    if not torch.is_autocast_enabled(device.type):
        return tensors
    low = torch.get_autocast_dtype(device.type)
    return tuple(t.to(low) for t in tensors)


class UNet(nn.Module):
    """The U-Net backbone of the paper, optionally with half-space receptive field.

    Parameters
    ----------
    cin : int
        Input channels.
    enc, dec, depth : int
        Encoder width, decoder width and number of pooling levels.
    blind : bool
        Shift every convolution and pool so that output index i along the first spatial
        axis sees input indices <= i only. The final strict shift is applied by the caller.
    ndim : int
        Spatial dimensions, 2 or 3.
    """

    def __init__(self, cin: int, enc: int, dec: int, depth: int, blind: bool, ndim: int = 2):
        super().__init__()
        self.blind = blind
        self.depth = depth
        self.ndim = ndim
        self.enc_in = nn.ModuleList([_conv3(cin, enc, blind, ndim), _conv3(enc, enc, blind, ndim)])
        # One convolution per lower level, the last one being the bottleneck.
        self.enc = nn.ModuleList([_conv3(enc, enc, blind, ndim) for _ in range(depth)])
        self.dec = nn.ModuleList()
        for level in range(depth, 0, -1):
            skip = cin if level == 1 else enc
            up = enc if level == depth else dec
            self.dec.append(nn.ModuleList([_conv3(up + skip, dec, blind, ndim), _conv3(dec, dec, blind, ndim)]))
        self.out_channels = dec

    def _pool(self, x: torch.Tensor, factor: tuple[int, ...]) -> torch.Tensor:
        if self.blind and factor[0] > 1:
            # Merging rows 2i and 2i+1 would let row 2i see row 2i+1: shift first.
            x = _shift_down(x)
        return (F.max_pool2d if self.ndim == 2 else F.max_pool3d)(x, factor)

    def compile_for_inference(self) -> None:
        """Run later inference passes (no gradient) through ``torch.compile``.

        The compiled function is kept outside the module's parameters and submodules, so
        model files and training are unchanged; training keeps the eager passes (compiled
        training steps measured slower on a CPU). Where compilation fails (no C++
        compiler, an unsupported platform) the passes fall back to eager with a warning.
        """
        if "_compiled" not in self.__dict__:
            self.__dict__["_compiled"] = torch.compile(self._forward)

    @property
    def compiled(self) -> bool:
        return "_compiled" in self.__dict__

    def forward(self, x: torch.Tensor, pools: list[tuple[int, ...]] | None = None) -> torch.Tensor:
        """Features ``(N, dec, *spatial)``; ``pools`` gives the pooling factor per axis and
        level (default: 2 along every axis)."""
        fast = self.__dict__.get("_compiled")
        if fast is not None and not torch.is_grad_enabled():
            try:
                return fast(x, pools)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: eager gives the same result
                warnings.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); running without it", stacklevel=2)
                del self.__dict__["_compiled"]
        return self._forward(x, pools)

    def _forward(self, x: torch.Tensor, pools: list[tuple[int, ...]] | None = None) -> torch.Tensor:
        pools = pools or [(2,) * self.ndim] * self.depth
        skips = [x]
        h = x
        for conv in self.enc_in:
            h = _act(conv(h))
        h = self._pool(h, pools[0])
        for i, conv in enumerate(self.enc):
            if i < self.depth - 1:
                skips.append(h)
            h = _act(conv(h))
            if i < self.depth - 1:
                h = self._pool(h, pools[i + 1])
        for level, convs in zip(range(self.depth - 1, -1, -1), self.dec):
            h = F.interpolate(h, scale_factor=pools[level], mode="nearest")
            h = torch.cat([h, skips.pop()], dim=1)
            for conv in convs:
                h = _act(conv(h))
        return h


class BlindSpotNet(nn.Module):
    """Four rotated half-plane U-Net branches with shared weights and a 1x1 head.

    Input must be square with a side that is a multiple of ``2**depth``.
    """

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.unet = UNet(arch.channels, arch.enc, arch.dec, arch.depth, blind=True)
        d = arch.dec
        self.head = nn.ModuleList([_conv1(4 * d, 4 * d), _conv1(4 * d, d), _conv1(d, arch.outputs, last=True)])

    def _shift(self, turn: int) -> int:
        """Final shift of the branch turned by ``turn`` quarter turns: its rows run along y
        for even turns and along x for odd ones."""
        return self.arch.region[turn % 2]

    def _branch(self, x: torch.Tensor, k: int) -> torch.Tensor:
        h = _shift_down(self.unet(torch.rot90(x, k, dims=(2, 3))), self._shift(k))
        return torch.rot90(h, -k, dims=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"blind-spot network needs square inputs, got {tuple(x.shape[-2:])}")
        if torch.is_grad_enabled():
            # One batched pass: faster for training.
            n = x.shape[0]
            rot = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], dim=0)
            h = self.unet(rot)
            h = torch.cat([torch.rot90(_shift_down(h[k * n : (k + 1) * n], self._shift(k)), -k, dims=(2, 3)) for k in range(4)], dim=1)
            return _head(self.head, h)
        # Branch by branch: a quarter of the peak memory for inference.
        return self.head_output(self.branch_features(x))

    def branch_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four branches' features, each turned back to ``x``'s orientation: item k
        comes from ``x`` rotated by k quarter turns (no gradient: inference only)."""
        return [self._branch(x, k) for k in range(4)]

    def head_output(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The 1x1 head on four branch features, in the order given."""
        return self.turned_head_outputs(features, (0,))[0]

    def turned_head_outputs(self, features: list[torch.Tensor], turns=(0, 1, 2, 3)) -> list[torch.Tensor]:
        """Head outputs for cyclic turns of the four branch features (no gradient).

        Item i equals ``head_output(features[k:] + features[:k])`` with ``k = turns[i]``:
        the output of the input turned by k quarter turns, already turned back. A turn
        only permutes the first layer's input blocks, so the turns' permuted weights are
        stacked into one matrix multiplication, and the head runs over pixel chunks small
        enough to stay in cache. On a CPU this is 4-5x faster than 1x1 convolutions on
        concatenated full-resolution maps, and no concatenated map is ever allocated.
        """
        d = self.arch.dec
        first, second, last = self.head
        # Turn k feeds block j of the first layer with features[(k + j) % 4]: in terms of the
        # unturned stack, its input block b meets the weight block (b - k) % 4, a roll by k.
        blocks = first.weight.flatten(1).view(-1, 4, d)
        w1s = torch.cat([blocks.roll(k, 1).flatten(1) for k in turns])
        b1s = first.bias.repeat(len(turns))[:, None]
        t = len(turns)
        w2 = second.weight.flatten(1).expand(t, -1, -1)
        b2 = second.bias[None, :, None]
        w3 = last.weight.flatten(1).expand(t, -1, -1)
        b3 = last.bias[None, :, None]
        n, _, h, w = features[0].shape
        dev = features[0].device
        chunk = _chunk(dev, h * w)
        stacked = torch.cat(features, dim=1).flatten(2)  # (N, 4d, HW)
        w1s, b1s, w2, b2, w3, b3, stacked = _low(dev, w1s, b1s, w2, b2, w3, b3, stacked)
        out = None
        for i in range(n):
            for s in range(0, h * w, chunk):
                z = torch.addmm(b1s, w1s, stacked[i, :, s : s + chunk])
                F.leaky_relu_(z, LEAK)
                z = torch.baddbmm(b2, w2, z.view(t, 4 * d, -1))
                F.leaky_relu_(z, LEAK)
                z = torch.baddbmm(b3, w3, z)
                if out is None:
                    out = z.new_empty(t, n, z.shape[1], h * w)
                out[:, i, :, s : s + chunk] = z
        return [o.view(n, -1, h, w) for o in out]


def _head(head: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
    for i, conv in enumerate(head):
        h = conv(h)
        if i < len(head) - 1:
            h = _act(h)
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
        self.head = nn.ModuleList([_conv1(6 * d, hidden, ndim=3), _conv1(hidden, d, ndim=3), _conv1(d, arch.outputs, last=True, ndim=3)])

    def branch(self, x: torch.Tensor, axis: int, after: bool) -> torch.Tensor:
        """Features ``(N, dec, *spatial)`` of one half-space branch, in the data's frame.

        ``axis`` is the tensor dimension (2, 3 or 4) along which the branch is blind;
        ``after`` selects the half-space of larger indices.
        """
        xt = x.transpose(2, axis)
        if after:
            xt = xt.flip(2)
        h = _shift_down(self.unet(xt, self._pools(axis)), self.arch.region[axis - 2])
        if after:
            h = h.flip(2)
        return h.transpose(2, axis)

    def _pools(self, axis: int) -> list[tuple[int, ...]]:
        # Pooling factors follow the axes when the branch swaps dim 2 with ``axis``.
        order = {0: axis - 2, axis - 2: 0}
        return [tuple(p[order.get(a, a)] for a in range(3)) for p in self.arch.pools()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mult = self.arch.multiples
        if any(s % m for s, m in zip(x.shape[2:], mult)):
            raise ValueError(f"volume sizes {tuple(x.shape[2:])} must be multiples of {mult}")
        if torch.is_grad_enabled():
            # The two branches along one axis share a shape: one batched pass each.
            n = x.shape[0]
            feats = []
            for axis in (2, 3, 4):
                xt = x.transpose(2, axis)
                h = _shift_down(self.unet(torch.cat([xt, xt.flip(2)], dim=0), self._pools(axis)), self.arch.region[axis - 2])
                feats += [h[:n].transpose(2, axis), h[n:].flip(2).transpose(2, axis)]
            return _head(self.head, torch.cat(feats, dim=1))
        acc = None
        for k, (axis, after) in enumerate(BRANCHES_3D):
            acc = self.head_part(self.branch(x, axis, after), k, acc)
        return self.head_rest(acc)

    # Inference helpers: the first head layer is linear in the concatenated features, so it
    # is accumulated branch by branch and only one branch's features are alive at a time.
    # The head runs as matrix products over voxel chunks (see BlindSpotNet.turned_head_outputs).
    def head_part(self, features: torch.Tensor, k: int, acc: torch.Tensor | None = None) -> torch.Tensor:
        """Add branch ``k``'s contribution to the first head layer (no bias) to ``acc``
        (created, zero, where None) and return it. The sum is kept in at least float32,
        whatever precision the products run in (no gradient)."""
        d = self.arch.dec
        n, _, *spatial = features.shape
        if acc is None:
            dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
            acc = torch.zeros(n, self.head[0].out_channels, *spatial, dtype=dtype, device=features.device)
        w, f = _low(features.device, self.head[0].weight.flatten(1)[:, k * d : (k + 1) * d], features.reshape(n, d, -1))
        out = acc.view(n, acc.shape[1], -1)
        step = _chunk(features.device, f.shape[-1])
        for i in range(n):
            for s in range(0, f.shape[-1], step):
                out[i, :, s : s + step] += w @ f[i, :, s : s + step]
        return acc

    def head_rest(self, acc: torch.Tensor) -> torch.Tensor:
        """Head output from the summed contributions of :meth:`head_part`."""
        first, second, last = self.head
        n, c, *spatial = acc.shape
        flat = acc.view(n, c, -1)
        b1 = first.bias[:, None].to(acc.dtype)
        w2, b2, w3, b3 = _low(acc.device, second.weight.flatten(1), second.bias[:, None], last.weight.flatten(1), last.bias[:, None])
        step = _chunk(acc.device, flat.shape[-1])
        out = None
        for i in range(n):
            for s in range(0, flat.shape[-1], step):
                (z,) = _low(acc.device, _act(flat[i, :, s : s + step] + b1))
                z = F.leaky_relu_(torch.addmm(b2, w2, z), LEAK)
                z = torch.addmm(b3, w3, z)
                if out is None:
                    out = z.new_empty(n, z.shape[0], flat.shape[-1])
                out[i, :, s : s + step] = z
        return out.view(n, -1, *spatial)


#: (tensor dimension, after) of the six half-space branches, in head order.
BRANCHES_3D = tuple((axis, after) for axis in (2, 3, 4) for after in (False, True))


class PlainNet(nn.Module):
    """The non-blind twin: same U-Net without shifts or rotations, head dec -> dec -> K."""

    def __init__(self, arch: ArchConfig, zero_last: bool = False):
        super().__init__()
        self.arch = arch
        self.unet = UNet(arch.channels, arch.enc, arch.dec, arch.depth, blind=False, ndim=arch.ndim)
        d = arch.dec
        self.head = nn.ModuleList([_conv1(d, d, ndim=arch.ndim), _conv1(d, arch.outputs, last=True, ndim=arch.ndim)])
        if zero_last:
            # The noise-level estimator does not converge otherwise (method.md, pitfall 8).
            nn.init.zeros_(self.head[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.unet(x, self.arch.pools())
        h = _act(self.head[0](h))
        return self.head[1](h)


def build_network(arch: ArchConfig) -> nn.Module:
    """Create the blind-spot or plain network described by ``arch``."""
    if not arch.blind:
        return PlainNet(arch)
    return BlindSpotNet(arch) if arch.ndim == 2 else BlindSpotNet3D(arch)
