"""The poster's table at CPU scale: every method on the same noisy images, same budget.

Examples (run from the repository root)::

    # grayscale BSD68, Gaussian sigma 25, all rows, 15 minutes per trained method
    /opt/n2v/bin/python benchmarks/table.py --data DATA/bsd68_gray --noise gaussian --level 25 --budget 900
    # Poisson with lambda drawn per image in [5, 50], first 10 images, 2 minutes each
    python benchmarks/table.py --data DATA/bsd68_gray --noise poisson --level 5 50 --limit 10 --budget 120
    # colour (Kodak), impulse alpha 0.5
    python benchmarks/table.py --data DATA/kodak24 --color --noise impulse --level 0.5 --budget 300

Rows: noisy input; prior mean ("no Bayes", parameter learned); posterior mean with the
parameter known and learned; on request (``--rows ...,mu-only``) the paper's own "no Bayes"
baseline, the blind-spot network with a mean-only head trained with L2 against the noisy
input from the same start as ours (docs/design.md); the same network architecture trained supervised on the
clean images (the upper bound); BM3D / CBM3D (Gaussian with sigma known; Poisson through
the Anscombe transform and its closed-form unbiased inverse); Noise2Void through CAREamics
(when importable, see benchmarks/n2v.py). Every trained method gets the same wall-clock
budget on this machine and sees the same noisy images; training never sees clean images
except in the supervised row.

With a level range (two values) each image gets its own level drawn with a fixed seed.
Learned levels are then learned per image (the auxiliary estimator); "known" trains the
same way and gives each image its true level at inference.

DATA is the folder of the benchmark data sets (benchmarks/README.md); /opt/n2v
is the Noise2Void environment that benchmarks/setup_n2v.sh creates (its default path).

Protocol (docs/design.md, "Benchmark protocol"): clean uint8 / 255, noise with a fixed seed per image (1000 +
index), never clipped or quantised; PSNR on 8-bit-rounded outputs, mean over images.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import add_noise, load_clean, noise_levels, psnr8, record  # noqa: E402

PARAM = {"gaussian": "sigma", "poisson": "lam", "impulse": "alpha"}


def _to_param(kind: str, level: float) -> float:
    """Benchmark level -> the engine's parameter in data units ([0, 1] images)."""
    return level / 255.0 if kind == "gaussian" else level


def train_ours(noisy, axes, args, *, mode="ssdn", known=None, per_image=False, targets=None):
    from napari_ssdn.core import TrainConfig, Trainer

    cfg = TrainConfig(
        noise=args.noise,
        noise_params={PARAM[args.noise]: known} if known is not None else {},
        per_image=per_image,
        time_limit=args.budget,
        width=args.width,
        lr=args.lr,
        patch=args.patch,
        batch=args.batch,
        seed=args.seed,
        mode=mode,
        # mu-only takes our start (the engine gives it the shipped network's mean rows);
        # the supervised network has no blind spot to share weights with.
        init="none" if mode == "supervised" else getattr(args, "init", "auto"),
        keep_best=getattr(args, "keep_best", True),
        **({"holdout": args.holdout} if getattr(args, "holdout", None) is not None else {}),
    )
    trainer = Trainer(noisy, [axes] * len(noisy), cfg, targets=targets, nll=getattr(args, "nll", None))
    t0 = time.perf_counter()
    for rec in trainer.run():
        if not args.quiet and (rec.step % 250 == 0 or rec.done):
            print(f"    {mode} step {rec.step}/{rec.total} loss {rec.loss:.4f} {rec.noise_params}", file=sys.stderr)
    return trainer.model, {
        "steps": trainer.step,
        "kept_step": trainer.kept_step,
        "init": trainer.init_source,
        "lr": trainer.lr,
        "train_seconds": round(time.perf_counter() - t0, 1),
    }


def infer(model, noisy, axes, kinds, params=None):
    from napari_ssdn.core import denoise

    out = {k: [] for k in kinds}
    t0 = time.perf_counter()
    for i, y in enumerate(noisy):
        extra = {"noise_params": params[i]} if params else {}
        res = denoise(model, y, axes, kinds, **extra)
        for k in kinds:
            out[k].append(res[k])
    return out, round(time.perf_counter() - t0, 1)


