"""The whole denoiser as one plain torch module, image in data units -> posterior mean in
data units, for tracing (TorchScript) and ONNX export.

Its forward pass is what ``ssdn denoise --no-tta`` computes: normalisation, the
interleaved sub-images of a subsampling model, the zero-padded canvas (a square of a
multiple of ``2**depth`` for images, a multiple per axis for volumes), the network, the
posterior mean with the noise parameters frozen in, and back to data units; pixels
missing from the input (NaN or infinite) stay NaN. Only torch operations that trace with
dynamic shapes and export to ONNX are used (no ``rot90``, no Python ``max`` of sizes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.nets.model import SSDNModel
from ..core.nets.network import BRANCHES_3D, BlindSpotNet, BlindSpotNet3D, _head
from ..core.nets.unet import shift_down
from ..core.noise.bayes import EPS, POISSON_FLOOR, curve_variance, posterior

__all__ = ["Denoiser", "onnx_compatible", "ONNX_OPSET"]

#: The ONNX opset the wrapper is exported with.
ONNX_OPSET = 17

LOG_2PI = math.log(2 * math.pi)


def _turn(t: torch.Tensor, k: int) -> torch.Tensor:
    """``torch.rot90(t, k, (2, 3))`` from flips and a transpose (ONNX has no rot90)."""
    k %= 4
    if k == 1:
        return t.transpose(2, 3).flip(2)
    if k == 2:
        return t.flip(2).flip(3)
    if k == 3:
        return t.transpose(2, 3).flip(3)
    return t


def _round_up(n: torch.Tensor, m: int) -> torch.Tensor:
    return (n + (m - 1)) // m * m


def onnx_compatible(model: SSDNModel) -> bool:
    """Whether the denoiser of ``model`` exports to ONNX: one channel (the scalar closed
    form; ONNX has no matrix inverse for the multi-channel posterior)."""
    return model.config.channels == 1


def _split_prior(out: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~napari_ssdn.core.noise.bayes.split_prior` for ``c > 1`` built by stacking, so
    that a trace keeps the spatial sizes dynamic (its ``new_zeros`` would fix them)."""
    out = out.double().movedim(1, -1)
    tri = out[..., c:]
    k = {}
    for i in range(c):  # torch.tril_indices order: row by row
        for j in range(i + 1):
            k[i, j] = len(k)
    zero = torch.zeros_like(tri[..., 0])
    u = torch.stack([torch.stack([tri[..., k[i, j]] if j <= i else zero for j in range(c)], -1) for i in range(c)], -2)
    return out[..., :c], u @ u.transpose(-1, -2)


