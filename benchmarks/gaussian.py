"""Gaussian-noise benchmark: noisy / prior mean / posterior mean (sigma known or learned) / BM3D.

Examples (run from the repository root)::

    # one model per image, 5 minutes each, sigma learned
    python benchmarks/gaussian.py --data DATA/set12 --size 256 --per-image --budget 300
    # one model on all noisy BSD68 images, 15 minutes, sigma known and learned, with BM3D
    python benchmarks/gaussian.py --data DATA/bsd68_gray --budget 900 --known --learned --bm3d

DATA is the folder of the benchmark data sets (benchmarks/README.md).
Protocol (docs/design.md, "Benchmark protocol"): clean uint8 / 255, Gaussian noise with a fixed seed per image,
never clipped; PSNR on 8-bit-rounded outputs. Training sees the noisy images only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import add_gaussian, load_clean, psnr8, record  # noqa: E402


def run_ssdn(noisy: list[np.ndarray], sigma: float | None, args) -> tuple[list, list, dict]:
    from napari_ssdn.core import TrainConfig, Trainer, denoise

    extra = {"init": args.init} if args.init else {}
    cfg = TrainConfig(
        noise_params={"sigma": sigma} if sigma else {},
        time_limit=args.budget,
        iterations=args.iterations,
        patch=args.patch,
        batch=args.batch,
        width=args.width,
        lr=args.lr,
        seed=args.seed,
        **extra,
    )
    trainer = Trainer(noisy, ["YX"] * len(noisy), cfg)
    t0 = time.perf_counter()
    for rec in trainer.run():
        if not args.quiet and (rec.step % 200 == 0 or rec.done):
            print(
                f"  step {rec.step}/{rec.total} loss {rec.loss:.4f} val {rec.val_loss} sigma "
                f"{rec.noise_params.get('sigma', 0) * 255:.2f}",
                file=sys.stderr,
            )
    train_s = time.perf_counter() - t0
    priors, posts = [], []
    t0 = time.perf_counter()
    for y in noisy:
        res = denoise(trainer.model, y, "YX", ("prior-mean", "posterior-mean"), mixed_precision=not args.fp32_inference)
        priors.append(res["prior-mean"])
        posts.append(res["posterior-mean"])
    info = {
        "steps": trainer.step,
        "train_seconds": round(train_s, 1),
        "infer_seconds": round(time.perf_counter() - t0, 1),
        "sigma_learned_255": round(trainer.model.noise_params_data()["sigma"] * 255, 3),
    }
    return priors, posts, info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of clean images, e.g. DATA/set12 (see benchmarks/README.md)")
    p.add_argument("--sigma", type=float, default=25.0, help="noise std on the 0-255 scale")
    p.add_argument("--limit", type=int)
    p.add_argument("--size", type=int, help="only square images of this side")
    p.add_argument("--budget", type=float, default=300, help="training seconds per model")
    p.add_argument("--iterations", type=int)
    p.add_argument("--per-image", action="store_true", help="one model per image instead of one for the set")
    p.add_argument("--known", action="store_true", help="row with sigma given")
    p.add_argument("--learned", action="store_true", help="row with sigma learned (default if neither)")
    p.add_argument("--bm3d", action="store_true", help="BM3D row (needs the bm3d package)")
    p.add_argument("--patch", type=int, default=None, help="default: the engine's")
    p.add_argument("--batch", type=int, default=None, help="default: the engine's")
    p.add_argument("--width", default=None, help="default: the engine's (tiny on a CPU)")
    p.add_argument("--lr", type=float, default=None, help="default: the engine's")
    p.add_argument("--init", default=None, help="warm start: 'generic' or a model file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fp32-inference", action="store_true", help="float32 network at inference (default: bf16 where fast)"
    )
    p.add_argument("--name", default=None, help="results file name")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if not args.known and not args.learned:
        args.learned = True
    sigma = args.sigma / 255.0
    data = load_clean(args.data, args.limit, args.size)
    clean = [c for _, c in data]
    noisy = [add_gaussian(c, sigma, 1000 + i) for i, c in enumerate(clean)]
    rows = {"noisy": [psnr8(y, c) for y, c in zip(noisy, clean, strict=True)]}
    infos = {}
    groups = [[i] for i in range(len(clean))] if args.per_image else [list(range(len(clean)))]
    for label, given in (("known", sigma if args.known else None), ("learned", None if args.learned else False)):
        if given is False or (label == "known" and not args.known):
            continue
        pri, post, inf = [None] * len(clean), [None] * len(clean), []
        for g in groups:
            pr, po, info = run_ssdn([noisy[i] for i in g], given, args)
            for j, i in enumerate(g):
                pri[i], post[i] = pr[j], po[j]
            inf.append(info)
            if not args.quiet:
                print(
                    f"{label} {[data[i][0] for i in g][:3]}: prior "
                    f"{np.mean([psnr8(pr[j], clean[i]) for j, i in enumerate(g)]):.2f} post "
                    f"{np.mean([psnr8(po[j], clean[i]) for j, i in enumerate(g)]):.2f} {info}",
                    file=sys.stderr,
                )
        rows[f"prior mean (sigma {label})"] = [psnr8(x, c) for x, c in zip(pri, clean, strict=True)]
        rows[f"posterior mean (sigma {label})"] = [psnr8(x, c) for x, c in zip(post, clean, strict=True)]
        infos[label] = inf
    if args.bm3d:
        import bm3d

        t0 = time.perf_counter()
        rows["BM3D (sigma known)"] = [
            psnr8(bm3d.bm3d(y, sigma_psd=sigma), c) for y, c in zip(noisy, clean, strict=True)
        ]
        infos["bm3d_seconds"] = round(time.perf_counter() - t0, 1)
    print(
        f"{len(clean)} images from {args.data}, sigma {args.sigma:g}, budget {args.budget:g} s "
        f"{'per image' if args.per_image else 'for the set'}, width {args.width}"
    )
    for k, v in rows.items():
        print(f"  {k:32s} {np.mean(v):6.2f} dB")
    name = args.name or f"gaussian_{Path(args.data).name}_{int(args.budget)}s{'_per_image' if args.per_image else ''}"
    path = record(
        name,
        {
            "images": [n for n, _ in data],
            "mean_psnr": {k: round(float(np.mean(v)), 3) for k, v in rows.items()},
            "per_image_psnr": {k: [round(x, 3) for x in v] for k, v in rows.items()},
            "runs": infos,
        },
    )
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
