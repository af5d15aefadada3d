"""Gaussian prior, noise models, training losses and posterior means (docs/design.md, "Likelihood and posterior").

All arithmetic here runs in float64 on per-pixel arrays laid out channels-last:
``y`` and ``mu`` are ``(..., C)``, covariances ``(..., C, C)``. Noise parameters are in
normalised units and broadcast against the leading axes (per image: shape ``(N, 1, 1)``).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "NOISE_MODELS",
    "NOISE_PARAMS",
    "n_outputs",
    "split_prior",
    "noise_covariance",
    "nll_loss",
    "marginal_variance",
    "posterior",
    "curve_variance",
    "EPS",
]

EPS = 1e-9
from ..constants import NOISE_MODELS, NOISE_PARAMS  # noqa: E402

POISSON_FLOOR = 1e-3


def n_outputs(channels: int) -> int:
    """Head outputs K = C + C(C+1)/2: the prior mean and a triangular factor of its covariance."""
    return channels + channels * (channels + 1) // 2


def split_prior(out: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split network output ``(N, K, *spatial)`` into ``mu (N, *spatial, C)`` and ``Sigma_x (N, *spatial, C, C)``.

    Sigma_x = U U^T with U lower triangular from the last C(C+1)/2 outputs: positive
    semi-definite without any squashing function (it may be singular; the noise
    covariance is added before every inversion).
    """
    out = out.to(torch.float64).movedim(1, -1)
    c = channels
    mu = out[..., :c]
    tri = out[..., c:]
    if c == 1:
        return mu, (tri * tri)[..., None]
    rows, cols = torch.tril_indices(c, c, device=out.device)
    u = out.new_zeros(out.shape[:-1] + (c, c))
    u[..., rows, cols] = tri
    return mu, u @ u.transpose(-1, -2)


