"""Shared helpers of the benchmark scripts: data loading, noise, PSNR, machine description."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def load_clean(
    folder: str, limit: int | None = None, size: int | None = None, gray: bool = True, crop: int = 0
) -> list[tuple[str, np.ndarray]]:
    """Clean images as float64 in [0, 1] (the paper's protocol, docs/design.md); optional square size filter;
    ``crop`` pixels cut from the bottom and right (Kodak's black last row and column)."""
    from PIL import Image

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg", ".tif"))
    out = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert("L" if gray else "RGB")
            arr = np.asarray(im, dtype=np.float64) / 255.0
        if crop:
            arr = arr[:-crop, :-crop]
        if size is not None and arr.shape[:2] != (size, size):
            continue
        out.append((p.name, arr))
        if limit and len(out) >= limit:
            break
    if not out:
        sys.exit(f"no images found in {folder!r}" + (f" of size {size}" if size else ""))
    return out


def add_gaussian(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Unclipped, unquantised Gaussian noise with a fixed seed."""
    rng = np.random.default_rng(seed)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)


def noise_levels(kind: str, levels: tuple[float, float], n: int, seed: int = 7) -> list[float]:
    """One level per image: fixed when ``levels`` is one value, else drawn uniformly from
    the range with a fixed seed (the poster's "sigma in [5, 50]" rows)."""
    lo, hi = levels
    if lo == hi:
        return [float(lo)] * n
    return [float(v) for v in np.random.default_rng(seed).uniform(lo, hi, n)]


def add_noise(clean: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    """Synthetic noise of the paper, never clipped or quantised (docs/design.md, "Benchmark protocol").

    gaussian: ``level`` is sigma on the 0-255 scale; poisson: lambda, y = P(lambda x) / lambda;
    impulse: alpha, each pixel (all channels together) replaced with probability alpha
    by uniform values in [0, 1].
    """
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return (clean + level / 255.0 * rng.standard_normal(clean.shape)).astype(np.float32)
    if kind == "poisson":
        return (rng.poisson(level * clean) / level).astype(np.float32)
    if kind == "impulse":
        hit = rng.random(clean.shape[:2]) < level
        if clean.ndim == 3:
            hit = hit[..., None]
        return np.where(hit, rng.random(clean.shape), clean).astype(np.float32)
    raise ValueError(kind)


def psnr8(x: np.ndarray, clean: np.ndarray) -> float:
    """PSNR on 8-bit-rounded images: clip(255 x + 0.5) then truncate."""
    from napari_ssdn.samples import psnr

    return psnr(x, clean, eight_bit=True)


def machine() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    flags: set[str] = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and cpu == (platform.processor() or "unknown"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    # The lent machines share a model name but not an instruction set, and bfloat16
    # speed (hence the defaults' precision on a CPU) depends on it.
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    if isa:
        cpu = f"{cpu} ({', '.join(isa)})"
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        pass
    return info


def record(name: str, payload: dict) -> Path:
    """Write a results JSON under benchmarks/results/ and return its path."""
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    payload = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "machine": machine(), **payload}
    out.write_text(json.dumps(payload, indent=2))
    return out


def tiled_mrc(path: Path, shape: tuple[int, int, int], block: np.ndarray, voxel: float = 10.0) -> Path:
    """A float32 MRC volume of ``shape`` tiled from the planes of ``block``, written plane by
    plane through a memory map (volumes larger than memory), with a voxel size."""
    import mrcfile

    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2) as m:
        for z in range(shape[0]):
            plane = block[z % block.shape[0]]
            m.data[z] = np.tile(plane, (shape[1] // plane.shape[0] + 1, shape[2] // plane.shape[1] + 1))[
                : shape[1], : shape[2]
            ]
        m.voxel_size = (voxel, voxel, voxel)
    return path
