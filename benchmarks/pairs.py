"""Two noisy observations of one field (even/odd halves, repeated frames) on documented
phantoms: the noise measured from the pair against the truth, and denoising with the pair
against the single-image defaults, a plain Noise2Noise network of the same width and budget
(the cryoCARE recipe: one half to the other, the two outputs averaged) and BM3D given the true
noise of the halves' mean.

    python benchmarks/pairs.py --phantom fluo --budget 90 --name pairs_fluo_90s
    python benchmarks/pairs.py --phantom scan --budget 90 --name pairs_scan_90s

Phantoms (``--images`` of ``--size`` pixels, seeds fixed; two independent noise draws each):

- ``fluo``: fluorescence-like, signal 2 + 60 x :func:`napari_ssdn.samples.clean_cells`
  photons, Poisson-Gaussian noise (gain 1, read variance 4) clipped at zero, so that the
  variance is convex in the signal near zero.
- ``scan``: EM-like, signal :func:`clean_cells`, Gaussian noise of std 0.35 correlated along x
  by a 1 x 5 box (a scan direction): neighbour correlation 0.8 at lag 1.

PSNR in dB against the clean signal, peak = its range, mean over images. One model per row,
trained on all the images for ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402


def phantom(kind: str, n: int, size: int):
    """``(clean, half1, half2, true_variance_of_one_half)`` lists for ``kind``."""
    from napari_ssdn.samples import clean_cells

    clean, h1, h2, var = [], [], [], []
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        c = clean_cells(size, seed=i)
        if kind == "fluo":
            s = 2.0 + 60.0 * c

            def draw(s=s, rng=rng):
                return np.clip(rng.poisson(s) + rng.normal(0, 2.0, s.shape), 0, None)

            clean.append(s)
            var.append(s + 4.0)  # before clipping
        elif kind == "scan":
            s = c

            def draw(s=s, rng=rng):
                w = rng.normal(0, 1, (s.shape[0], s.shape[1] + 4))
                k = sum(w[:, j : j + s.shape[1]] for j in range(5)) / np.sqrt(5)
                return s + 0.35 * k

            clean.append(s)
            var.append(np.full_like(s, 0.35**2))
        else:
            raise SystemExit(f"unknown phantom {kind!r}")
        h1.append(draw().astype(np.float32))
        h2.append(draw().astype(np.float32))
    return clean, h1, h2, var


def psnr(x, clean) -> float:
    from napari_ssdn.samples import psnr as _psnr

    return float(_psnr(x, clean, peak=float(np.ptp(clean))))


#: Fixed steps per row instead of a time budget (``--steps``): rows compare on a shared machine.
STEPS = None


def train(images, budget, seed, targets=None, **config):
    from napari_ssdn.core import TrainConfig, Trainer

    budget_kw = {"iterations": STEPS} if STEPS else {"time_limit": budget}
    cfg = TrainConfig(seed=seed, **budget_kw, **config)
    trainer = Trainer(images, ["YX"] * len(images), cfg, targets=targets)
    for _ in trainer.run():
        pass
    return trainer


def run_single(h1, clean, budget, seed):
    """The single-image defaults on one half."""
    from napari_ssdn.core import denoise

    t = train(h1, budget, seed)
    outs = [denoise(t.model, y, "YX", ("prior-mean", "posterior-mean")) for y in h1]
    return _scores(outs, clean, t)


def run_pair_mean(h1, h2, clean, budget, seed):
    """The blind-spot network on the halves' mean, noise and blind region measured from the pair."""
    from napari_ssdn.core import denoise
    from napari_ssdn.core.noise.pairs import half_mean, pair_noise

    pn = pair_noise(np.stack(h1), np.stack(h2))
    noise, params = pn.noise_params(of_mean=True)
    means = [half_mean(a, b) for a, b in zip(h1, h2, strict=True)]
    t = train(means, budget, seed, noise=noise, noise_params=params, blind=pn.blind_region())
    outs = [denoise(t.model, m, "YX", ("prior-mean", "posterior-mean")) for m in means]
    res = _scores(outs, clean, t)
    res["noise"] = {"model": noise, "params": params, "measured": pn.to_dict()}
    return res


def run_n2n(h1, h2, clean, budget, seed, width):
    """Noise2Noise: a non-blind network from one half to the other; outputs of both averaged."""
    from napari_ssdn.core import denoise

    t = train(h1 + h2, budget, seed, targets=h2 + h1, mode="supervised", width=width, init="none")
    outs = [(denoise(t.model, a, "YX") + denoise(t.model, b, "YX")) / 2 for a, b in zip(h1, h2, strict=True)]
    return {
        "posterior": float(np.mean([psnr(o, c) for o, c in zip(outs, clean, strict=True)])),
        "steps": t.step,
    }


