"""Losses and posterior means against independent computations (docs/design.md, "Likelihood and posterior")."""

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from napari_ssdn.core.noise.bayes import marginal_variance, nll_loss, posterior, split_prior

rng = np.random.default_rng(0)


def _t(*vals):
    return torch.tensor(vals, dtype=torch.float64)


def _grid_posterior(prior_mu, prior_var, lik):
    """Posterior mean and variance by numerical integration over x (C = 1)."""
    sd = np.sqrt(prior_var)
    lo, hi = prior_mu - 12 * sd, prior_mu + 12 * sd
    x = np.linspace(lo, hi, 400001)
    w = stats.norm.pdf(x, prior_mu, sd) * lik(x)
    z = integrate.trapezoid(w, x)
    mean = integrate.trapezoid(x * w, x) / z
    var = integrate.trapezoid((x - mean) ** 2 * w, x) / z
    return mean, var


CASES = [
    # noise, params, (mu, prior std), observed y, noise variance used by the model
    ("gaussian", {"sigma": 0.1}, (0.4, 0.05), 0.55, lambda mu: 0.1**2),
    ("gaussian", {"sigma": 0.02}, (0.7, 0.2), 0.3, lambda mu: 0.02**2),
    ("poisson", {"lam": 30.0}, (0.4, 0.05), 0.55, lambda mu: max(mu, 1e-3) / 30.0),
    ("poisson", {"lam": 5.0}, (-0.01, 0.03), 0.2, lambda mu: max(mu, 1e-3) / 5.0),
    ("poisson-gaussian", {"a": 0.01, "b": 0.001}, (0.6, 0.1), 0.45, lambda mu: 0.01 * max(mu, 0) + 0.001),
    # a measured variance curve, between its knots and beyond the last one
    (
        "curve",
        {"curve_x": _t(0.0, 0.5, 1.0), "curve_v": _t(0.001, 0.006, 0.004)},
        (0.6, 0.1),
        0.45,
        lambda mu: np.interp(mu, [0.0, 0.5, 1.0], [0.001, 0.006, 0.004]),
    ),
    ("curve", {"curve_x": _t(0.0, 0.5, 1.0), "curve_v": _t(0.001, 0.006, 0.004)}, (1.3, 0.05), 1.1, lambda mu: 0.004),
]


@pytest.mark.parametrize("noise,params,prior,y,noise_var", CASES)
def test_gaussian_family_posterior_matches_integration(noise, params, prior, y, noise_var):
    """Posterior mean and variance equal the integral of prior x likelihood."""
    mu, sd = prior
    out = torch.tensor([[[[mu]], [[sd]]]], dtype=torch.float64).permute(1, 0, 2, 3).reshape(1, 2, 1, 1)
    m, sx = split_prior(out, 1)
    mean, var = posterior(noise, _t(y).reshape(1, 1, 1, 1), m, sx, params)
    nv = noise_var(mu)
    ref_mean, ref_var = _grid_posterior(mu, sd**2, lambda x: stats.norm.pdf(y, x, np.sqrt(nv)))
    assert mean.item() == pytest.approx(ref_mean, abs=1e-5)
    assert var.item() == pytest.approx(ref_var, rel=1e-3)


@pytest.mark.parametrize("alpha,y", [(0.5, 0.42), (0.5, 0.9), (0.1, 0.4), (0.9, 0.43)])
def test_impulse_posterior_matches_integration(alpha, y):
    """Exact mixture posterior: impulse (uniform on [0,1]) or clean pixel x = y.

    The clean branch is a delta; integrate it as a narrow Gaussian of variance eps, the
    same regularisation as the closed form.
    """
    mu, sd = 0.4, 0.05
    eps = 1e-9
    m = torch.tensor([[[[mu]]]], dtype=torch.float64)
    sx = torch.tensor([[[[[sd**2]]]]], dtype=torch.float64)
    mean, var = posterior("impulse", _t(y).reshape(1, 1, 1, 1), m, sx, {"alpha": alpha})
    lik = lambda x: alpha * 1.0 + (1 - alpha) * stats.norm.pdf(y, x, np.sqrt(eps))  # noqa: E731
    ref_mean, ref_var = _grid_posterior(mu, sd**2, lik)
    assert mean.item() == pytest.approx(ref_mean, abs=2e-4)
    assert var.item() == pytest.approx(ref_var, rel=2e-2, abs=1e-7)


