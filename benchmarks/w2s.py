"""Real widefield fluorescence: W2S single frames against their 400-frame averages.

    python benchmarks/w2s.py --data DATA/w2s --budget 120 --name w2s_120s

DATA/w2s holds ``noisy/`` and ``clean/`` with the same file names, ``w2s_FFF_C.tif`` (field
of view FFF, channel C; 512 x 512, 8-bit). One model per channel, trained on that
channel's noisy images only with the defaults, for ``--budget`` seconds (or ``--steps``).

Each file was exported with its own intensity scaling, so every output is scored after a
least-squares affine fit to the reference (PSNR on the reference's 8-bit scale).

Rows: the noisy input; the defaults' prior mean and posterior mean; the posterior mean of
the same trained prior with the noise variance measured against the reference (``oracle
noise``: the variance of noisy minus the fitted reference in brightness bins, linearly
interpolated at the prior mean); the best gain per cell of a grid of the prior's variance
and brightness, fitted against the reference (``bound``: what any noise model can add to
this prior); BM3D
through the generalised Anscombe transform with the classical (a, b) estimate (``bm3d``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402


def load_channels(root: Path) -> dict[int, tuple[list[str], list[np.ndarray], list[np.ndarray]]]:
    """Channel -> (names, noisy images, references), float32 scaled by 1/255."""
    import tifffile

    out: dict[int, tuple[list, list, list]] = {}
    for f in sorted((root / "noisy").glob("*.tif")):
        ch = int(f.stem.rsplit("_", 1)[1])
        names, noisy, clean = out.setdefault(ch, ([], [], []))
        names.append(f.stem)
        noisy.append(tifffile.imread(f).astype(np.float32) / 255)
        clean.append(tifffile.imread(root / "clean" / f.name).astype(np.float32) / 255)
    if not out:
        sys.exit(f"no noisy/*.tif in {root}")
    return out


def affine_psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR (peak 1) of ``x`` after the least-squares affine map onto ``ref``."""
    a = np.stack([x.ravel().astype(np.float64), np.ones(x.size)], 1)
    coef = np.linalg.lstsq(a, ref.ravel().astype(np.float64), rcond=None)[0]
    fit = np.clip((a @ coef).reshape(x.shape), 0, 1)
    return float(10 * np.log10(1.0 / np.mean((fit - ref) ** 2)))


def oracle_variance(noisy: list[np.ndarray], clean: list[np.ndarray], bins: int = 24):
    """The noise variance against the signal, measured from the references: each reference
    mapped affinely onto its noisy frame, variance of the difference per quantile bin."""
    xs, rs = [], []
    for y, c in zip(noisy, clean, strict=True):
        a = np.stack([c.ravel().astype(np.float64), np.ones(c.size)], 1)
        x = a @ np.linalg.lstsq(a, y.ravel().astype(np.float64), rcond=None)[0]
        xs.append(x)
        rs.append(y.ravel() - x)
    x, r = np.concatenate(xs), np.concatenate(rs)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    centre = np.array([x[idx == i].mean() for i in range(edges.size - 1)])
    var = np.array([r[idx == i].var() for i in range(edges.size - 1)])
    return centre, var


def oracle_posterior(model, y: np.ndarray, curve) -> np.ndarray:
    """Posterior mean of ``y`` (data units) under the model's prior, with the noise variance
    ``curve`` (data units) at the prior mean, averaged over the 8 views as inference does."""
    import torch

    from napari_ssdn.core.infer.outputs import _view_outputs, to_tensor
    from napari_ssdn.core.noise.bayes import split_prior

    cfg = model.config
    m = cfg.arch.multiple
    pad = [(0, (-n) % m) for n in y.shape]
    yn = np.pad((y - cfg.offset) / cfg.scale, pad, mode="reflect").astype(np.float32)[..., None]
    t = to_tensor(yn, torch.device("cpu"))
    cx, cv = (torch.as_tensor(v, dtype=torch.float64) for v in curve)
    acc = 0.0
    with torch.no_grad():
        for out in _view_outputs(model, t, 8):
            mu, sx = split_prior(out, 1)
            mu_d = (mu[..., 0] * cfg.scale + cfg.offset).contiguous()
            var = _interp(mu_d, cx, cv) / cfg.scale**2
            yy = t.movedim(1, -1)[..., 0].to(torch.float64)
            s = sx[..., 0, 0]
            acc = acc + mu[..., 0] + s / (s + var) * (yy - mu[..., 0])
    res = (acc / 8)[0].numpy() * cfg.scale + cfg.offset
    return res[: y.shape[0], : y.shape[1]].astype(np.float32)