def anscombe_bm3d(y: np.ndarray, lam: float, color: bool) -> np.ndarray:
    """BM3D for Poisson data: Anscombe transform to unit variance, BM3D, then the
    closed-form approximation of the exact unbiased inverse (Makitalo and Foi 2011)."""
    import bm3d

    counts = np.maximum(y, 0) * lam
    f = 2.0 * np.sqrt(counts + 3.0 / 8.0)
    d = bm3d.bm3d_rgb(f, 1.0) if color else bm3d.bm3d(f, sigma_psd=1.0)
    d = np.maximum(d, 0.8)  # the inverse's series is for D above ~0.8 (zero counts map to 1.22)
    r = np.sqrt(1.5)
    inv = 0.25 * d**2 + 0.25 * r / d - 11.0 / 8.0 / d**2 + 0.625 * r / d**3 - 0.125
    return np.maximum(inv, 0) / lam


def main(argv=None, nll=None):
    """Run the table; ``nll`` replaces the per-pixel likelihood of our rows (ablations)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", required=True, help="folder of clean images, e.g. DATA/bsd68_gray (see benchmarks/README.md)"
    )
    p.add_argument("--color", action="store_true", help="RGB images (default: converted to gray)")
    p.add_argument("--noise", choices=list(PARAM), default="gaussian")
    p.add_argument(
        "--level",
        type=float,
        nargs="+",
        default=[25.0],
        help="sigma (0-255 scale), lambda or alpha; two values: a range, one level per image",
    )
    p.add_argument("--limit", type=int, help="first N images only")
    p.add_argument("--budget", type=float, default=300, help="training seconds for each trained method")
    p.add_argument(
        "--rows",
        default="known,learned,supervised,bm3d,n2v",
        help="comma-separated subset of known,learned,mu-only,supervised,bm3d,n2v (noisy is always there)",
    )
    p.add_argument("--width", default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the engine's)")
    p.add_argument("--patch", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init",
        default="auto",
        help="starting weights of our rows: auto (the engine's default), generic, none (from scratch) or a model file",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=None,
        help="share of pixels held out of the loss (default: the engine's; 0: off)",
    )
    p.add_argument("--no-keep-best", dest="keep_best", action="store_false", help="keep the last step's weights")
    p.add_argument("--name", default=None, help="results file name")
    p.add_argument(
        "--save-model",
        metavar="FOLDER",
        default=None,
        help="also save each trained model to FOLDER/<row>.ssdn, for later analysis",
    )
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    args.nll = nll
    if len(args.level) not in (1, 2):
        p.error("--level takes one value or a range of two")
    lo, hi = args.level[0], args.level[-1]
    rows_wanted = set(args.rows.split(","))
    data = load_clean(args.data, args.limit, gray=not args.color, crop=1 if "kodak" in args.data.lower() else 0)
    names = [n for n, _ in data]
    clean = [c.astype(np.float32) for _, c in data]
    levels = noise_levels(args.noise, (lo, hi), len(clean))
    noisy = [add_noise(c, args.noise, lv, 1000 + i) for i, (c, lv) in enumerate(zip(clean, levels, strict=True))]
    axes = "YXC" if args.color else "YX"
    variable = lo != hi
    truth = [{PARAM[args.noise]: _to_param(args.noise, lv)} for lv in levels]
    rows = {"noisy input": [psnr8(y, c) for y, c in zip(noisy, clean, strict=True)]}
    runs = {}
    score = lambda xs: [psnr8(x, c) for x, c in zip(xs, clean, strict=True)]  # noqa: E731

    level_tag = f"{lo:g}" if not variable else f"{lo:g}-{hi:g}"
    name = args.name or f"table_{Path(args.data).name}_{args.noise}{level_tag}_{int(args.budget)}s"

    def save():
        return record(
            name,
            {
                "images": names,
                "noise": args.noise,
                "levels": levels,
                "budget_seconds": args.budget,
                "mean_psnr": {k: round(float(np.mean(v)), 3) for k, v in rows.items()},
                "per_image_psnr": {k: [round(x, 3) for x in v] for k, v in rows.items()},
                "runs": runs,
            },
        )

    def say(label):
        save()  # after every row: a long run that is cut short keeps what it measured
        if not args.quiet:
            print(f"  {label:34s} {np.mean(rows[label]):6.2f} dB", file=sys.stderr)

    def keep(model, row):
        if args.save_model:
            from napari_ssdn.core import save_model

            Path(args.save_model).mkdir(parents=True, exist_ok=True)
            save_model(model, Path(args.save_model) / f"{row}.ssdn")

    learned_model = None
    if "learned" in rows_wanted:
        learned_model, info = train_ours(noisy, axes, args, per_image=variable)
        keep(learned_model, "learned")
        out, info["infer_seconds"] = infer(learned_model, noisy, axes, ("prior-mean", "posterior-mean"))
        info["learned"] = learned_model.noise_params_data()
        runs["learned"] = info
        rows["prior mean (no Bayes)"] = score(out["prior-mean"])
        rows["posterior mean, parameter learned"] = score(out["posterior-mean"])
        say("prior mean (no Bayes)")
        say("posterior mean, parameter learned")
    if "known" in rows_wanted:
        # A fixed level is given to training. Per-image levels cannot be given to training:
        # the per-image model is trained with learned levels (the one above when there is
        # one) and each image's true level replaces its learned one at inference.
        if variable and learned_model is not None:
            model, info = learned_model, {"model": "the parameter-learned model"}
        else:
            model, info = train_ours(
                noisy, axes, args, known=None if variable else truth[0][PARAM[args.noise]], per_image=variable
            )
            keep(model, "known")
        out, info["infer_seconds"] = infer(
            model, noisy, axes, ("prior-mean", "posterior-mean"), truth if variable else None
        )
        runs["known"] = info
        if "prior mean (no Bayes)" not in rows:
            rows["prior mean (no Bayes)"] = score(out["prior-mean"])
            say("prior mean (no Bayes)")
        rows["posterior mean, parameter known"] = score(out["posterior-mean"])
        say("posterior mean, parameter known")
    if "mu-only" in rows_wanted:
        model, info = train_ours(noisy, axes, args, mode="mu-only")
        keep(model, "mu-only")
        out, info["infer_seconds"] = infer(model, noisy, axes, ("prior-mean",))
        runs["mu-only"] = info
        rows["mu-only network (no Bayes, L2 to the noisy input)"] = score(out["prior-mean"])
        say("mu-only network (no Bayes, L2 to the noisy input)")
    if "supervised" in rows_wanted:
        model, info = train_ours(noisy, axes, args, mode="supervised", targets=clean)
        keep(model, "supervised")
        out, info["infer_seconds"] = infer(model, noisy, axes, ("prior-mean",))
        runs["supervised"] = info
        rows["supervised (clean targets)"] = score(out["prior-mean"])
        say("supervised (clean targets)")
    if "bm3d" in rows_wanted and args.noise != "impulse":
        import bm3d

        t0 = time.perf_counter()
        if args.noise == "gaussian":
            den = [
                bm3d.bm3d_rgb(y, lv / 255.0) if args.color else bm3d.bm3d(y, sigma_psd=lv / 255.0)
                for y, lv in zip(noisy, levels, strict=True)
            ]
        else:
            den = [anscombe_bm3d(y, lv, args.color) for y, lv in zip(noisy, levels, strict=True)]
        label = ("CBM3D" if args.color else "BM3D") + (
            " (sigma known)" if args.noise == "gaussian" else " (Anscombe, lambda known)"
        )
        rows[label] = score(den)
        runs["bm3d"] = {"seconds": round(time.perf_counter() - t0, 1)}
        say(label)
    if "n2v" in rows_wanted:
        import n2v

        if n2v.available():
            den, info = n2v.train_predict(noisy, args.budget, seed=args.seed)
            rows["Noise2Void (CAREamics)"] = score(den)
            runs["n2v"] = info
            say("Noise2Void (CAREamics)")
        else:
            print(
                "  Noise2Void row left out: CAREamics is not importable (bash benchmarks/setup_n2v.sh)", file=sys.stderr
            )
    level_txt = f"{lo:g}" if not variable else f"[{lo:g}, {hi:g}] per image"
    print(
        f"{len(clean)} {'colour' if args.color else 'gray'} images from {args.data}, {args.noise} {PARAM[args.noise]} "
        f"{level_txt}, "
        f"{args.budget:g} s of training per method"
    )
    for k, v in rows.items():
        print(f"  {k:40s} {np.mean(v):6.2f} dB")
    print(f"recorded {save()}")


if __name__ == "__main__":
    main()
