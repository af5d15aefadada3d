"""Blind-spot and ordinary U-Nets (Laine et al. 2019, section 2 of docs/method.md).

The blind-spot network sees, for every output pixel, all pixels of its receptive field
except the pixel itself. Each of four branches (the input rotated by 0, 90, 180 and 270
degrees, one shared set of weights) only sees pixels strictly above the output pixel:
every 3x3 convolution is shifted down by one row, every max-pool is preceded by a
one-row shift, upsampling is nearest-neighbour and one final shift makes the half-plane
strict. Rotated back and concatenated, the four half-planes cover every pixel but the
centre; 1x1 layers then mix them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ArchConfig", "UNet", "BlindSpotNet", "PlainNet", "build_network", "receptive_margin"]

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
        ``2**depth``.
    blind : bool
        Blind-spot network (True) or its ordinary, non-blind twin (False).
    """

    channels: int = 1
    outputs: int = 2
    enc: int = 48
    dec: int = 96
    depth: int = 5
    blind: bool = True

    @property
    def multiple(self) -> int:
        return 2**self.depth


def _shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Move the feature map down by ``rows``: zero rows enter at the top, the bottom drops."""
    return F.pad(x, (0, 0, rows, 0))[..., : x.shape[-2], :]


class _Conv3(nn.Conv2d):
    """3x3 convolution; in blind mode output row i only depends on input rows <= i."""

    def __init__(self, cin: int, cout: int, blind: bool):
        super().__init__(cin, cout, 3, padding=0)
        # Blind: one zero row on top plus 'same' padding, bottom row dropped, is the
        # same as padding two rows on top and none at the bottom.
        self._pad = (1, 1, 2, 0) if blind else (1, 1, 1, 1)
        nn.init.kaiming_normal_(self.weight, a=LEAK, nonlinearity="leaky_relu")
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self._pad))


def _conv1(cin: int, cout: int, last: bool = False) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1)
    if last:
        nn.init.kaiming_normal_(conv.weight, nonlinearity="linear")
    else:
        nn.init.kaiming_normal_(conv.weight, a=LEAK, nonlinearity="leaky_relu")
    nn.init.zeros_(conv.bias)
    return conv


class UNet(nn.Module):
    """The U-Net backbone of the paper, optionally with half-plane receptive field.

    Parameters
    ----------
    cin : int
        Input channels.
    enc, dec, depth : int
        Encoder width, decoder width and number of pooling levels.
    blind : bool
        Shift every convolution and pool so that output row i sees input rows <= i only.
        The final strict shift is applied by the caller.
    """

    def __init__(self, cin: int, enc: int, dec: int, depth: int, blind: bool):
        super().__init__()
        self.blind = blind
        self.depth = depth
        self.enc_in = nn.ModuleList([_Conv3(cin, enc, blind), _Conv3(enc, enc, blind)])
        # One convolution per lower level, the last one being the bottleneck.
        self.enc = nn.ModuleList([_Conv3(enc, enc, blind) for _ in range(depth)])
        self.dec = nn.ModuleList()
        for level in range(depth, 0, -1):
            skip = cin if level == 1 else enc
            up = enc if level == depth else dec
            self.dec.append(nn.ModuleList([_Conv3(up + skip, dec, blind), _Conv3(dec, dec, blind)]))
        self.out_channels = dec

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.blind:
            x = _shift_down(x)
        return F.max_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, LEAK)  # noqa: E731
        skips = [x]
        h = x
        for conv in self.enc_in:
            h = act(conv(h))
        h = self._pool(h)
        for i, conv in enumerate(self.enc):
            if i < self.depth - 1:
                skips.append(h)
            h = act(conv(h))
            if i < self.depth - 1:
                h = self._pool(h)
        for convs in self.dec:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = torch.cat([h, skips.pop()], dim=1)
            for conv in convs:
                h = act(conv(h))
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

    def _branch(self, x: torch.Tensor, k: int) -> torch.Tensor:
        h = _shift_down(self.unet(torch.rot90(x, k, dims=(2, 3))))
        return torch.rot90(h, -k, dims=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"blind-spot network needs square inputs, got {tuple(x.shape[-2:])}")
        if torch.is_grad_enabled():
            # One batched pass: faster for training.
            n = x.shape[0]
            rot = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], dim=0)
            h = _shift_down(self.unet(rot))
            h = torch.cat([torch.rot90(h[k * n : (k + 1) * n], -k, dims=(2, 3)) for k in range(4)], dim=1)
        else:
            # Branch by branch: a quarter of the peak memory for inference.
            h = torch.cat([self._branch(x, k) for k in range(4)], dim=1)
        for i, conv in enumerate(self.head):
            h = conv(h)
            if i < len(self.head) - 1:
                h = F.leaky_relu(h, LEAK)
        return h


class PlainNet(nn.Module):
    """The non-blind twin: same U-Net without shifts or rotations, head dec -> dec -> K."""

    def __init__(self, arch: ArchConfig, zero_last: bool = False):
        super().__init__()
        self.arch = arch
        self.unet = UNet(arch.channels, arch.enc, arch.dec, arch.depth, blind=False)
        d = arch.dec
        self.head = nn.ModuleList([_conv1(d, d), _conv1(d, arch.outputs, last=True)])
        if zero_last:
            # The noise-level estimator does not converge otherwise (method.md, pitfall 8).
            nn.init.zeros_(self.head[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.unet(x)
        h = F.leaky_relu(self.head[0](h), LEAK)
        return self.head[1](h)



def build_network(arch: ArchConfig) -> nn.Module:
    """Create the blind-spot or plain network described by ``arch``."""
    return BlindSpotNet(arch) if arch.blind else PlainNet(arch)


def receptive_margin(arch: ArchConfig) -> int:
    """Upper bound of the receptive-field radius in pixels, rounded up to ``2**depth``.

    Tiles overlapping by this margin give exactly the output of a whole-image pass.
    Each 3x3 convolution at scale s reaches s pixels (2s upwards when shifted), each
    shift, pool and nearest upsampling at scale s moves the field by at most s.
    """
    conv = 2 if arch.blind else 1
    shift = 1 if arch.blind else 0
    reach = 2 * conv  # the two full-resolution encoder convolutions
    for level in range(arch.depth):
        s = 2**level
        reach += shift * s + s  # shift and pool from scale s to 2s
        reach += conv * 2 * s  # conv at scale 2s
        reach += s  # nearest upsampling back to scale s
        reach += 2 * conv * s  # two decoder convs at scale s
    reach += shift  # final shift
    m = arch.multiple
    return int(math.ceil(reach / m) * m)
