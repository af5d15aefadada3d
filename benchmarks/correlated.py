"""Gaussian noise correlated between neighbouring pixels: BSD68 with white noise blurred
by a small kernel (the per-pixel std scaled back to sigma), the defaults against the
engine with the centre pixel alone and against BM3D given the true noise power spectrum.

    python benchmarks/correlated.py --data DATA/bsd68_gray --limit 10 --budget 300 --name correlated_bsd68_box3_300s

Noise: n = sigma * (w * k) / ||k||, w white with seed 1000 + index, k the kernel
(``box3``: a 3 x 3 box, neighbour correlation 2/3 at lag 1 and 1/3 at lag 2; ``line3``:
1 x 3, along x only), circular convolution so that the spectrum given to BM3D is exact.
Never clipped or quantised; PSNR on 8-bit-rounded outputs, mean over images. One model
per row, trained on all the noisy images for ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import load_clean, psnr8, record  # noqa: E402

KERNELS = {"box3": np.ones((3, 3)), "line3": np.ones((1, 3)), "white": np.ones((1, 1))}


def correlated_noise(shape, kernel: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """White noise circularly convolved with ``kernel`` and scaled to per-pixel std ``sigma``."""
    w = np.random.default_rng(seed).standard_normal(shape)
    k = kernel / np.sqrt(np.square(kernel).sum())
    kf = np.fft.fft2(_centred(k, shape))
    return sigma * np.real(np.fft.ifft2(np.fft.fft2(w) * kf))


def _centred(k: np.ndarray, shape) -> np.ndarray:
    """``k`` placed on a canvas of ``shape`` with its centre at the origin (wrapped)."""
    out = np.zeros(shape)
    out[: k.shape[0], : k.shape[1]] = k
    return np.roll(out, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))


def noise_psd(shape, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """The noise power spectrum in the convention of ``bm3d.bm3d(..., sigma_psd=PSD)``."""
    k = kernel / np.sqrt(np.square(kernel).sum())
    return sigma**2 * np.abs(np.fft.fft2(_centred(k, shape))) ** 2 * shape[0] * shape[1]


def run_ours(noisy, budget: float, seed: int, **config):
    from napari_ssdn.core import TrainConfig, Trainer, denoise

    trainer = Trainer(noisy, ["YX"] * len(noisy), TrainConfig(time_limit=budget, seed=seed, **config))
    for _ in trainer.run():
        pass
    t0 = time.perf_counter()
    out = [denoise(trainer.model, y, "YX", ("prior-mean", "posterior-mean")) for y in noisy]
    info = {
        "steps": trainer.step,
        "kept_step": trainer.kept_step,
        "noise": trainer.model.config.noise,
        "blind_region": list(trainer.model.config.region),
        "learned": trainer.model.noise_params_data(),
        "auto": trainer.choices.to_dict() if trainer.choices else None,
        "infer_seconds": round(time.perf_counter() - t0, 1),
    }
    return out, info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", required=True, help="folder of clean gray images, e.g. DATA/bsd68_gray (benchmarks/README.md)"
    )
    p.add_argument("--kernel", choices=list(KERNELS), default="box3")
    p.add_argument("--sigma", type=float, default=25.0, help="per-pixel noise std on the 0-255 scale")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--budget", type=float, default=300, help="training seconds per trained row")
    p.add_argument(
        "--rows", default="defaults,pixel,bm3d", help="defaults (auto), pixel (Gaussian, blind region 1), bm3d"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    kernel, sigma = KERNELS[args.kernel], args.sigma / 255.0
    clean = [c for _, c in load_clean(args.data, args.limit)]
    noisy = [(c + correlated_noise(c.shape, kernel, sigma, 1000 + i)).astype(np.float32) for i, c in enumerate(clean)]
    score = lambda xs: round(float(np.mean([psnr8(x, c) for x, c in zip(xs, clean, strict=True)])), 3)  # noqa: E731
    res, runs = {"noisy input": score(noisy)}, {}
    rows = args.rows.split(",")
    variants = {
        "defaults": ("defaults (auto noise model and blind region)", {}),
        "pixel": ("Gaussian, blind region 1 pixel (the engine before auto)", {"noise": "gaussian", "blind": 1}),
    }
    for row in [r for r in rows if r in variants]:
        label, config = variants[row]
        out, runs[row] = run_ours(noisy, args.budget, args.seed, **config)
        res[f"{label}: prior mean"] = score([o["prior-mean"] for o in out])
        res[f"{label}: posterior mean"] = score([o["posterior-mean"] for o in out])
        print(row, runs[row], res, file=sys.stderr, flush=True)
    if "bm3d" in rows:
        import bm3d

        if not hasattr(np, "trapz"):  # bm3d 4.x calls np.trapz, which NumPy 2.4 removed
            np.trapz = np.trapezoid
        t0 = time.perf_counter()
        res["BM3D, true noise power spectrum"] = score(
            [bm3d.bm3d(y, sigma_psd=noise_psd(y.shape, kernel, sigma)) for y in noisy]
        )
        runs["bm3d"] = {"seconds": round(time.perf_counter() - t0, 1)}
    print(res, flush=True)
    if args.name:
        print(
            "recorded",
            record(
                args.name,
                {
                    "kernel": args.kernel,
                    "sigma": args.sigma,
                    "limit": args.limit,
                    "budget_seconds": args.budget,
                    "psnr": res,
                    "runs": runs,
                },
            ),
        )


if __name__ == "__main__":
    main()
