"""Quality against training time: ours, Noise2Void and the supervised network.

    /opt/n2v/bin/python benchmarks/ablations/curve.py --data DATA/bsd68_gray --limit 10 \\
        --minutes 1 2 5 --name curve_bsd68_first10_gaussian25
    python benchmarks/ablations/curve.py --data DATA/bsd68_gray --plot-only --name curve_bsd68_first10_gaussian25

Gaussian sigma 25 (seed 1000 + index, never clipped), one model per method and budget,
trained from scratch on the noisy images with that wall-clock budget (the schedule's
warm-up and ramp-down follow the budget, as for a user who sets ``--time-limit``), then
every image denoised with the defaults of ``denoise``. Rows: our posterior mean and prior
mean (one model, sigma learned), the same network trained supervised on the clean
images, Noise2Void (CAREamics, when importable); BM3D with the true sigma as a line.
Results accumulate in ``benchmarks/results/NAME.json`` (a run adds or replaces the
budgets it measured), and the plot is written to ``docs/images/NAME.png``. DATA is the folder
of the benchmark data sets (benchmarks/README.md); /opt/n2v is the Noise2Void environment
that benchmarks/setup_n2v.sh creates (its default path).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
from common import add_noise, load_clean, machine, psnr8, record  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"  # where common.record writes
METHODS = ("ours", "supervised", "n2v")


def measure(method: str, seconds: float, noisy, clean, seed: int, init: str = "none") -> dict:
    """Train ``method`` for ``seconds``, denoise every image; mean PSNRs and steps."""
    from table import infer, train_ours

    score = lambda xs: round(float(np.mean([psnr8(x, c) for x, c in zip(xs, clean, strict=True)])), 3)  # noqa: E731
    # ``init`` must reach train_ours, else the engine's default start (the shipped network)
    # is taken whatever --init says.
    opts = argparse.Namespace(
        noise="gaussian", budget=seconds, width=None, lr=None, patch=None, batch=None, seed=seed, init=init, quiet=True
    )
    if method == "ours":
        model, info = train_ours(noisy, "YX", opts)
        out, info["infer_seconds"] = infer(model, noisy, "YX", ("prior-mean", "posterior-mean"))
        info["sigma_learned"] = round(model.noise_params_data()["sigma"] * 255, 2)
        return {"posterior": score(out["posterior-mean"]), "prior": score(out["prior-mean"]), **info}
    if method == "supervised":
        model, info = train_ours(noisy, "YX", opts, mode="supervised", targets=clean)
        out, info["infer_seconds"] = infer(model, noisy, "YX", ("prior-mean",))
        return {"psnr": score(out["prior-mean"]), **info}
    import n2v

    if not n2v.available():
        raise SystemExit("Noise2Void needs CAREamics: bash benchmarks/setup_n2v.sh, then run with /opt/n2v/bin/python")
    den, info = n2v.train_predict(noisy, seconds, seed=seed)
    return {"psnr": score(den), **info}


def plot(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    series = [
        ("ours", "posterior", "ours: posterior mean"),
        ("ours", "prior", "ours: prior mean (no Bayes)"),
        ("supervised", "psnr", "supervised (clean targets)"),
        ("n2v", "psnr", "Noise2Void (CAREamics)"),
    ]
    for method, key, label in series:
        pts = sorted((float(m), r[key]) for m, r in payload["results"].get(method, {}).items())
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label, linestyle="--" if key == "prior" else "-")
    if payload.get("bm3d") is not None:
        ax.axhline(payload["bm3d"], color="grey", linestyle=":", label="BM3D (sigma known)")
    ax.set_xscale("log")
    ticks = sorted({float(m) for r in payload["results"].values() for m in r})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training time on this CPU (minutes)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(payload.get("title", ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", required=True, help="folder of clean images, e.g. DATA/bsd68_gray (see benchmarks/README.md)"
    )
    p.add_argument("--limit", type=int, default=10, help="first N images")
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 5, 10, 20, 40])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--bm3d", action="store_true", help="also run BM3D (sigma known) once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init",
        default="none",
        help="our starting weights: none (from scratch, the default, as in the recorded curve), auto or generic",
    )
    p.add_argument("--name", required=True)
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args(argv)
    path = RESULTS / f"{args.name}.json"
    payload = json.loads(path.read_text()) if path.exists() else {"results": {}, "runs": []}
    if not args.plot_only:
        data = load_clean(args.data, args.limit)
        clean = [c.astype(np.float32) for _, c in data]
        noisy = [add_noise(c, "gaussian", 25, 1000 + i) for i, c in enumerate(clean)]
        payload["images"] = [n for n, _ in data]
        payload["title"] = f"{Path(args.data).name}, first {len(clean)} images, Gaussian sigma 25"
        if args.bm3d:
            import bm3d

            payload["bm3d"] = round(
                float(np.mean([psnr8(bm3d.bm3d(y, sigma_psd=25 / 255), c) for y, c in zip(noisy, clean, strict=True)])),
                3,
            )
        for minutes in args.minutes:
            for method in args.methods.split(","):
                res = measure(method, minutes * 60, noisy, clean, args.seed, args.init)
                payload["results"].setdefault(method, {})[f"{minutes:g}"] = res
                print(method, f"{minutes:g} min", res, flush=True)
                # Keep what was measured so far: a long run stopped by hand loses nothing.
                record(args.name, {k: v for k, v in payload.items() if k not in ("command", "machine")})
                payload = json.loads(path.read_text())
        payload["runs"] = payload.get("runs", []) + [
            {"command": " ".join(["curve.py"] + (argv or sys.argv[1:])), "machine": machine()}
        ]
        record(args.name, {k: v for k, v in payload.items() if k not in ("command", "machine")})
    png = Path(__file__).resolve().parents[2] / "docs" / "images" / f"{args.name}.png"
    plot(payload, png)
    print("wrote", png)


if __name__ == "__main__":
    main()