def test_colour_posterior_matches_integration():
    """C = 2 with full prior covariance: mean by 2D numerical integration."""
    mu = np.array([0.3, 0.5])
    u = np.array([[0.08, 0.0], [0.05, 0.06]])
    sx = u @ u.T
    sigma = 0.07
    y = np.array([0.42, 0.45])
    g = np.linspace(-0.3, 1.1, 1401)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([xx, yy], -1)
    w = stats.multivariate_normal(mu, sx).pdf(pts) * stats.multivariate_normal(y, sigma**2 * np.eye(2)).pdf(pts)
    z = w.sum()
    ref = np.array([(xx * w).sum() / z, (yy * w).sum() / z])
    out = torch.tensor([mu[0], mu[1], u[0, 0], u[1, 0], u[1, 1]], dtype=torch.float64).reshape(1, 5, 1, 1)
    m, s = split_prior(out, 2)
    assert np.allclose(s[0, 0, 0].numpy(), sx)
    mean, _ = posterior("gaussian", torch.tensor(y).reshape(1, 1, 1, 2), m, s, {"sigma": sigma})
    assert np.allclose(mean[0, 0, 0].numpy(), ref, atol=1e-4)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize(
    "noise,params",
    [("gaussian", {"sigma": 0.1}), ("poisson", {"lam": 20.0}), ("poisson-gaussian", {"a": 0.02, "b": 0.003})],
)
def test_loss_is_the_gaussian_negative_log_density(c, noise, params):
    """L = -2 log N(y; mu, Sigma_x + Sigma_n) - C log(2 pi), checked with scipy."""
    k = c + c * (c + 1) // 2
    out = torch.tensor(rng.normal(0.4, 0.15, size=(1, k, 3, 2)))
    y = torch.tensor(rng.normal(0.5, 0.2, size=(1, 3, 2, c)))
    mu, sx = split_prior(out, c)
    loss = nll_loss(noise, y, mu, sx, params)
    var = marginal_variance(noise, mu, sx, params)  # the beta-NLL weight's base
    for i in range(3):
        for j in range(2):
            m = mu[0, i, j].numpy()
            if noise == "gaussian":
                sn = params["sigma"] ** 2 * np.eye(c)
            elif noise == "poisson":
                sn = np.diag(np.maximum(m, 1e-3) / params["lam"])
            else:
                sn = np.diag(params["a"] * np.maximum(m, 0) + params["b"])
            cov = sx[0, i, j].numpy() + sn + 1e-9 * np.eye(c)
            ref = -2 * stats.multivariate_normal(m, cov).logpdf(y[0, i, j].numpy()) - c * np.log(2 * np.pi)
            assert loss[0, i, j].item() == pytest.approx(ref, rel=1e-9, abs=1e-9)
            assert var[0, i, j].item() == pytest.approx(np.trace(cov) / c, rel=1e-6)


@pytest.mark.parametrize("c", [1, 3])
def test_impulse_loss_uses_the_moment_matched_mixture(c):
    """Mean and covariance of the impulse mixture computed from its definition by sampling."""
    alpha = 0.4
    k = c + c * (c + 1) // 2
    out = torch.tensor(rng.normal(0.5, 0.1, size=(1, k, 1, 1)))
    mu, sx = split_prior(out, c)
    m, s = mu[0, 0, 0].numpy(), sx[0, 0, 0].numpy()
    n = 2_000_000
    r = np.random.default_rng(1)
    clean = r.multivariate_normal(m, s, size=n)
    hit = r.random(n) < alpha
    noisy = np.where(hit[:, None], r.random((n, c)), clean)
    emp_mean, emp_cov = noisy.mean(0), np.cov(noisy.T).reshape(c, c)
    y = np.full(c, 0.3)
    ref = -2 * stats.multivariate_normal(emp_mean, emp_cov + 1e-6 * np.eye(c)).logpdf(y) - c * np.log(2 * np.pi)
    loss = nll_loss("impulse", torch.tensor(y).reshape(1, 1, 1, c), mu, sx, {"alpha": alpha})
    assert loss.item() == pytest.approx(ref, abs=0.02 * c)
    var = marginal_variance("impulse", mu, sx, {"alpha": alpha})
    assert var.item() == pytest.approx(np.trace(emp_cov) / c, rel=0.01)


def test_posterior_is_finite_for_singular_prior():
    """Sigma_x may be singular (zero variance); adding Sigma_n keeps inversion finite."""
    out = torch.zeros(1, 9, 2, 2, dtype=torch.float64)
    mu, sx = split_prior(out, 3)
    mean, var = posterior("gaussian", torch.full((1, 2, 2, 3), 0.7, dtype=torch.float64), mu, sx, {"sigma": 0.1})
    assert torch.isfinite(mean).all() and torch.allclose(mean, mu, atol=1e-3)
    assert torch.all(var >= 0)
