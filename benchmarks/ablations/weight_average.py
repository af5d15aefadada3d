"""Does an exponential moving average (EMA) of the weights beat the weights the trainer keeps?
A paired ablation: one training run with the engine's defaults, during which EMA copies of
the weights with several horizons are kept on the side; at the end every set of weights
denoises the same noisy images.

    python benchmarks/ablations/weight_average.py --data DATA/bsd68_gray --budget 900

Horizons are half-lives as a share of the run's planned steps (the planned total of a
time-limited run is re-estimated every step, as the learning-rate schedule does). Rows:
the weights the trainer keeps (lowest held-out loss, the default) and each EMA, with their
held-out validation loss (what the trainer could select on) and their posterior / prior PSNR.
Gaussian noise as in table.py (seed 1000 + index).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
from common import add_noise, load_clean, psnr8, record  # noqa: E402

from napari_ssdn.core import TrainConfig, Trainer, denoise  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", required=True, help="folder of clean images, e.g. DATA/bsd68_gray (see benchmarks/README.md)"
    )
    p.add_argument("--limit", type=int)
    p.add_argument("--level", type=float, default=25.0)
    p.add_argument("--budget", type=float, default=900, help="training seconds")
    p.add_argument(
        "--half-lives",
        type=float,
        nargs="+",
        default=[0.01, 0.03, 0.1],
        help="EMA half-lives as shares of the planned steps",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)

    data = load_clean(args.data, args.limit, gray=True)
    clean = [c.astype(np.float32) for _, c in data]
    noisy = [add_noise(c, "gaussian", args.level, 1000 + i) for i, c in enumerate(clean)]
    trainer = Trainer(noisy, ["YX"] * len(noisy), TrainConfig(time_limit=args.budget, seed=args.seed))
    model = trainer.model
    names = [n for n, t in model.state_dict().items() if t.is_floating_point()]
    live = [model.state_dict()[n] for n in names]  # views of the live tensors
    emas = {h: [t.detach().clone() for t in live] for h in args.half_lives}
    t0 = time.perf_counter()
    for rec in trainer.run():
        if rec.done:
            break  # the trainer has already restored its kept weights into the model
        for h, ema in emas.items():
            decay = 0.5 ** (1.0 / max(1.0, h * rec.total))
            torch._foreach_lerp_(ema, [t.detach() for t in live], 1.0 - decay)
        if rec.step % 500 == 0:
            print(f"  step {rec.step}/{rec.total} loss {rec.loss:.4f}", file=sys.stderr)
    kept = {k: v.detach().clone() for k, v in model.state_dict().items()}
    print(f"{trainer.step} steps, step {trainer.kept_step} kept, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    variants = {"kept (default)": kept}
    for h, ema in emas.items():
        state = dict(kept)
        state.update(zip(names, ema, strict=True))
        variants[f"EMA half-life {h:g}"] = state
    rows = {}
    for label, state in variants.items():
        model.load_state_dict(state)
        val = trainer.validate()
        model.eval()
        post, prior = [], []
        for y, c in zip(noisy, clean, strict=True):
            out = denoise(model, y, "YX", ("posterior-mean", "prior-mean"))
            post.append(psnr8(out["posterior-mean"], c))
            prior.append(psnr8(out["prior-mean"], c))
        rows[label] = {
            "val_loss": val,
            "posterior": post,
            "prior": prior,
            "sigma": float(model.noise_params_data()["sigma"]) * 255,
        }
        print(
            f"  {label:22s} val {val:.6f}  posterior {np.mean(post):6.3f}  prior {np.mean(prior):6.3f}  "
            f"sigma {rows[label]['sigma']:.2f}"
        )
    if args.name:
        out = record(
            args.name,
            {
                "budget_seconds": args.budget,
                "steps": trainer.step,
                "kept_step": trainer.kept_step,
                "images": [n for n, _ in data],
                "rows": rows,
            },
        )
        print(f"results: {out}")


if __name__ == "__main__":
    main()
