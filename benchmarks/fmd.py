"""Real fluorescence microscopy: the FMD noisy / 50-frame-average pairs.

    /opt/n2v/bin/python benchmarks/fmd.py --data DATA/fmd_samples --budget 180 --name fmd_180s

DATA/fmd_samples holds the FMD sample pairs in the layout of benchmarks/README.md; /opt/n2v
is the Noise2Void environment that benchmarks/setup_n2v.sh creates (its default path).

Four data sets, each trained on its own noisy images only (one model per data set, the
whole budget of wall-clock seconds per trained method):

- ``confocal_fish``: Confocal_FISH_3, one 512 x 512 gray image;
- ``widefield_bpae``: WideField_BPAE_raw_rgb_new1, its 3 fluorescence channels as 3 gray
  images (one camera, one noise model);
- ``widefield_bpae_rgb``: the same file as one RGB image, as a user opens it (axes YXC);
  scored per channel, like the gray set (``--sets`` only: not in the default list);
- ``bpae_r``: FMD_dataset/BPAE_R_Channel (R = G = B, read as gray);
- ``confocal_bpae_3d``: 3D_volume_raw_stack1, its 3 planes as 3 gray images.

Rows: noisy input; ``auto``: our prior mean and posterior mean with the defaults (noise
model and blind region read from the data); our prior mean and posterior mean with the Poisson-Gaussian model
learned (the camera model, ``--noise poisson-gaussian`` with neither parameter given);
our posterior mean with the Gaussian model learned; the Poisson-Gaussian model on the 2 x 2
interleaved sub-images (``--rows pg2``: ``subsample=2``, for noise correlated between
neighbouring pixels); BM3D through the generalised Anscombe
transform with (a, b) from our classical estimate; Noise2Void (CAREamics, when
importable). Data are scaled by 1/255 (8-bit acquisitions); PSNR on 8-bit-rounded images
against the 50-frame averages, mean over the images of a data set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import psnr8, record  # noqa: E402


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im, dtype=np.float64)


def load_sets(root: Path) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Data set name -> (noisy images, reference images), float32 in [0, 1]-ish units."""
    import tifffile

    raw, gt = root / "2D_images" / "Raw_Images", root / "2D_images" / "Target(ground_truth)_Images"
    sets = {}
    sets["confocal_fish"] = ([_png(raw / "Confocal_FISH_3.png")], [_png(gt / "gt_Confocal_FISH_3.png")])
    wn, wg = _png(raw / "WideField_BPAE_raw_rgb_new1.png"), _png(gt / "WideField_BPAE_gt_rgb_new1.png")
    sets["widefield_bpae"] = ([wn[..., c] for c in range(3)], [wg[..., c] for c in range(3)])
    sets["widefield_bpae_rgb"] = ([wn], [wg])
    fmd = root / "FMD_dataset"
    sets["bpae_r"] = (
        [_png(fmd / "BPAE_R_Channel_noisy_image.png")[..., 0]],
        [_png(fmd / "BPAE_R_Channel_gt_image.png")[..., 0]],
    )
    vn = tifffile.imread(root / "3D_images" / "Raw_Images" / "3D_volume_raw_stack1_32bit.tif")
    vg = tifffile.imread(root / "3D_images" / "Target(ground_truth)_Images" / "3D_volume_gt_stack1_32bit.tif")
    sets["confocal_bpae_3d"] = (list(vn.astype(np.float64)), list(vg.astype(np.float64)))
    return {
        k: ([(a / 255).astype(np.float32) for a in n], [(a / 255).astype(np.float32) for a in g])
        for k, (n, g) in sets.items()
    }


def gat_bm3d(y: np.ndarray, a: float, b: float) -> np.ndarray:
    """BM3D for Poisson-Gaussian data (variance a x + b): the generalised Anscombe transform
    maps u = y / a + b / a^2 to unit variance, BM3D, then the closed-form approximation of
    the exact unbiased inverse of the Anscombe transform (Makitalo and Foi 2011) for u."""
    import bm3d

    u = np.maximum(y / a + b / a**2, 0)
    f = 2.0 * np.sqrt(u + 3.0 / 8.0)
    d = np.maximum(bm3d.bm3d(f, sigma_psd=1.0), 0.8)  # the inverse's series holds above ~0.8
    r = np.sqrt(1.5)
    inv = 0.25 * d**2 + 0.25 * r / d - 11.0 / 8.0 / d**2 + 0.625 * r / d**3 - 0.125
    return (a * inv - b / a).astype(np.float32)


