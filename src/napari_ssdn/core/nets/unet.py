"""The U-Net backbone of the paper and its building blocks: convolutions that see only the
rows above (blind mode), shifts, and the head's matrix-product helpers (section 2 of
docs/design.md)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "UNet",
    "LEAK",
    "act",
    "chunk_pixels",
    "conv1",
    "conv3",
    "inference_layout",
    "low_precision",
    "shift_down",
]

#: Slope of the leaky ReLU after every convolution but the last.
LEAK = 0.1


def shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Move the feature map along the first spatial axis (dim 2) by ``rows``: zeros enter
    at index 0, the last ``rows`` drop."""
    nd = x.dim() - 2
    return F.pad(x, (0, 0) * (nd - 1) + (rows, 0))[:, :, : x.shape[2]]


def pair_max(x: torch.Tensor, dim: int, shifted: bool = False) -> torch.Tensor:
    """Maximum over pairs of neighbours along ``dim`` (of even length): indices 2i and 2i+1,
    or with ``shifted`` 2i-1 and 2i with a zero before index 0, which is
    ``shift_down`` followed by pooling by 2 along dim 2."""
    even = x[_every_other(x.dim(), dim, 0)]
    odd = x[_every_other(x.dim(), dim, 1)]
    if not shifted:
        return torch.maximum(even, odd)
    n = even.shape[dim]
    out = torch.empty_like(even)
    torch.clamp_min(even.narrow(dim, 0, 1), 0, out=out.narrow(dim, 0, 1))
    torch.maximum(even.narrow(dim, 1, n - 1), odd.narrow(dim, 0, n - 1), out=out.narrow(dim, 1, n - 1))
    return out


def inference_layout(x: torch.Tensor) -> torch.memory_format | None:
    """Channels-last for CPU inference, where oneDNN's 3x3(x3) convolutions of few channels
    run 1.3-2x faster than on channels-first maps; None elsewhere (training, traces for
    export, GPUs)."""
    if x.device.type != "cpu" or torch.is_grad_enabled() or torch.jit.is_tracing():
        return None
    return torch.channels_last if x.dim() == 4 else torch.channels_last_3d


def upsample_cat(h: torch.Tensor, skip: torch.Tensor, factor, layout: torch.memory_format) -> torch.Tensor:
    """``cat([nearest-upsampled h, skip], dim=1)`` in ``layout``, written once into one buffer.

    The buffer takes ``h``'s dtype: under autocast the next convolution casts to it anyway.
    """
    n, c = h.shape[:2]
    out = torch.empty((n, c + skip.shape[1], *skip.shape[2:]), dtype=h.dtype, device=h.device, memory_format=layout)
    split, src = [n, c], [n, c]
    for size, f in zip(h.shape[2:], factor, strict=True):
        split += [size, f]
        src += [size, 1]
    out[:, :c].view(split).copy_(h.view(src).expand(split))
    out[:, c:].copy_(skip)
    return out


def _every_other(ndim: int, dim: int, start: int) -> tuple:
    return (slice(None),) * dim + (slice(start, None, 2),) + (slice(None),) * (ndim - dim - 1)