def shrinkage_bound(model, y: np.ndarray, ref: np.ndarray, bins: int = 16) -> tuple[float, float]:
    """PSNR of the single-view prior mean, and of the best posterior of the form
    ``mu + g (y - mu)`` with one gain ``g`` per cell of a ``bins`` x ``bins`` grid of the
    prior's variance and the prior mean's brightness, fitted against the reference. A
    Gaussian posterior's gain ``s / (s + v(mu))`` is such a form for any noise variance
    curve ``v``, so this bounds what a better noise model can add to this prior."""
    import torch

    from napari_ssdn.core.noise.bayes import split_prior

    cfg = model.config
    m = cfg.arch.multiple
    pad = [(0, (-n) % m) for n in y.shape]
    yn = np.pad((y - cfg.offset) / cfg.scale, pad, mode="reflect").astype(np.float32)
    with torch.no_grad():
        mu, sx = split_prior(model(torch.from_numpy(yn)[None, None]), 1)
    h, w = y.shape
    mu = mu[0, :h, :w, 0].numpy() * cfg.scale + cfg.offset
    a = np.stack([ref.ravel(), np.ones(ref.size)], 1)
    x = a @ np.linalg.lstsq(a, y.ravel().astype(np.float64), rcond=None)[0]  # the reference in y's units
    r, e = (y - mu).ravel(), x - mu.ravel()
    cell = _quantile_bins(sx[0, :h, :w, 0, 0].numpy().ravel(), bins) * bins + _quantile_bins(mu.ravel(), bins)
    best = mu.ravel().copy()
    for i in np.unique(cell):
        k = cell == i
        g = float(np.clip((r[k] * e[k]).sum() / max((r[k] * r[k]).sum(), 1e-12), 0, 1))
        best[k] += g * r[k]
    return affine_psnr(mu, ref), affine_psnr(best.reshape(h, w), ref)


def _quantile_bins(v: np.ndarray, bins: int) -> np.ndarray:
    edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)))
    return np.clip(np.searchsorted(edges, v, side="right") - 1, 0, edges.size - 2)


def _interp(x, xp, fp):
    """Piecewise-linear interpolation, constant beyond the ends (torch)."""
    import torch

    i = torch.clamp(torch.searchsorted(xp, x.reshape(-1)), 1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x.reshape(-1) - x0) / (x1 - x0)).clamp(0, 1)
    return (f0 + w * (f1 - f0)).reshape(x.shape)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="W2S folder with noisy/ and clean/")
    p.add_argument("--budget", type=float, default=120, help="training seconds per channel")
    p.add_argument("--steps", type=int, default=None, help="training steps per channel (instead of --budget)")
    p.add_argument("--channels", default="0,1,2")
    p.add_argument("--rows", default="auto,oracle,bound,bm3d")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    from fmd import gat_bm3d

    from napari_ssdn.core import TrainConfig, Trainer, denoise
    from napari_ssdn.core.noise.estimate import estimate_noise

    rows = set(args.rows.split(","))
    data = load_channels(Path(args.data))
    results, runs = {}, {}
    for ch in (int(c) for c in args.channels.split(",")):
        names, noisy, clean = data[ch]

        def score(xs, clean=clean):
            return round(float(np.mean([affine_psnr(x, c) for x, c in zip(xs, clean, strict=True)])), 3)

        res, info = {"noisy input": score(noisy)}, {"images": len(noisy)}
        if rows & {"auto", "oracle", "bound"}:
            budget = {"iterations": args.steps} if args.steps else {"time_limit": args.budget}
            trainer = Trainer(noisy, ["YX"] * len(noisy), TrainConfig(seed=args.seed, **budget))
            for _ in trainer.run():
                pass
            model = trainer.model
            t0 = time.perf_counter()
            out = [denoise(model, y, "YX", ("prior-mean", "posterior-mean")) for y in noisy]
            info["auto"] = {
                "steps": trainer.step,
                "noise": model.config.noise,
                "learned": model.noise_params_data(),
                "blind_region": list(model.config.region),
                "choices": trainer.choices.to_dict(),
                "infer_seconds": round(time.perf_counter() - t0, 1),
            }
            res["defaults: prior mean"] = score([o["prior-mean"] for o in out])
            res["defaults: posterior mean"] = score([o["posterior-mean"] for o in out])
            if "oracle" in rows:
                curve = oracle_variance(noisy, clean)
                info["oracle_curve"] = {"mean": curve[0].round(4).tolist(), "variance": curve[1].tolist()}
                res["posterior mean, oracle noise"] = score([oracle_posterior(model, y, curve) for y in noisy])
            if "bound" in rows:
                pairs = [shrinkage_bound(model, y, c) for y, c in zip(noisy, clean, strict=True)]
                res["one view: prior mean"] = round(float(np.mean([q[0] for q in pairs])), 3)
                bound = round(float(np.mean([q[1] for q in pairs])), 3)
                res["one view: best gain per prior variance and brightness (bound)"] = bound
        if "bm3d" in rows:
            est = estimate_noise([y[None, ..., None] for y in noisy], "poisson-gaussian")
            res["BM3D (generalised Anscombe, a and b estimated)"] = score(
                [gat_bm3d(y, est["a"], max(est["b"], 1e-8)) for y in noisy]
            )
            info["bm3d"] = {"a": est["a"], "b": est["b"]}
        results[f"channel {ch}"], runs[f"channel {ch}"] = res, info
        print(ch, res, info, flush=True)
    mean = {k: round(float(np.mean([r[k] for r in results.values()])), 3) for k in next(iter(results.values()))}
    print("mean", mean, flush=True)
    if args.name:
        payload = {"budget_seconds": args.budget, "steps": args.steps, "psnr": results, "mean": mean, "runs": runs}
        print("recorded", record(args.name, payload))


if __name__ == "__main__":
    main()