def channel_psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR of a gray image, or the mean over the channels of a YXC one."""
    if x.ndim == 2:
        return psnr8(x, ref)
    return float(np.mean([psnr8(x[..., c], ref[..., c]) for c in range(x.shape[-1])]))


def train(noisy, noise, budget, seed, subsample=None, init="auto", blind="auto", lr=None, steps=None):
    from napari_ssdn.core import TrainConfig, Trainer

    limit = {"iterations": steps} if steps else {"time_limit": budget}
    cfg = TrainConfig(noise=noise, seed=seed, subsample=subsample, init=init, blind=blind, lr=lr, **limit)
    trainer = Trainer(noisy, ["YX" if y.ndim == 2 else "YXC" for y in noisy], cfg)
    for _ in trainer.run():
        pass
    return trainer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        required=True,
        help="folder of the FMD sample pairs (2D_images/, 3D_images/, FMD_dataset/; see benchmarks/README.md)",
    )
    p.add_argument("--budget", type=float, default=180, help="training seconds per trained method and data set")
    p.add_argument("--steps", type=int, default=None, help="training steps per trained method (instead of --budget)")
    p.add_argument("--sets", default="confocal_fish,widefield_bpae,bpae_r,confocal_bpae_3d")
    p.add_argument(
        "--rows",
        default="auto,pg,gaussian,bm3d,n2v",
        help="auto (the defaults), pg, curve (the measured noise curve), "
        "pg1 (Poisson-Gaussian, blind region 1), gaussian, pg2 (subsample 2), bm3d, n2v",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init",
        default="auto",
        help="starting weights of our rows: auto (the engine's default), generic, none or a model file",
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of our rows (default: the engine's)")
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    from napari_ssdn.core import denoise
    from napari_ssdn.core.noise.estimate import estimate_noise

    rows_wanted = set(args.rows.split(","))
    sets = load_sets(Path(args.data))
    results, runs = {}, {}
    for name in args.sets.split(","):
        noisy, ref = sets[name]

        def score(xs, ref=ref):
            return round(float(np.mean([channel_psnr(x, r) for x, r in zip(xs, ref, strict=True)])), 3)

        axes = "YX" if noisy[0].ndim == 2 else "YXC"
        res = {"noisy input": score(noisy)}
        info = {"images": len(noisy), "shape": list(noisy[0].shape)}
        variants = {
            "auto": ("auto", None, "auto"),
            "pg": ("poisson-gaussian", None, "auto"),
            "curve": ("curve", None, "auto"),
            "pg1": ("poisson-gaussian", None, 1),
            "gaussian": ("gaussian", None, "auto"),
            "pg2": ("poisson-gaussian", 2, 1),
        }
        for row in [r for r in variants if r in rows_wanted]:
            noise, sub, blind = variants[row]
            trainer = train(noisy, noise, args.budget, args.seed, sub, args.init, blind, args.lr, args.steps)
            t0 = time.perf_counter()
            out = [denoise(trainer.model, y, axes, ("prior-mean", "posterior-mean")) for y in noisy]
            info[row] = {
                "steps": trainer.step,
                "learned": trainer.model.noise_params_data(),
                "curve": trainer.model.noise_curve_data(),
                "noise": trainer.model.config.noise,
                "blind_region": list(trainer.model.config.region),
                "auto": trainer.choices.to_dict(),
                "infer_seconds": round(time.perf_counter() - t0, 1),
            }
            tag = (f", subsample {sub}" if sub else "") + (
                f", blind region {blind}" if blind != "auto" and not sub else ""
            )
            if row == "auto":
                res["defaults: prior mean"] = score([o["prior-mean"] for o in out])
                res["defaults: posterior mean"] = score([o["posterior-mean"] for o in out])
            elif noise == "poisson-gaussian":
                res[f"prior mean (no Bayes){tag}"] = score([o["prior-mean"] for o in out])
            elif noise == "curve":
                res["prior mean, curve row"] = score([o["prior-mean"] for o in out])
            if row == "curve":
                res["posterior mean, curve measured"] = score([o["posterior-mean"] for o in out])
            elif row != "auto":
                res[f"posterior mean, {noise} learned{tag}"] = score([o["posterior-mean"] for o in out])
            print(name, row, info[row], res, file=sys.stderr, flush=True)
        if "bm3d" in rows_wanted and axes == "YX":
            t0 = time.perf_counter()
            est = estimate_noise([y[None, ..., None] for y in noisy], "poisson-gaussian")
            res["BM3D (generalised Anscombe, a and b estimated)"] = score(
                [gat_bm3d(y, est["a"], est["b"]) for y in noisy]
            )
            info["bm3d"] = {"a": est["a"], "b": est["b"], "seconds": round(time.perf_counter() - t0, 1)}
        if "n2v" in rows_wanted and axes == "YX":
            import n2v

            if n2v.available():
                den, info["n2v"] = n2v.train_predict(noisy, args.budget, seed=args.seed)
                res["Noise2Void (CAREamics)"] = score(den)
        results[name], runs[name] = res, info
        print(name, res, flush=True)
    if args.name:
        print(
            "recorded",
            record(
                args.name,
                {
                    "budget_seconds": args.budget,
                    "steps": args.steps,
                    "init": args.init,
                    "lr": args.lr,
                    "psnr": results,
                    "runs": runs,
                },
            ),
        )


if __name__ == "__main__":
    main()
