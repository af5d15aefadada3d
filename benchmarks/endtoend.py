"""End-to-end inference speed: the `ssdn denoise` command on a large image and a volume,
beside the network alone and the rate of the convolution kernels it uses.

Called by ``python benchmarks/throughput.py --end-to-end``. The command runs in a child
process (process start, reading, tiles and their margins, the posterior and writing all
count); FLOPs per pixel come from torch's FlopCounterMode on a whole-image pass, so the
end-to-end GFLOP/s says how much of the machine the user gets, margins included.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

CHILD = r"""
import resource, sys, time
t = time.perf_counter()
from napari_ssdn.cli import main
rc = main(sys.argv[1:])
wall = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_SELF)
import torch
gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else -1
print("RESULT", rc, wall, r.ru_utime, r.ru_stime, r.ru_maxrss / 1024, gpu)
"""


def reuse_if_available():
    """The inference's own memory reuse where this version of the package has it."""
    try:
        from napari_ssdn.core.alloc import reuse_freed_memory
    except ImportError:
        return contextlib.nullcontext()
    return reuse_freed_memory()


def conv_rate(channels: int = 32, side: int = 512, reps: int = 5, dev: torch.device | None = None) -> float:
    """GFLOP/s of the 3x3 bfloat16 convolution that dominates inference (``channels`` in and
    out, one ``side`` x ``side`` map): the best single call, in the better of NCHW and the
    channels-last layout CPU inference runs in."""
    return max(layout_rates(channels, channels, (side, side), reps, dev).values())


def layout_rates(cin: int, cout: int, spatial, reps: int = 5, dev: torch.device | None = None) -> dict:
    """GFLOP/s of a 3x3(x3) bfloat16 convolution from ``cin`` to ``cout`` channels on one map
    of size ``spatial`` (2 or 3 axes), best single call, per memory layout, with freed
    memory reused as inference runs (otherwise every call page-faults its output in)."""
    dev = dev or torch.device("cpu")
    conv = F.conv2d if len(spatial) == 2 else F.conv3d
    last = torch.channels_last if len(spatial) == 2 else torch.channels_last_3d
    flops = 2 * cin * cout * 3 ** len(spatial) * math.prod(spatial)
    layouts = {"channels_first": torch.contiguous_format, "channels_last": last}
    with reuse_if_available():
        seconds = {name: _conv_seconds(conv, cin, cout, spatial, fmt, reps, dev) for name, fmt in layouts.items()}
    return {name: flops / t / 1e9 for name, t in seconds.items()}


def _conv_seconds(conv, cin, cout, spatial, layout, reps, dev) -> float:
    """Best seconds of one call of ``conv`` in ``layout``, after two calls to warm up."""
    x = torch.randn(1, cin, *spatial, dtype=torch.bfloat16, device=dev).contiguous(memory_format=layout)
    w = torch.randn(cout, cin, *(3,) * len(spatial), dtype=torch.bfloat16, device=dev)
    w = w.contiguous(memory_format=layout)
    best = float("inf")
    for i in range(reps + 2):
        _sync(dev)
        t = time.perf_counter()
        conv(x, w, padding=1)
        _sync(dev)
        best = min(best, time.perf_counter() - t) if i >= 2 else best
    return best


#: The convolutions of the tiny width that weigh most at inference: (in, out, map size).
LAYOUT_CASES = ((32, 32, (1024, 1024)), (33, 32, (1024, 1024)), (16, 16, (1024, 1024)), (32, 32, (48, 128, 128)))


def _model(width: int, ndim: int, tmp: Path) -> tuple[Path, torch.nn.Module]:
    from napari_ssdn.core import TrainConfig, save_model, train

    rng = np.random.default_rng(0)
    data = rng.random((32, 64, 64) if ndim == 3 else (64, 64), dtype=np.float32)
    cfg = TrainConfig(iterations=1, width=width, patch=32 if ndim == 2 else 16, ndim=ndim, device="cpu")
    model = train(data, "ZYX" if ndim == 3 else "YX", cfg)
    path = tmp / f"{width}_{ndim}d.ssdn"
    save_model(model, path)
    return path, model


