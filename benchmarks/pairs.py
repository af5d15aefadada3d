"""Two noisy observations of one field (even/odd halves, repeated frames) on documented
phantoms: the noise measured from the pair against the truth, and denoising with the pair
against the single-image defaults, a plain Noise2Noise network of the same width and budget
(the cryoCARE recipe: one half to the other, the two outputs averaged) and BM3D given the true
noise of the halves' mean.

    python benchmarks/pairs.py --phantom fluo --budget 90 --name pairs_fluo_90s
    python benchmarks/pairs.py --phantom scan --budget 90 --name pairs_scan_90s
    python benchmarks/pairs.py --phantom vol --budget 120 --name pairs_vol_120s

Phantoms (``--images`` of ``--size`` pixels, seeds fixed; two independent noise draws each):

- ``fluo``: fluorescence-like, signal 2 + 60 x :func:`napari_ssdn.samples.clean_cells`
  photons, Poisson-Gaussian noise (gain 1, read variance 4) clipped at zero, so that the
  variance is convex in the signal near zero.
- ``scan``: EM-like, signal :func:`clean_cells`, Gaussian noise of std 0.35 correlated along x
  by a 1 x 5 box (a scan direction): neighbour correlation 0.8 at lag 1.
- ``vol``: tomogram-like, :func:`napari_ssdn.samples.clean_volume` of 32 x 96 x 96 voxels
  (one volume), Gaussian noise of std 0.3 correlated along every axis by a 3 x 3 x 3 box
  (neighbour correlation 2/3), as reconstruction filters and binning leave it.

Rows: ``single``, the defaults on one half; ``pair``, the defaults given both halves (``ssdn
train --pair``: the noise measured from them, the method chosen from it); ``mean`` and ``n2n``
the two methods forced (``n2n`` is the plain recipe: the same width, random start); ``bm3d``
(BM4D for ``vol``). ``quality`` compares the PSNR read from the halves (no clean image) with
the true one of each half denoised alone.

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

#: Fixed steps per row instead of a time budget (``--steps``): rows compare on a shared machine.
STEPS = None


def _box_noise(shape, box, std, rng):
    """Gaussian noise of per-pixel ``std`` made by a box mean of white noise (``box`` per axis)."""
    w = rng.normal(0, 1, tuple(n + b - 1 for n, b in zip(shape, box, strict=True)))
    out = np.zeros(shape)
    for offset in np.ndindex(*box):
        out += w[tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))]
    return std * out / np.sqrt(np.prod(box))


def phantom(kind: str, n: int, size: int):
    """``(clean, half1, half2, true_variance_of_one_half, axes)`` for ``kind``."""
    from napari_ssdn.samples import clean_cells, clean_volume

    clean, h1, h2, var = [], [], [], []
    for i in range(n if kind != "vol" else 1):
        rng = np.random.default_rng(100 + i)
        if kind == "fluo":
            s = 2.0 + 60.0 * clean_cells(size, seed=i)

            def draw(s=s, rng=rng):
                return np.clip(rng.poisson(s) + rng.normal(0, 2.0, s.shape), 0, None)

            var.append(_clipped_variance(s, i))
        elif kind == "scan":
            s = clean_cells(size, seed=i).astype(np.float64)

            def draw(s=s, rng=rng):
                return s + _box_noise(s.shape, (1, 5), 0.35, rng)

            var.append(np.full_like(s, 0.35**2))
        elif kind == "vol":
            s = clean_volume((32, 96, 96), seed=i).astype(np.float64)

            def draw(s=s, rng=rng):
                return s + _box_noise(s.shape, (3, 3, 3), 0.3, rng)

            var.append(np.full_like(s, 0.3**2))
        else:
            raise SystemExit(f"unknown phantom {kind!r}")
        clean.append(s)
        h1.append(draw().astype(np.float32))
        h2.append(draw().astype(np.float32))
    return clean, h1, h2, var, "ZYX" if kind == "vol" else "YX"


def _clipped_variance(s, i, draws=48):
    """Clipping changes the variance: the truth, measured over many draws."""
    rng = np.random.default_rng(999 + i)
    return np.stack([np.clip(rng.poisson(s) + rng.normal(0, 2.0, s.shape), 0, None) for _ in range(draws)]).var(0)


def psnr(x, clean) -> float:
    from napari_ssdn.samples import psnr as _psnr

    return float(_psnr(x, clean, peak=float(np.ptp(clean))))


def train(images, axes, budget, seed, pair=None, **config):
    from napari_ssdn.core import TrainConfig, Trainer

    budget_kw = {"iterations": STEPS} if STEPS else {"time_limit": budget}
    ndim = len(axes.replace("C", ""))
    cfg = TrainConfig(seed=seed, ndim=ndim, **budget_kw, **config)
    trainer = Trainer(images, [axes] * len(images), cfg, pair=pair)
    for _ in trainer.run():
        pass
    return trainer


def run_single(h1, h2, clean, axes, budget, seed):
    """The single-image defaults on one half."""
    from napari_ssdn.core import denoise

    t = train(h1, axes, budget, seed)
    outs = [denoise(t.model, y, axes, ("prior-mean", "posterior-mean")) for y in h1]
    return _scores(outs, clean, t)


def run_pair(h1, h2, clean, axes, budget, seed, method="auto"):
    """The defaults given both halves (``method``: auto, or one forced), and the quality read
    from the halves against the truth."""
    from napari_ssdn.core.infer.pairs import denoise_pair

    t = train(h1, axes, budget, seed, pair=h2, pair_method=method)
    outs, est, true = [], [], []
    for a, b, c in zip(h1, h2, clean, strict=True):
        out, q = denoise_pair(t.model, a, b, axes)
        outs.append(out)
        est.append(q.mse)
        true.append(_half_mse(t.model, a, b, c, axes))
    return {
        "posterior": float(np.mean([psnr(o, c) for o, c in zip(outs, clean, strict=True)])),
        "steps": t.step,
        "method": t.pair.method,
        "blind": list(t.config.blind),
        "noise": t.pair.to_dict(),
        "quality": {"estimated_mse": float(np.mean(est)), "true_mse": float(np.mean(true))},
    }


def _half_mse(model, a, b, clean, axes):
    """The true error of each half denoised alone (what the quality estimate reads)."""
    from napari_ssdn.core import denoise
    from napari_ssdn.core.infer.pairs import _half_params

    kw = {}
    if model.config.mode == "ssdn":
        kw["noise_params"] = _half_params(model.config.noise, model.noise_params_data())
    d1, d2 = (denoise(model, y, axes, **kw) for y in (a, b))
    return (np.mean((d1 - clean) ** 2) + np.mean((d2 - clean) ** 2)) / 2


def run_n2n(h1, h2, clean, axes, budget, seed):
    """The plain Noise2Noise recipe: one half to the other, random start, outputs averaged."""
    from napari_ssdn.core import TrainConfig, Trainer, denoise

    budget_kw = {"iterations": STEPS} if STEPS else {"time_limit": budget}
    cfg = TrainConfig(seed=seed, ndim=len(axes), mode="supervised", init="none", width="tiny", **budget_kw)
    t = Trainer(h1 + h2, [axes] * (2 * len(h1)), cfg, targets=h2 + h1)
    for _ in t.run():
        pass
    outs = [(denoise(t.model, a, axes) + denoise(t.model, b, axes)) / 2 for a, b in zip(h1, h2, strict=True)]
    return {"posterior": float(np.mean([psnr(o, c) for o, c in zip(outs, clean, strict=True)])), "steps": t.step}


def run_bm3d(h1, h2, clean, kind):
    """BM3D (BM4D for volumes) on the halves' mean given its true noise: the spectrum of the
    box (scan, vol), or the generalised Anscombe transform of Poisson-Gaussian noise (fluo)."""
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # bm3d/bm4d 4.x call np.trapz, which NumPy 2.4 removed
    scores = []
    for a, b, c in zip(h1, h2, clean, strict=True):
        m = (a.astype(np.float64) + b) / 2
        if kind == "fluo":
            import bm3d

            gain, read = 0.5, 4.0 / 2  # the mean of two halves: Poisson of gain 1/2, half the read variance
            z = 2 / gain * np.sqrt(np.maximum(gain * m + 3 / 8 * gain**2 + read, 0))
            out = _inverse_gat(bm3d.bm3d(z, sigma_psd=1.0), gain, read)
        else:
            box, std = ((1, 5), 0.35) if kind == "scan" else ((3, 3, 3), 0.3)
            psd = (std**2 / 2) * _box_psd(m.shape, box) * m.size
            if kind == "scan":
                import bm3d

                out = bm3d.bm3d(m, sigma_psd=psd)
            else:
                import bm4d

                out = bm4d.bm4d(m, sigma_psd=psd)
        scores.append(psnr(out, c))
    return {"posterior": float(np.mean(scores))}


def _box_psd(shape, box):
    """|FFT|^2 of the unit-variance box kernel on a canvas of ``shape`` (centred, wrapped)."""
    k = np.zeros(shape)
    k[tuple(slice(0, b) for b in box)] = 1 / np.sqrt(np.prod(box))
    k = np.roll(k, tuple(-(b // 2) for b in box), axis=tuple(range(len(shape))))
    return np.abs(np.fft.fftn(k)) ** 2


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


def curve_check(h1, h2, var, ndim):
    """Per-bin noise variance from the pair against the true variance of one half (mean over
    the bin's pixels)."""
    from napari_ssdn.core.noise.pairs import _smoothed, pair_noise

    pn = pair_noise(h1, h2, ndim)
    level = np.concatenate(
        [_smoothed(((a.astype(np.float64) + b) / 2)[None]).ravel() for a, b in zip(h1, h2, strict=True)]
    )
    truth = np.concatenate([v.ravel() for v in var])
    edges = np.unique(np.quantile(level, np.linspace(0, 1, len(pn.level) + 1)))
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    gaps = [float(v / truth[idx == i].mean() - 1) for i, v in enumerate(pn.variance)]
    return {
        "bins": len(gaps),
        "worst_relative_gap": float(np.max(np.abs(gaps))),
        "gaps": gaps,
        "correlation": pn.correlation,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phantom", choices=("fluo", "scan", "vol"), default="fluo")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--budget", type=float, default=90.0, help="training seconds per row")
    ap.add_argument("--steps", type=int, help="fixed training steps per row instead of --budget")
    ap.add_argument("--rows", default="curve,single,pair,mean,n2n,bm3d")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    global STEPS
    STEPS = args.steps
    clean, h1, h2, var, axes = phantom(args.phantom, args.images, args.size)
    runs = {
        "curve": lambda: curve_check(h1, h2, var, len(axes)),
        "single": lambda: run_single(h1, h2, clean, axes, args.budget, args.seed),
        "pair": lambda: run_pair(h1, h2, clean, axes, args.budget, args.seed),
        "mean": lambda: run_pair(h1, h2, clean, axes, args.budget, args.seed, "mean"),
        "noise2noise": lambda: run_pair(h1, h2, clean, axes, args.budget, args.seed, "noise2noise"),
        "n2n": lambda: run_n2n(h1, h2, clean, axes, args.budget, args.seed),
        "bm3d": lambda: run_bm3d(h1, h2, clean, args.phantom),
    }
    rows, t0 = {}, time.time()
    for row in args.rows.split(","):
        t = time.time()
        rows[row] = runs[row]()
        rows[row]["seconds"] = round(time.time() - t, 1)
        print(row, {k: v for k, v in rows[row].items() if k not in ("gaps", "noise")}, flush=True)
    payload = {"phantom": args.phantom, "images": len(h1), "budget": args.budget, "steps": args.steps, "rows": rows}
    payload["total_seconds"] = round(time.time() - t0, 1)
    if args.name:
        print("wrote", record(args.name, payload))


if __name__ == "__main__":
    main()
