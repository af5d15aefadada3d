"""Is the Gaussian prior's shape what caps the posterior? An analysis of one trained gray
Gaussian model (e.g. one saved by ``table.py --save-model``).

    python benchmarks/ablations/prior_shape.py --data DATA/bsd68_gray --model m/learned.ssdn

Each image gets the same noise as in table.py (seed 1000 + index). The model gives each
pixel a prior mean mu and a prior variance s2 (from its posterior std, 8-view averaging off so
that both belong to one network pass); r = y - mu is what the noisy pixel adds. Rows, all
estimating x = mu + E[x - mu | r]:

- Gaussian: the paper's posterior, mu + s2 / (s2 + sigma^2) r (what the model gives);
- scale mixture, K components, fitted to r alone: the prior error is N(0, c_k s2) with
  probability w_k, (w, c) fitted by maximum likelihood of r under the learned sigma, no clean
  image used; its posterior mean is closed-form (a responsibility-weighted sum of Gaussian
  gains). K = 1 is the global rescaling of s2;
- deconvolved per bin, fitted to r alone: pixels binned by s2, and in each bin the
  distribution of x - mu on a grid estimated from r by EM (nonparametric maximum
  likelihood under the known noise), then the posterior mean under it;
- oracle per bin: the same with the true histogram of x - mu in each bin (uses the clean
  image: the bound of any prior that depends on s2 only).

Also prints the kurtosis of (x - mu) / sqrt(s2) (3 for a calibrated Gaussian prior).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
from common import add_noise, load_clean, psnr8, record  # noqa: E402

from napari_ssdn.core import denoise, load_model  # noqa: E402

GRID = np.linspace(-0.8, 0.8, 641)  # values of x - mu, in [0, 1] image units


def fit_scale_mixture(r, s2, n2, k, iters=300):
    """Maximum likelihood (w, c) of r ~ sum_k w_k N(0, c_k s2 + n2), by EM-like LBFGS."""
    r, s2 = torch.as_tensor(r, dtype=torch.float64), torch.as_tensor(s2, dtype=torch.float64)
    logc = torch.linspace(-1.5, 1.5, k, dtype=torch.float64) if k > 1 else torch.zeros(1, dtype=torch.float64)
    logc.requires_grad_(True)
    logit = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logc, logit], max_iter=iters, line_search_fn="strong_wolfe")

    def nll():
        v = torch.exp(logc)[None] * s2[:, None] + n2
        lp = torch.log_softmax(logit, 0)[None] - 0.5 * (r[:, None] ** 2 / v + torch.log(v))
        return -torch.logsumexp(lp, 1).mean()

    def closure():
        opt.zero_grad()
        loss = nll()
        loss.backward()
        return loss

    opt.step(closure)
    return torch.softmax(logit, 0).detach().numpy(), torch.exp(logc).detach().numpy()


def scale_mixture_mean(r, s2, n2, w, c):
    v = c[None] * s2[:, None] + n2
    lp = np.log(w)[None] - 0.5 * (r[:, None] ** 2 / v + np.log(v))
    resp = np.exp(lp - lp.max(1, keepdims=True))
    resp /= resp.sum(1, keepdims=True)
    gain = (resp * (c[None] * s2[:, None] / v)).sum(1)
    return gain * r


def grid_posterior_mean(r, g, n2):
    """E[e | r] for e ~ g (weights on GRID) and r = e + N(0, n2), by a table over r."""
    table_r = np.linspace(-1.5, 1.5, 3001)
    lik = np.exp(-0.5 * (table_r[:, None] - GRID[None]) ** 2 / n2)
    den = lik @ g
    table = (lik @ (g * GRID)) / np.maximum(den, 1e-300)
    return np.interp(r, table_r, table)


def npmle(r, n2, iters=200):
    """Weights on GRID maximising the likelihood of r = e + N(0, n2) (EM on the grid)."""
    sub = r if r.size <= 10000 else np.random.default_rng(0).choice(r, 10000, replace=False)
    lik = np.exp(-0.5 * (sub[:, None] - GRID[None]) ** 2 / n2)
    g = np.full(GRID.size, 1.0 / GRID.size)
    for _ in range(iters):
        post = lik * g[None]
        post /= np.maximum(post.sum(1, keepdims=True), 1e-300)
        g = post.mean(0)
    return g


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", required=True, help="folder of clean images, e.g. DATA/bsd68_gray (see benchmarks/README.md)"
    )
    p.add_argument("--model", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--level", type=float, default=25.0)
    p.add_argument("--bins", type=int, default=50)
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)

    model, _ = load_model(args.model)
    n2 = float(model.noise_params_data()["sigma"]) ** 2
    data = load_clean(args.data, args.limit, gray=True)
    xs, ys, mus, s2s, sizes = [], [], [], [], []
    for i, (_, c) in enumerate(data):
        c = c.astype(np.float32)
        y = add_noise(c, "gaussian", args.level, 1000 + i)
        out = denoise(model, y, "YX", ("prior-mean", "posterior-std"), tta=False)
        pv = out["posterior-std"].astype(np.float64) ** 2
        s2 = pv * n2 / np.maximum(n2 - pv, 1e-12)  # 1 / pv = 1 / s2 + 1 / sigma^2
        for acc, a in ((xs, c), (ys, y), (mus, out["prior-mean"]), (s2s, s2)):
            acc.append(a.astype(np.float64).ravel())
        sizes.append(c.shape)
    x, y, mu, s2 = map(np.concatenate, (xs, ys, mus, s2s))
    r, e = y - mu, x - mu
    z = e / np.sqrt(np.maximum(s2, 1e-12))
    print(
        f"{len(data)} images, {x.size} pixels, learned sigma {np.sqrt(n2) * 255:.2f}; "
        f"E[(x - mu)^2] / E[s2] = {np.mean(e * e) / np.mean(s2):.3f}, kurtosis of (x - mu) / sqrt(s2) = "
        f"{np.mean(z**4) / np.mean(z**2) ** 2:.2f}"
    )

    estimates = {"prior mean": np.zeros_like(r), "Gaussian (the model's posterior)": s2 / (s2 + n2) * r}
    fits = {}
    fit_on = np.random.default_rng(0).choice(r.size, min(r.size, 10**6), replace=False)
    for k in (1, 2, 3):
        w, c = fit_scale_mixture(r[fit_on], s2[fit_on], n2, k)
        fits[f"scale mixture K={k}"] = {"w": w.round(4).tolist(), "c": c.round(4).tolist()}
        estimates[f"scale mixture K={k}, fitted to r alone"] = scale_mixture_mean(r, s2, n2, w, c)
    edges = np.quantile(s2, np.linspace(0, 1, args.bins + 1))
    which = np.clip(np.searchsorted(edges, s2, side="right") - 1, 0, args.bins - 1)
    deconv, oracle = np.empty_like(r), np.empty_like(r)
    for b in range(args.bins):
        m = which == b
        if not m.any():
            continue
        deconv[m] = grid_posterior_mean(r[m], npmle(r[m], n2), n2)
        hist = np.histogram(np.clip(e[m], GRID[0], GRID[-1]), bins=np.append(GRID - 0.00125, GRID[-1] + 0.00125))[
            0
        ].astype(np.float64)
        oracle[m] = grid_posterior_mean(r[m], hist / hist.sum(), n2)
    estimates[f"deconvolved per bin ({args.bins}), fitted to r alone"] = deconv
    estimates[f"oracle per bin ({args.bins}, true x - mu)"] = oracle

    rows = {}
    for label, d in estimates.items():
        est, start, scores = mu + d, 0, []
        for shape, xc in zip(sizes, xs, strict=True):
            n = int(np.prod(shape))
            scores.append(psnr8(est[start : start + n].reshape(shape), xc.reshape(shape)))
            start += n
        rows[label] = scores
        print(f"  {label:52s} {np.mean(scores):6.3f} dB")
    if args.name:
        print(
            "recorded",
            record(
                args.name,
                {
                    "model": args.model,
                    "sigma_learned": float(np.sqrt(n2)),
                    "fits": fits,
                    "mean_psnr": {k: round(float(np.mean(v)), 3) for k, v in rows.items()},
                    "per_image_psnr": {k: [round(v, 3) for v in vs] for k, vs in rows.items()},
                },
            ),
        )


if __name__ == "__main__":
    main()
