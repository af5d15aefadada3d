"""Volumes: 3D network against 2D training on the slices, real tomogram crops, memory.

    python benchmarks/volume.py quality --budget 240 --sigma 25   # 3D vs 2D at equal CPU time
    python benchmarks/volume.py cryoem --data DATA/cryoem_small --budget 90   # learned noise on real crops + picture
    python benchmarks/volume.py memory                        # peak RSS, 200 x 512 x 512 MRC

quality: a synthetic tomogram-like volume (napari_ssdn.samples.noisy_volume: vesicle
membranes, granules and filaments continuous in 3D) with Gaussian noise of known sigma,
sigma learned. Each configuration trains for the same wall-clock budget on this machine,
then denoises the whole volume; PSNR over the volume, peak 1 (intensities in [0, 1]).

cryoem: real tomogram crops (no clean reference; the folder holds cylindra_tomo_crops/13pf_MT.tif,
14pf_MT.tif and tardis_tomo_crop/mrc3D.mrc, see benchmarks/README.md): the learned
Gaussian noise level next to the classical starting estimate, and a PNG of a central XY
and XZ slice before and after (docs/images/volume_<name>.png).

memory: writes a 200 x 512 x 512 float32 MRC (the synthetic volume tiled), trains a tiny
3D model for a few steps, then runs ``ssdn denoise`` on it in a child process and reports
the child's peak resident memory (ru_maxrss, whole process including Python and torch)
and wall time, and checks the output's shape and voxel size.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import record, tiled_mrc  # noqa: E402

from napari_ssdn.core import TrainConfig, Trainer, denoise, save_model  # noqa: E402
from napari_ssdn.samples import DEMO_SIGMA, noisy_volume, psnr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def train_for(noisy, axes, budget, **cfg):
    trainer = Trainer(noisy, axes, TrainConfig(time_limit=budget, **cfg))
    rec = None
    for progress in trainer.run():
        rec = progress
    return trainer, rec


def cmd_quality(args):
    sigma = args.sigma / 255
    noisy, clean = noisy_volume(tuple(args.shape), sigma=sigma, seed=args.seed)
    rows = {"noisy": {"psnr": psnr(noisy, clean)}}
    print(f"volume {noisy.shape}, sigma {sigma:.4f} (learned); noisy {rows['noisy']['psnr']:.2f} dB", flush=True)
    configs = {
        "2d_light": dict(ndim=2, width="light"),
        "3d_tiny": dict(ndim=3, width="tiny"),
        "3d_light": dict(ndim=3, width="light"),
        # Same voxels per step as the 2D default's pixels (4 x 64 x 64): many more steps.
        "3d_tiny_p24b1": dict(ndim=3, width="tiny", patch=24, batch=1),
        "3d_tiny_p16b4": dict(ndim=3, width="tiny", patch=16, batch=4),
    }
    for name in args.configs.split(","):
        cfg = configs[name]
        t = time.perf_counter()
        trainer, rec = train_for(noisy, "ZYX", args.budget, seed=args.seed, **cfg)
        out = denoise(trainer.model, noisy, "ZYX", output=("posterior-mean", "prior-mean"))
        rows[name] = {
            "steps": trainer.step,
            "train_s": round(trainer.elapsed, 1),
            "denoise_s": round(time.perf_counter() - t - trainer.elapsed, 1),
            "network": trainer.model.describe(),
            "patch": list(trainer.patch_shape),
            "sigma_learned": rec.noise_params["sigma"],
            "prior": psnr(out["prior-mean"], clean),
            "posterior": psnr(out["posterior-mean"], clean),
        }
        r = rows[name]
        print(
            f"{name:9s} {r['steps']:5d} steps: prior {r['prior']:.2f} dB, posterior {r['posterior']:.2f} dB, "
            f"sigma {r['sigma_learned']:.4f} ({trainer.model.describe()})",
            flush=True,
        )
    name = args.name or f"volume_quality_sigma{args.sigma:g}_{int(args.budget)}s"
    path = record(name, {"budget_s": args.budget, "shape": args.shape, "sigma": sigma, "rows": rows})
    print(f"recorded {path}")


def _picture(noisy, den, path, title):
    from PIL import Image

    z, y = noisy.shape[0] // 2, noisy.shape[1] // 2

    def u8(a, ref):
        # Each volume at its own contrast (0.5-99.5 percentiles), as one would view it.
        lo, hi = np.percentile(ref, [0.5, 99.5])
        return (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)

    top = np.concatenate([u8(noisy[z], noisy), np.full((noisy.shape[1], 4), 255, np.uint8), u8(den[z], den)], axis=1)
    bottom = np.concatenate(
        [u8(noisy[:, y], noisy), np.full((noisy.shape[0], 4), 255, np.uint8), u8(den[:, y], den)], axis=1
    )
    sheet = np.concatenate([top, np.full((4, top.shape[1]), 255, np.uint8), bottom], axis=0)
    scale = max(1, 400 // sheet.shape[1])
    Image.fromarray(sheet).resize((sheet.shape[1] * scale, sheet.shape[0] * scale), Image.NEAREST).save(path)
    print(f"wrote {path} ({title})")


def cmd_cryoem(args):
    from napari_ssdn.io import read_image

    data = Path(args.data)
    files = [
        data / "cylindra_tomo_crops" / "13pf_MT.tif",
        data / "cylindra_tomo_crops" / "14pf_MT.tif",
        data / "tardis_tomo_crop" / "mrc3D.mrc",
    ]
    rows = {}
    for f in files:
        img = read_image(f)
        vol = img.data.astype(np.float32)
        trainer, rec = train_for(vol, "ZYX", args.budget, ndim=3, width="tiny", seed=args.seed)
        model = trainer.model
        den = denoise(model, vol, "ZYX")
        resid = vol - den
        rows[f.name] = {
            "shape": list(vol.shape),
            "voxel": img.voxel,
            "unit": img.unit,
            "steps": trainer.step,
            "noise": model.config.noise,
            "blind_region": list(model.config.region),
            "auto": trainer.choices.to_dict(),
            "start": {k: float(v) for k, v in model.config.noise_init.items()},
            "learned": rec.noise_params,
            # Classical Gaussian levels of the slices: neighbours' details (what a one-pixel
            # blind spot assumed) and details of pixels as far apart as the region.
            "sigma_neighbours": _sigma(vol, 1),
            "sigma_per_pixel": _sigma(vol, max(model.config.region[-2:])),
            "residual_std": float(resid.std()),
            "data_std": float(vol.std()),
        }
        r = rows[f.name]
        print(
            f"{f.name}: {r['steps']} steps, {r['noise']}, region {r['blind_region']}, start {r['start']} -> learned "
            f"{r['learned']}; "
            f"classical sigma: neighbours {r['sigma_neighbours']:.3f}, per pixel {r['sigma_per_pixel']:.3f}; "
            f"data std {r['data_std']:.3f}, residual std {r['residual_std']:.3f}; {trainer.choices.blind_why}",
            flush=True,
        )
        _picture(vol, den, ROOT / "docs" / "images" / f"volume_{f.stem}.png", f.name)
    path = record(args.name or "volume_cryoem", {"budget_s": args.budget, "rows": rows})
    print(f"recorded {path}")


def _sigma(vol: np.ndarray, lag: int) -> float:
    """Classical Gaussian noise level of a volume's slices in data units, differencing
    pixels ``lag`` apart."""
    from napari_ssdn.core.noise.estimate import estimate_noise

    return float(estimate_noise([vol[..., None].astype(np.float64)], "gaussian", lag=lag)["sigma"])


MEMORY_CHILD = r"""
import resource, sys, time
from napari_ssdn.cli import main
t = time.perf_counter()
rc = main(sys.argv[1:])
print("RESULT", rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def cmd_memory(args):
    import mrcfile

    shape = tuple(args.shape)
    tmp = Path(tempfile.mkdtemp(prefix="ssdn-volume-"))
    block, _ = noisy_volume((50, 128, 128), sigma=DEMO_SIGMA, seed=0)
    src = tmp / "big.mrc"
    tiled_mrc(src, shape, block)
    trainer, _ = train_for(block, "ZYX", args.budget, ndim=3, width=args.width, seed=0)
    save_model(trainer.model, tmp / "m.ssdn")
    out = tmp / "out.mrc"
    cmd = [
        sys.executable,
        "-c",
        MEMORY_CHILD,
        "denoise",
        str(src),
        "-m",
        str(tmp / "m.ssdn"),
        "-o",
        str(out),
        "--quiet",
    ]
    print(
        f"denoising {shape} float32 ({np.prod(shape) * 4 / 1e9:.2f} GB) with {trainer.model.describe()} ...", flush=True
    )
    r = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")), None)
    if r.returncode != 0 or line is None:
        print(r.stderr[-2000:])
        raise SystemExit("denoise failed")
    _, rc, seconds, peak_mb = line.split()
    with mrcfile.mmap(out, permissive=True) as m:
        ok_shape = tuple(m.data.shape) == shape
        voxel = tuple(float(v) for v in m.voxel_size.tolist())
    result = {
        "shape": list(shape),
        "network": trainer.model.describe(),
        "seconds": round(float(seconds), 1),
        "mvox_per_s": round(np.prod(shape) / float(seconds) / 1e6, 3),
        "peak_rss_mb": round(float(peak_mb)),
        "output_shape_ok": ok_shape,
        "output_voxel": voxel,
        "children_maxrss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }
    print(result)
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    path = record(args.name or "volume_memory", result)
    print(f"recorded {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--budget", type=float, default=240.0, help="training seconds per configuration")
    q.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    q.add_argument("--configs", default="2d_light,3d_tiny,3d_light")
    q.add_argument("--sigma", type=float, default=25.0, help="noise std in 8-bit units (intensities are in [0, 1])")
    c = sub.add_parser("cryoem")
    c.add_argument(
        "--data",
        required=True,
        help="folder of the cryo-EM crops (cylindra_tomo_crops/, tardis_tomo_crop/; see benchmarks/README.md)",
    )
    c.add_argument("--budget", type=float, default=90.0)
    m = sub.add_parser("memory")
    m.add_argument("--shape", type=int, nargs=3, default=[200, 512, 512])
    m.add_argument("--budget", type=float, default=20.0, help="training seconds of the model used")
    m.add_argument("--width", default="tiny")
    for sp in (q, c, m):
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--name", default=None)
    args = p.parse_args(argv)
    {"quality": cmd_quality, "cryoem": cmd_cryoem, "memory": cmd_memory}[args.cmd](args)


if __name__ == "__main__":
    main()