def _flops_per_pixel(model, shape) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.net(torch.zeros(1, 1, *shape))
    return fc.get_total_flops() / float(np.prod(shape))


def _network_rate(model, shape, dev: torch.device, reps: int = 2) -> float:
    """Pixels per second of the network alone on one whole input (bfloat16 autocast on a
    CPU, the inference's own precision on a GPU)."""
    from napari_ssdn.core.device import network_precision

    net = model.net.to(dev).eval()
    x = torch.randn(1, 1, *shape, device=dev)
    with reuse_if_available(), torch.no_grad(), network_precision(dev, dev.type != "cuda"):
        net(x)
        _sync(dev)
        t = time.perf_counter()
        for _ in range(reps):
            net(x)
        _sync(dev)
    return float(np.prod(shape)) * reps / (time.perf_counter() - t)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _command(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")), None)
    if r.returncode != 0 or line is None or line.split()[1] != "0":
        raise SystemExit(f"ssdn {' '.join(map(str, args))} failed:\n{r.stderr[-2000:]}")
    _, _, wall, user, system, peak, gpu = line.split()
    row = {
        "seconds": round(float(wall), 2),
        "user_s": round(float(user), 1),
        "system_s": round(float(system), 1),
        "peak_rss_mb": round(float(peak)),
    }
    if float(gpu) >= 0:
        row["peak_gpu_allocated_mb"] = round(float(gpu))
    return row


def bench_end_to_end(
    width: str, threads: int, side: int = 2048, volume=(48, 256, 256), dev: torch.device | None = None
) -> dict:
    """``ssdn denoise --no-tta`` of a ``side``^2 float32 TIFF (2D model) and a float32 MRC
    ``volume`` (3D model, written plane by plane) with a ``width`` model on ``dev`` (the
    CPU by default), against the network alone."""
    import mrcfile
    import tifffile

    dev = dev or torch.device("cpu")
    tmp = Path(tempfile.mkdtemp(prefix="ssdn-e2e-"))
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp / "image.tif", rng.random((side, side), dtype=np.float32))
    with mrcfile.new_mmap(tmp / "volume.mrc", shape=tuple(volume), mrc_mode=2) as m:
        for z in range(volume[0]):
            m.data[z] = rng.random(volume[1:], dtype=np.float32)
    out = {}
    for ndim, name, shape, probe in ((2, "image.tif", (side, side), (512, 512)), (3, "volume.mrc", volume, None)):
        path, model = _model(width, ndim, tmp)
        probe = probe or tuple(min(s, 64) for s in shape)
        flops = _flops_per_pixel(model, probe)
        row = _command(
            ["denoise", tmp / name, "-m", path, "-o", tmp / f"out_{name}", "--no-tta", "-q"]
            + ["--threads", threads, "--device", dev.type]
        )
        pixels = float(np.prod(shape))
        row["mpx_per_s"] = round(pixels / row["seconds"] / 1e6, 4)
        row["gflop_per_s"] = round(flops * pixels / row["seconds"] / 1e9, 1)
        # The network alone on one 512^2 image, or on the whole volume where it is small.
        alone = probe if ndim == 2 or pixels > 2**22 else shape
        net = _network_rate(model, alone, dev)
        row["network_alone_mpx_per_s"] = round(net / 1e6, 4)
        row["network_alone_gflop_per_s"] = round(flops * net / 1e9, 1)
        row["network_alone_shape"] = list(alone)
        row["flop_per_pixel"] = round(flops)
        out[f"{ndim}d_{'x'.join(map(str, shape))}"] = row
        print(f"end to end {width} {ndim}D {shape}: {row}", flush=True)
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    return out