def run_bm3d(h1, h2, clean, kind):
    """BM3D on the halves' mean given its true noise: the spectrum of the 1 x 5 box (scan), or
    the generalised Anscombe transform of Poisson-Gaussian noise (fluo)."""
    import bm3d

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # bm3d 4.x calls np.trapz, which NumPy 2.4 removed
    scores = []
    for a, b, c in zip(h1, h2, clean, strict=True):
        m = (a.astype(np.float64) + b) / 2
        if kind == "scan":
            k = np.zeros(m.shape)
            k[0, :5] = 1 / np.sqrt(5)
            k = np.roll(k, -2, axis=1)
            psd = (0.35**2 / 2) * np.abs(np.fft.fft2(k)) ** 2 * m.size
            out = bm3d.bm3d(m, sigma_psd=psd)
        else:
            gain, read = 0.5, 4.0 / 2  # the mean of two halves: Poisson of gain 1/2, half the read variance
            z = 2 / gain * np.sqrt(np.maximum(gain * m + 3 / 8 * gain**2 + read, 0))
            zd = bm3d.bm3d(z, sigma_psd=1.0)
            out = _inverse_gat(zd, gain, read)
        scores.append(psnr(out, c))
    return {"posterior": float(np.mean(scores))}


def _inverse_gat(z, gain, read):
    """Closed-form approximation of the exact unbiased inverse of the generalised Anscombe
    transform (Makitalo and Foi 2013)."""
    z = np.maximum(z, 1.0)
    s = np.sqrt(1.5)
    x = 0.25 * z**2 + 0.25 * s / z - 11 / 8 / z**2 + 5 / 8 * s / z**3 - 1 / 8 - read / gain**2
    return gain * np.maximum(x, 0)


def _scores(outs, clean, trainer):
    return {
        "prior": float(np.mean([psnr(o["prior-mean"], c) for o, c in zip(outs, clean, strict=True)])),
        "posterior": float(np.mean([psnr(o["posterior-mean"], c) for o, c in zip(outs, clean, strict=True)])),
        "steps": trainer.step,
        "blind": list(trainer.config.blind),
        "noise_model": trainer.config.noise,
    }


def curve_check(h1, h2, var):
    """Per-bin noise variance from the pair against the true variance of one half (mean over
    the bin's pixels; fluo: measured over 64 extra draws, as clipping changes it)."""
    from napari_ssdn.core.noise.pairs import _smoothed, pair_noise

    pn = pair_noise(np.stack(h1), np.stack(h2))
    level = _smoothed((np.stack(h1).astype(np.float64) + np.stack(h2)) / 2)
    edges = np.unique(np.quantile(level, np.linspace(0, 1, len(pn.level) + 1)))
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    truth = np.stack(var)
    gaps = [float(v / truth[idx == i].mean() - 1) for i, v in enumerate(pn.variance)]
    return {"bins": len(gaps), "worst_relative_gap": float(np.max(np.abs(gaps))), "gaps": gaps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phantom", choices=("fluo", "scan"), default="fluo")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--budget", type=float, default=90.0, help="training seconds per row")
    ap.add_argument("--steps", type=int, help="fixed training steps per row instead of --budget")
    ap.add_argument("--rows", default="curve,single,pair,n2n,bm3d")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    global STEPS
    STEPS = args.steps
    clean, h1, h2, var = phantom(args.phantom, args.images, args.size)
    if args.phantom == "fluo":  # clipping changes the variance: measure the truth over many draws
        var = _clipped_variance(clean)
    rows, t0 = {}, time.time()
    for row in args.rows.split(","):
        t = time.time()
        if row == "curve":
            rows[row] = curve_check(h1, h2, var)
        elif row == "single":
            rows[row] = run_single(h1, clean, args.budget, args.seed)
        elif row == "pair":
            rows[row] = run_pair_mean(h1, h2, clean, args.budget, args.seed)
        elif row == "n2n":
            rows[row] = run_n2n(h1, h2, clean, args.budget, args.seed, "tiny")
        elif row == "bm3d":
            rows[row] = run_bm3d(h1, h2, clean, args.phantom)
        rows[row]["seconds"] = round(time.time() - t, 1)
        print(row, {k: v for k, v in rows[row].items() if k not in ("gaps", "noise")}, flush=True)
    payload = {"phantom": args.phantom, "images": args.images, "size": args.size, "budget": args.budget, "rows": rows}
    payload["total_seconds"] = round(time.time() - t0, 1)
    if args.name:
        print("wrote", record(args.name, payload))


def _clipped_variance(clean):
    out = []
    for i, s in enumerate(clean):
        rng = np.random.default_rng(999 + i)
        draws = np.stack([np.clip(rng.poisson(s) + rng.normal(0, 2.0, s.shape), 0, None) for _ in range(48)])
        out.append(draws.var(0, ddof=1))
    return out


if __name__ == "__main__":
    main()