class Denoiser(nn.Module):
    """``(N, C, [Z,] Y, X)`` float32 noisy image in data units -> posterior mean (or, for
    the mu-only and supervised baselines, the network's prediction), same shape.

    Parameters
    ----------
    model : SSDNModel
        A trained model; its network is used as it is (not copied).
    noise : dict
        Noise parameters in normalised units (floats), frozen into the module.
    """

    def __init__(self, model: SSDNModel, noise: dict):
        super().__init__()
        cfg = model.config
        self.net = model.net
        self.channels, self.ndim, self.mode, self.noise = cfg.channels, cfg.ndim, cfg.mode, cfg.noise
        self.offset, self.scale, self.f = float(cfg.offset), float(cfg.scale), int(cfg.subsample)
        self.multiples = cfg.arch.multiples
        self.region = cfg.arch.region
        self.params = {k: float(v) for k, v in noise.items()}
        if cfg.noise == "curve" and cfg.mode == "ssdn":
            self.register_buffer("curve_x", model.curve_x.detach().clone())
            self.register_buffer("curve_v", model.curve_v.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        missing = ~torch.isfinite(x)
        y = torch.where(missing, torch.zeros_like(x), (x - self.offset) / self.scale)
        shape = torch._shape_as_tensor(x)
        if self.f > 1:
            y = self._split(y, shape)
        inner = torch._shape_as_tensor(y)[2:]
        raw = self._canvas_pass(y, inner)
        mean = self._estimate(y, raw).float()
        if self.f > 1:
            mean = self._merge(mean, shape)
        out = mean * self.scale + self.offset
        return torch.where(missing, torch.full_like(out, float("nan")), out)

    # -- sub-images of a subsampling model (core.data.split_phases / merge_phases) ------
    def _split(self, y: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        f = self.f
        h, w = _round_up(shape[2], f), _round_up(shape[3], f)
        y = F.pad(y, (0, w - shape[3], 0, h - shape[2]))
        n, c = shape[0], shape[1]
        y = y.reshape(n, c, h // f, f, w // f, f).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(n * f * f, c, h // f, w // f)

    def _merge(self, t: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        f = self.f
        ts = torch._shape_as_tensor(t)
        m, c, hs, ws = ts[0], ts[1], ts[2], ts[3]
        t = t.reshape(m // (f * f), f, f, c, hs, ws).permute(0, 3, 4, 1, 5, 2)
        return t.reshape(m // (f * f), c, hs * f, ws * f)[:, :, : shape[2], : shape[3]]

    # -- the network on the zero-padded canvas of core.infer.tiles ----------------------------
    def _canvas_pass(self, y: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        if self.ndim == 2:
            side = _round_up(torch.maximum(inner[0], inner[1]), self.multiples[0])
            p = F.pad(y, (0, side - inner[1], 0, side - inner[0]))
        else:
            d, h, w = (_round_up(inner[a], m) for a, m in enumerate(self.multiples))
            p = F.pad(y, (0, w - inner[2], 0, h - inner[1], 0, d - inner[0]))
        net = self.net
        if isinstance(net, BlindSpotNet):
            out = self._blind_2d(net, p)
        elif isinstance(net, BlindSpotNet3D):
            out = self._blind_3d(net, p)
        else:
            out = net(p)
        crop = (slice(None), slice(None)) + tuple(slice(0, inner[a]) for a in range(self.ndim))
        return out[crop]

    def _blind_2d(self, net: BlindSpotNet, p: torch.Tensor) -> torch.Tensor:
        # BlindSpotNet.forward's four branches, turned by flips (one branch alive at a time).
        feats = [_turn(shift_down(net.unet(_turn(p, k)), self.region[k % 2]), -k) for k in range(4)]
        return _head(net.head, torch.cat(feats, dim=1))

    def _blind_3d(self, net: BlindSpotNet3D, p: torch.Tensor) -> torch.Tensor:
        feats = []
        for axis, after in BRANCHES_3D:
            t = p.transpose(2, axis)
            t = t.flip(2) if after else t
            h = shift_down(net.unet(t, net._pools(axis)), self.region[axis - 2])
            h = h.flip(2) if after else h
            feats.append(h.transpose(2, axis))
        return _head(net.head, torch.cat(feats, dim=1))

    def _posterior_params(self) -> dict:
        if self.noise == "curve":
            return {"curve_x": self.curve_x, "curve_v": self.curve_v}
        return self.params

    # -- posterior mean (core.noise.bayes.posterior; the scalar closed form for one channel) --
    def _estimate(self, y: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        c = self.channels
        if self.mode != "ssdn":
            return raw
        if c > 1:
            mu, sx = _split_prior(raw, c)
            mean, _ = posterior(self.noise, y.movedim(1, -1), mu, sx, self._posterior_params())
            return torch.where(torch.isfinite(mean), mean, mu).movedim(-1, 1)
        raw = raw.double()
        yd = y.double()
        mu, u = raw[:, :1], raw[:, 1:2]
        sx = u * u
        p = self.params
        if self.noise == "impulse":
            a = p["alpha"]
            s = sx + EPS
            d = yd - mu
            g = torch.exp(-0.5 * (d * d / s + torch.log(s) + LOG_2PI))
            w = (1 - a) * g / (a + (1 - a) * g)
            mean = (1 - w) * mu + w * yd
        else:
            if self.noise == "gaussian":
                sn = torch.full_like(mu, p["sigma"] ** 2)
            elif self.noise == "poisson":
                sn = mu.clamp_min(POISSON_FLOOR) / p["lam"]
            elif self.noise == "curve":
                sn = curve_variance(mu, self.curve_x, self.curve_v)
            else:
                sn = p["a"] * mu.clamp_min(0.0) + p["b"]
            mean = mu + sx / (sx + sn + EPS) * (yd - mu)
        return torch.where(torch.isfinite(mean), mean, mu)