def _conv_cls(ndim: int):
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class _PaddedConv:
    """3x3(x3) convolution; in blind mode output index i along dim 2 only depends on input
    indices <= i."""

    def _setup(self, blind: bool, ndim: int) -> None:
        # Blind: output row i sees input rows i-2..i, i.e. two zero rows on top and none
        # below. Without gradients the convolution pads two rows on both sides itself (no
        # padded copy of the input) and the two extra rows at the bottom are dropped; in
        # training the padded copy is kept, which keeps the gradient's rounding as it was.
        self.blind = blind
        self.padding = ((2,) if blind else (1,)) + (1,) * (ndim - 1)
        self._pad = (1, 1) * (ndim - 1) + (2, 0)
        nn.init.kaiming_normal_(self.weight, a=LEAK, nonlinearity="leaky_relu")
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blind and torch.is_grad_enabled():
            conv = F.conv2d if x.dim() == 4 else F.conv3d
            return conv(F.pad(x, self._pad), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        out = super().forward(x)
        return out[:, :, : x.shape[2]] if self.blind else out


class _Conv3x3(_PaddedConv, nn.Conv2d):
    pass


class _Conv3x3x3(_PaddedConv, nn.Conv3d):
    pass


def conv3(cin: int, cout: int, blind: bool, ndim: int = 2) -> nn.Module:
    conv = (_Conv3x3 if ndim == 2 else _Conv3x3x3)(cin, cout, 3, padding=0)
    conv._setup(blind, ndim)
    return conv


def conv1(cin: int, cout: int, last: bool = False, ndim: int = 2) -> nn.Module:
    conv = _conv_cls(ndim)(cin, cout, 1)
    if last:
        nn.init.kaiming_normal_(conv.weight, nonlinearity="linear")
    else:
        nn.init.kaiming_normal_(conv.weight, a=LEAK, nonlinearity="leaky_relu")
    nn.init.zeros_(conv.bias)
    return conv


def act(t: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(t, LEAK)


def chunk_pixels(device: torch.device, pixels: int) -> int:
    """Pixels per chunk of a 1x1 head run as matrix products: on a CPU chunks that stay in
    its caches (4-5x faster than 1x1 convolutions); a GPU wants few large launches, but
    chunks of 2^18 pixels keep the four turns' hidden maps to about 1 GB (light) where a
    whole 4096^2 tile would need 68 GB."""
    return min(pixels, 4096 if device.type == "cpu" else 1 << 18)


def low_precision(device: torch.device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
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
        self.enc_in = nn.ModuleList([conv3(cin, enc, blind, ndim), conv3(enc, enc, blind, ndim)])
        # One convolution per lower level, the last one being the bottleneck.
        self.enc = nn.ModuleList([conv3(enc, enc, blind, ndim) for _ in range(depth)])
        self.dec = nn.ModuleList()
        for level in range(depth, 0, -1):
            skip = cin if level == 1 else enc
            up = enc if level == depth else dec
            self.dec.append(nn.ModuleList([conv3(up + skip, dec, blind, ndim), conv3(dec, dec, blind, ndim)]))
        self.out_channels = dec

    def _pool(self, x: torch.Tensor, factor: tuple[int, ...]) -> torch.Tensor:
        pairs = all(f == 1 or (f == 2 and n % 2 == 0) for f, n in zip(factor, x.shape[2:], strict=True))
        if pairs and not torch.is_grad_enabled() and not torch.jit.is_tracing():
            # Inference: pairwise maxima of strided views, about 10x faster than max-pooling
            # (which also computes indices) and the same values. Training keeps max-pooling,
            # so that its gradients' tie-breaking stays as it was, and so do exported traces,
            # whose sizes must stay dynamic.
            for d, f in enumerate(factor):
                if f == 2:
                    x = pair_max(x, d + 2, shifted=self.blind and d == 0)
            return x
        if self.blind and factor[0] > 1:
            # Merging rows 2i and 2i+1 would let row 2i see row 2i+1: shift first.
            x = shift_down(x)
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
                warnings.warn(
                    f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); running without it", stacklevel=2
                )
                del self.__dict__["_compiled"]
        return self._forward(x, pools)

    def _forward(self, x: torch.Tensor, pools: list[tuple[int, ...]] | None = None) -> torch.Tensor:
        pools = pools or [(2,) * self.ndim] * self.depth
        layout = inference_layout(x)
        if layout is not None:
            x = x.contiguous(memory_format=layout)
        skips = [x]
        h = x
        for conv in self.enc_in:
            h = act(conv(h))
        h = self._pool(h, pools[0])
        for i, conv in enumerate(self.enc):
            if i < self.depth - 1:
                skips.append(h)
            h = act(conv(h))
            if i < self.depth - 1:
                h = self._pool(h, pools[i + 1])
        for level, convs in zip(range(self.depth - 1, -1, -1), self.dec, strict=True):
            if layout is None:
                h = torch.cat([F.interpolate(h, scale_factor=pools[level], mode="nearest"), skips.pop()], dim=1)
            else:
                h = upsample_cat(h, skips.pop(), pools[level], layout)
            for conv in convs:
                h = act(conv(h))
        return h