def _eye(c: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(c, dtype=like.dtype, device=like.device)


def _diag(v: torch.Tensor) -> torch.Tensor:
    return torch.diag_embed(v)


def noise_covariance(model: str, params: dict, mu: torch.Tensor) -> torch.Tensor:
    """Noise covariance Sigma_n ``(..., C, C)`` of a Gaussian-family model at prior mean ``mu``.

    Poisson and Poisson-Gaussian use the *predicted* mean (docs/design.md, "Likelihood and posterior").
    """
    c = mu.shape[-1]
    if model == "gaussian":
        s = _as(params["sigma"], mu)
        return (s * s)[..., None, None] * _eye(c, mu)
    if model == "poisson":
        lam = _as(params["lam"], mu)
        return _diag(mu.clamp_min(POISSON_FLOOR) / lam[..., None])
    if model == "poisson-gaussian":
        a, b = _as(params["a"], mu), _as(params["b"], mu)
        return _diag(a[..., None] * mu.clamp_min(0.0) + b[..., None])
    if model == "curve":
        return _diag(curve_variance(mu, params["curve_x"], params["curve_v"]))
    raise ValueError(f"no Gaussian noise covariance for noise model {model!r}")


def curve_variance(mu: torch.Tensor, xs: torch.Tensor, vs: torch.Tensor) -> torch.Tensor:
    """The measured variance curve (knots ``xs`` increasing, values ``vs``) at ``mu``:
    linear between the knots, the first value below them, and beyond the last the last
    segment's rise (held level where it falls) (float64, the shape of ``mu``).

    The last knot sits at the median of the brightest bin, so an eighth of the pixels lie
    beyond it; holding its value there understated their noise and cost the posterior 0.5 dB
    on a confocal image. Written as a sum of clamped ramps, one per segment, rather than a
    search: a handful of elementwise operations that export to ONNX as they are."""
    xs = xs.to(device=mu.device, dtype=torch.float64)
    vs = vs.to(device=mu.device, dtype=torch.float64)
    m = mu.to(torch.float64)
    out = torch.zeros_like(m) + vs[0]
    for k in range(xs.numel() - 1):
        slope = (vs[k + 1] - vs[k]) / (xs[k + 1] - xs[k])
        out = out + slope * (torch.minimum(torch.maximum(m, xs[k]), xs[k + 1]) - xs[k])
    if xs.numel() > 1:
        rise = torch.clamp((vs[-1] - vs[-2]) / (xs[-1] - xs[-2]), min=0)
        out = out + rise * torch.clamp(m - xs[-1], min=0)
    return out


def _as(p, like: torch.Tensor) -> torch.Tensor:
    """A parameter as float64 broadcastable to ``like.shape[:-1]`` (per image or global)."""
    p = torch.as_tensor(p, dtype=torch.float64, device=like.device)
    while p.dim() < like.dim() - 1:
        p = p.unsqueeze(-1)
    return p


def _inv_logdet(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse and log-determinant of symmetric positive-definite ``(..., C, C)``."""
    if s.shape[-1] == 1:
        return 1.0 / s, torch.log(s[..., 0, 0])
    chol = torch.linalg.cholesky(s)
    inv = torch.cholesky_inverse(chol)
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return inv, logdet


def _quad(d: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """d^T A d for ``d (..., C)`` and ``A (..., C, C)``."""
    return (d[..., None, :] @ inv @ d[..., :, None])[..., 0, 0]


def impulse_marginal(mu: torch.Tensor, sx: torch.Tensor, alpha) -> tuple[torch.Tensor, torch.Tensor]:
    """Moment-matched Gaussian of the noisy pixel under impulse noise (uniform on [0, 1])."""
    c = mu.shape[-1]
    a = _as(alpha, mu)[..., None]
    ones = torch.ones(c, c, dtype=mu.dtype, device=mu.device)
    mu_y = a / 2 + (1 - a) * mu
    outer = lambda v: v[..., :, None] * v[..., None, :]  # noqa: E731
    a2 = a[..., None]
    s_y = a2 * (ones / 4 + _eye(c, mu) / 12) + (1 - a2) * (sx + outer(mu)) - outer(mu_y)
    return mu_y, s_y


def nll_loss(model: str, y: torch.Tensor, mu: torch.Tensor, sx: torch.Tensor, params: dict) -> torch.Tensor:
    """Per-pixel negative log-likelihood ``(y-mu_y)^T Sigma_y^-1 (y-mu_y) + log det Sigma_y``.

    Constants (C log 2 pi, the factor 1/2) are dropped as in the paper. Returns ``(...)``.
    """
    y = y.to(torch.float64)
    c = y.shape[-1]
    mu_y, s_y = _marginal(model, mu, sx, params)
    s_y = s_y + EPS * _eye(c, y)
    inv, logdet = _inv_logdet(s_y)
    return _quad(y - mu_y, inv) + logdet


def marginal_variance(model: str, mu: torch.Tensor, sx: torch.Tensor, params: dict) -> torch.Tensor:
    """Mean per-channel variance of the noisy pixel, trace(Sigma_y) / C, shape ``(...)``."""
    _, s_y = _marginal(model, mu, sx, params)
    return torch.diagonal(s_y, dim1=-2, dim2=-1).mean(-1)


def _marginal(model: str, mu: torch.Tensor, sx: torch.Tensor, params: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (mu_y, Sigma_y) of the noisy pixel under the prior."""
    if model == "impulse":
        return impulse_marginal(mu, sx, params["alpha"])
    return mu, sx + noise_covariance(model, params, mu)


def _gauss_pdf(d: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    inv, logdet = _inv_logdet(s)
    c = d.shape[-1]
    return torch.exp(-0.5 * (_quad(d, inv) + logdet + c * math.log(2 * math.pi)))


def posterior(
    model: str, y: torch.Tensor, mu: torch.Tensor, sx: torch.Tensor, params: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and per-channel posterior variance of the clean pixel.

    Gaussian family: x = mu + Sigma_x (Sigma_x + Sigma_n)^-1 (y - mu), with covariance
    Sigma_x - Sigma_x (Sigma_x + Sigma_n)^-1 Sigma_x. Impulse: the exact two-component
    mixture (the pixel is either the uniform impulse, posterior = prior, or clean, x = y).

    Returns
    -------
    mean, var : torch.Tensor
        Both ``(..., C)`` float64.
    """
    y = y.to(torch.float64)
    c = y.shape[-1]
    eye = _eye(c, y)
    if model == "impulse":
        a = _as(params["alpha"], mu)
        g = _gauss_pdf(y - mu, sx + EPS * eye)
        w = ((1 - a) * g / (a + (1 - a) * g))[..., None]  # probability that y is clean
        mean = (1 - w) * mu + w * y
        second = (1 - w) * (torch.diagonal(sx, dim1=-2, dim2=-1) + mu * mu) + w * y * y
        return mean, (second - mean * mean).clamp_min(0.0)
    sn = noise_covariance(model, params, mu)
    inv, _ = _inv_logdet(sx + sn + EPS * eye)
    gain = sx @ inv
    mean = mu + (gain @ (y - mu)[..., None])[..., 0]
    cov = sx - gain @ sx
    return mean, torch.diagonal(cov, dim1=-2, dim2=-1).clamp_min(0.0)
