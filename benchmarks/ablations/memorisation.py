"""Does long training on little data memorise the noise? Train on noisy images for each
budget, then measure on the same images (what a user denoises):

- the correlation between the prior mean's error and each pixel's own noise (0 for a
  network that has not fit the training noise: it never sees the pixel it predicts), over
  the pixels held out of the loss and over the others;
- the predicted prior variance against the prior mean's true squared error;
- the posterior mean with the predicted prior variance scaled by 0.5-3 (does a
  miscalibrated variance explain the loss?).

    python benchmarks/ablations/memorisation.py --data DATA/bsd68_gray --budgets 120 480 --images 0 --init none \\
        --name memorisation_bsd68_test001_scratch

``--track STEPS`` instead trains once for STEPS steps, keeping the last weights, and at each
of 24 validations records the held-out validation loss beside the prior and posterior PSNR
and both correlations (bfloat16 network where the CPU has it, as in training):

    python benchmarks/ablations/memorisation.py --data DATA/bsd68_gray --track 4800 --images 0 --init none \
        --name memorisation_bsd68_test001_track

Gaussian sigma 25 (seed 1000 + index), one view (no test-time averaging), float32 network.
The engine's defaults hold 1/16 of the pixels out of the loss and keep the weights of the
lowest held-out loss; ``--no-keep-best`` keeps the last step's weights instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
from common import add_noise, load_clean, psnr8, record  # noqa: E402


def measure(model, clean, noisy, holdout) -> dict:
    from napari_ssdn.core import denoise

    sig = model.noise_params_data()["sigma"]
    rows: dict[str, list[float]] = {}
    for c, y in zip(clean, noisy, strict=True):
        o = denoise(model, y, "YX", ("prior-mean", "posterior-mean", "posterior-std"), tta=False, mixed_precision=False)
        mu, post, ps = (o[k].astype(np.float64) for k in ("prior-mean", "posterior-mean", "posterior-std"))
        # Gaussian posterior: ps^2 = s2 sigma^2 / (s2 + sigma^2), so the prior variance is:
        s2 = ps**2 * sig**2 / np.maximum(sig**2 - ps**2, 1e-12)
        err, noise = mu - c, y - c
        held = holdout.window((0, 0), c.shape) if holdout is not None else np.zeros(c.shape, bool)
        row = {
            "prior": psnr8(mu, c),
            "posterior": psnr8(post, c),
            "corr_err_noise": float(np.corrcoef(err.ravel(), noise.ravel())[0, 1]),
            "corr_err_noise_trained": float(np.corrcoef(err[~held], noise[~held])[0, 1]),
            "s2_over_err2": float(s2.mean() / (err**2).mean()),
        }
        if held.any():
            row["corr_err_noise_held_out"] = float(np.corrcoef(err[held], noise[held])[0, 1])
        for k in (0.5, 0.75, 1.5, 2.0, 3.0):
            row[f"posterior_var_x{k:g}"] = psnr8((k * s2 * y + sig**2 * mu) / (k * s2 + sig**2), c)
        for key, v in row.items():
            rows.setdefault(key, []).append(v)
    return {"sigma_learned": round(sig * 255, 2), **{k: round(float(np.mean(v)), 4) for k, v in rows.items()}}


def track(noisy, clean, steps: int, init: str, lr) -> list[dict]:
    """Train ``steps`` steps on one image; score the model at every validation."""
    from napari_ssdn.core import TrainConfig, Trainer, denoise

    config = TrainConfig(
        noise="gaussian", iterations=steps, init=init, lr=lr, val_every=max(steps // 24, 10), keep_best=False
    )
    trainer = Trainer(noisy, "YX", config)
    held = trainer.holdout.window((0, 0), clean.shape)
    rows = []
    for rec in trainer.run():
        if rec.val_loss is None:
            continue
        out = denoise(trainer.model, noisy, "YX", ("prior-mean", "posterior-mean"), tta=False)
        trainer.model.train()
        mu, post = out["prior-mean"].astype(np.float64), out["posterior-mean"].astype(np.float64)
        err, noise = mu - clean, noisy - clean
        rows.append(
            {
                "step": rec.step,
                "val_loss": round(rec.val_loss, 5),
                "sigma": round(rec.noise_params["sigma"] * 255, 2),
                "prior": round(psnr8(mu, clean), 3),
                "posterior": round(psnr8(post, clean), 3),
                "corr_err_noise_held_out": round(float(np.corrcoef(err[held], noise[held])[0, 1]), 4),
                "corr_err_noise_trained": round(float(np.corrcoef(err[~held], noise[~held])[0, 1]), 4),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    from napari_ssdn.core import TrainConfig, Trainer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", required=True, help="folder of clean images, e.g. DATA/bsd68_gray (see benchmarks/README.md)"
    )
    ap.add_argument("--images", type=int, nargs="+", default=[0], help="indices of the images to train on")
    ap.add_argument("--budgets", type=float, nargs="+", default=[120, 480], help="training seconds")
    ap.add_argument("--init", default="none", help="none, auto or generic")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--track", type=int, help="steps of one run scored at every validation (instead of --budgets)")
    ap.add_argument("--no-keep-best", dest="keep_best", action="store_false", help="keep the last step's weights")
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)

    data = load_clean(args.data, max(args.images) + 1)
    clean = [data[i][1] for i in args.images]
    noisy = [add_noise(c, "gaussian", 25, 1000 + i) for i, c in zip(args.images, clean, strict=True)]
    if args.track:
        rows = track(noisy[0], clean[0], args.track, args.init, args.lr)
        path = record(args.name, {"images": [data[args.images[0]][0]], "track": rows})
        print(f"recorded {path}")
        return
    results = {}
    for budget in args.budgets:
        config = TrainConfig(noise="gaussian", time_limit=budget, init=args.init, lr=args.lr, keep_best=args.keep_best)
        trainer = Trainer(noisy, ["YX"] * len(noisy), config)
        for _ in trainer.run():
            pass
        # Passes over the data: crop pixels seen over the images' pixels.
        seen = trainer.step * trainer.config.batch_for(trainer.device) * float(np.prod(trainer.patch_shape))
        key = f"{budget:g}"
        results[key] = {
            "steps": trainer.step,
            "kept_step": trainer.kept_step,
            "epochs": round(seen / sum(y.size for y in noisy), 1),
            **measure(trainer.model, clean, noisy, trainer.holdout),
        }
        print(f"{key} s: {results[key]}", flush=True)
    path = record(args.name, {"images": [data[i][0] for i in args.images], "results": results})
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
