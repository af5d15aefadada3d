"""Throughput and memory: training and inference speed per width preset, roofline ratio,
peak resident memory when denoising a large image and a large stack.

    python benchmarks/throughput.py                      # speed table for every preset
    python benchmarks/throughput.py --memory             # + peak RSS, 4096^2 image and 200x512x512 stack
    python benchmarks/throughput.py --memory-only        # only the peak RSS part
    python benchmarks/throughput.py --tiles default,256 --widths tiny   # only: one 2048^2 image per tile side
    python benchmarks/throughput.py --tiles default --widths tiny --compile   # the same, and compiled (twice)
    python benchmarks/throughput.py --views --widths tiny   # only: denoise() of one 321 x 481 image, 8 views and 1
    python benchmarks/throughput.py --device cuda        # the same on a GPU
    python benchmarks/throughput.py --end-to-end --widths tiny   # only: ssdn denoise, 2048^2 and 48 x 256^2

FLOPs are counted by torch's FlopCounterMode on the real network (convolutions and
matrix products, one multiply-add = 2 FLOPs) and divided by measured time; the roofline is
the fp32 (and, where used, bf16) matrix-multiply rate measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402
from endtoend import reuse_if_available  # noqa: E402

from napari_ssdn.core import denoise  # noqa: E402
from napari_ssdn.core.device import bf16_cpu, network_precision, resolve_device  # noqa: E402
from napari_ssdn.core.nets.model import WIDTHS, ModelConfig, SSDNModel  # noqa: E402


def matmul_rate(dev, dtype, n=None, reps=None) -> float:
    # A GPU needs a larger product (and more of them) to reach its rate.
    n = n or (8192 if dev.type == "cuda" else 2048)
    reps = reps or (20 if dev.type == "cuda" else 10)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(dev)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(dev)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


BLIND = 1  # the blind region's k on both axes (--blind)


def speed_model(width, dev):
    """An untrained model of a preset: speed does not depend on the weights."""
    enc, dec, depth = WIDTHS[width]
    return SSDNModel(
        ModelConfig(enc=enc, dec=dec, depth=depth, noise_init={"sigma": 0.1}, blind_region=(BLIND, BLIND))
    ).to(dev)


def bench_train(width, dev, patch, batch, mixed, steps=None):
    # A GPU step takes milliseconds: time more of them for a stable mean.
    steps = steps or (50 if dev.type == "cuda" else 8)
    model = speed_model(width, dev)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.randn(batch, 1, patch, patch, device=dev)

    def step():
        with network_precision(dev, mixed):
            out = model(x)
        loss = out.float().square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    with reuse_if_available():  # as the training loop runs
        for _ in range(2):
            step()
        sync(dev)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync(dev)
    dt = (time.perf_counter() - t) / steps
    return {"steps_per_s": 1 / dt, "mpx_per_s": batch * patch * patch / dt / 1e6, "gflop_per_s": flops / dt / 1e9}


@torch.no_grad()
def bench_infer(width, dev, side, reps=2, mixed=False):
    model = speed_model(width, dev).eval()
    x = torch.randn(1, 1, side, side, device=dev)
    with FlopCounterMode(display=False) as fc:
        model(x)
    flops = fc.get_total_flops()
    with reuse_if_available(), network_precision(dev, mixed):
        model(x)
        sync(dev)
        t = time.perf_counter()
        for _ in range(reps):
            model(x)
        sync(dev)
    dt = (time.perf_counter() - t) / reps
    return {"mpx_per_s": side * side / dt / 1e6, "gflop_per_s": flops / dt / 1e9}


def bench_tiles(width, dev, side, tiles, compiled=False):
    """Whole ``denoise`` time of one random side x side image per kept tile side, tta off.
    ``compiled``: also with ``compile_network=True``, twice (the first call compiles)."""
    model = speed_model(width, dev)
    image = np.random.default_rng(0).random((side, side), dtype=np.float32)
    out = {}
    for t in tiles:
        runs = [("seconds", False)] + (
            [("compiled_first_seconds", True), ("compiled_seconds", True)] if compiled else []
        )
        out[t] = {}
        for key, comp in runs:
            start = time.perf_counter()
            denoise(
                model,
                image,
                "YX",
                tile=None if t == "default" else int(t),
                tta=False,
                device=str(dev),
                compile_network=comp,
            )
            dt = time.perf_counter() - start
            out[t][key] = round(dt, 1)
            out[t][key.replace("seconds", "mpx_per_s")] = round(image.size / dt / 1e6, 4)
            print(f"  tile {t}: {key} {dt:.1f}", flush=True)
    return out


def bench_views(width, dev, shape, reps=3):
    """Whole ``denoise`` time (best of ``reps``) of one random image of ``shape``, prior and
    posterior means, with the 8-view averaging on and off."""
    model = speed_model(width, dev)
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    kinds = ("prior-mean", "posterior-mean")
    denoise(model, image[:64, :64], "YX", kinds, tta=True, device=str(dev))
    out = {}
    for views, tta in ((8, True), (1, False)):
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            denoise(model, image, "YX", kinds, tta=tta, device=str(dev))
            times.append(time.perf_counter() - start)
        out[f"{views}_views"] = {"seconds": round(min(times), 2), "mpx_per_s": round(image.size / min(times) / 1e6, 4)}
    return out


MEMORY_SCRIPT = r"""
import sys, time, resource, numpy as np, tempfile, os
from pathlib import Path
from napari_ssdn.core import train, TrainConfig
from napari_ssdn.cli import main
kind, width, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
tmp = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
from napari_ssdn.io import write_image
from napari_ssdn.core import save_model
m = train(rng.random((64, 64)).astype(np.float32), "YX", TrainConfig(iterations=1, width=width, patch=32))
save_model(m, tmp / "m.ssdn")
if kind == "image":
    write_image(tmp / "in.tif", rng.random((4096, 4096), dtype=np.float32), "YX")
    src = tmp / "in.tif"
else:
    import mrcfile
    with mrcfile.new_mmap(tmp / "in.mrc", shape=(200, 512, 512), mrc_mode=2) as mm:
        for i in range(200):
            mm.data[i] = rng.random((512, 512), dtype=np.float32)
    src = tmp / "in.mrc"
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
rc = main(["denoise", str(src), "-m", str(tmp / "m.ssdn"), "-o", str(tmp / ("out" + src.suffix)), "--quiet", *extra])
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import torch
gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else -1
print(rc, dt, peak / 1024, base / 1024, gpu)
"""


def bench_memory(kind, width, extra=()):
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, kind, width, *extra], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr[-500:]}
    rc, dt, peak, base, gpu = r.stdout.split()[-5:]
    out = {
        "seconds": round(float(dt), 1),
        "peak_rss_mb": round(float(peak)),
        "rss_before_denoise_mb": round(float(base)),
    }
    if float(gpu) >= 0:
        out["peak_gpu_allocated_mb"] = round(float(gpu))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--widths", default="tiny,light,paper")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument(
        "--train-shapes",
        default=None,
        help="only training, one row per crops x side per width, e.g. 4x64,8x128,16x128 (a GPU's batch sweep)",
    )
    p.add_argument("--infer-side", type=int, default=512)
    p.add_argument("--memory", action="store_true")
    p.add_argument("--memory-only", action="store_true", help="only the peak-memory part (it takes minutes on a CPU)")
    p.add_argument("--memory-width", default="tiny", help="preset for the memory part (tiny: the CPU default)")
    p.add_argument(
        "--memory-kinds", default="image,stack", help="memory part: image (4096^2) and/or stack (200 x 512^2)"
    )
    p.add_argument("--memory-compile", action="store_true", help="memory part: ssdn denoise --compile")
    p.add_argument(
        "--tiles",
        default=None,
        help="only time denoise() of one large image per kept tile side, e.g. default,256 "
        "(default: the engine's choice)",
    )
    p.add_argument("--tiles-side", type=int, default=2048)
    p.add_argument(
        "--compile",
        action="store_true",
        help="with --tiles: also time denoise(compile_network=True), first and second call",
    )
    p.add_argument("--views", action="store_true", help="only: denoise() time with the 8-view averaging on and off")
    p.add_argument("--views-shape", default="321x481", help="image shape for --views (BSD68's)")
    p.add_argument(
        "--end-to-end", action="store_true", help="only: the ssdn denoise command on a 2048^2 image and a volume"
    )
    p.add_argument("--e2e-side", type=int, default=2048, help="--end-to-end: the image's side")
    p.add_argument("--e2e-volume", default="48x256x256", help="--end-to-end: the volume's shape, ZxYxX")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--blind", type=int, default=1, help="blind region k on both axes (speed of a larger region)")
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    global BLIND
    BLIND = args.blind
    dev = resolve_device(args.device)
    mixed = dev.type == "cuda" or bf16_cpu()
    rates = {"fp32": matmul_rate(dev, torch.float32)}
    if mixed:
        rates["bf16"] = matmul_rate(dev, torch.bfloat16)
    print(f"device {dev}, matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()))
    results = {"matmul_gflop_per_s": rates, "train": {}, "infer": {}}
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.end_to_end:
        from endtoend import LAYOUT_CASES, bench_end_to_end, conv_rate, layout_rates

        rates["conv3x3_bf16_32ch"] = conv_rate(dev=dev)
        print(f"bf16 3x3 convolution, 32 channels, 512^2: {rates['conv3x3_bf16_32ch']:.0f} GFLOP/s", flush=True)
        rates["conv_layouts"] = {}
        for cin, cout, spatial in LAYOUT_CASES:
            key = f"{cin}to{cout}_{'x'.join(map(str, spatial))}"
            rates["conv_layouts"][key] = layout_rates(cin, cout, spatial, dev=dev)
            print(f"bf16 convolution {key}: {rates['conv_layouts'][key]}", flush=True)
        for w in args.widths.split(","):
            volume = tuple(int(v) for v in args.e2e_volume.split("x"))
            results[f"end_to_end_{w}"] = bench_end_to_end(w, torch.get_num_threads(), args.e2e_side, volume, dev)
    if args.tiles:
        for w in args.widths.split(","):
            r = bench_tiles(w, dev, args.tiles_side, args.tiles.split(","), args.compile)
            results[f"tiles_{w}_{args.tiles_side}"] = r
            print(f"denoise {args.tiles_side}^2 ({w}) per tile: {r}", flush=True)
    if args.views:
        shape = tuple(int(v) for v in args.views_shape.split("x"))
        for w in args.widths.split(","):
            r = bench_views(w, dev, shape)
            results[f"views_{w}_{args.views_shape}"] = r
            print(f"denoise {args.views_shape} ({w}), best of 3: {r}", flush=True)
    if args.train_shapes:
        for w in args.widths.split(","):
            for shape in args.train_shapes.split(","):
                batch, patch = (int(v) for v in shape.split("x"))
                for mp in [False, True] if mixed else [False]:
                    r = bench_train(w, dev, patch, batch, mp)
                    r["roofline_ratio"] = r["gflop_per_s"] / rates["bf16" if mp else "fp32"]
                    results["train"][f"{w}_{shape}{'_mixed' if mp else '_fp32'}"] = r
                    print(
                        f"train {w:6s} {shape:7s} {'mixed' if mp else 'fp32 '}: {r['steps_per_s']:.2f} steps/s, "
                        f"{r['mpx_per_s']:.3f} Mpx/s, {r['gflop_per_s']:.0f} GFLOP/s "
                        f"= {100 * r['roofline_ratio']:.0f} % of matmul",
                        flush=True,
                    )
    only = args.memory_only or args.tiles or args.views or args.train_shapes or args.end_to_end
    for w in [] if only else args.widths.split(","):
        for mp in [False, True] if mixed else [False]:
            r = bench_train(w, dev, args.patch, args.batch, mp)
            roof = rates["bf16" if mp else "fp32"]
            r["roofline_ratio"] = r["gflop_per_s"] / roof
            results["train"][f"{w}{'_mixed' if mp else '_fp32'}"] = r
            print(
                f"train {w:6s} {'mixed' if mp else 'fp32 '}: {r['steps_per_s']:.2f} steps/s, {r['mpx_per_s']:.3f} "
                f"Mpx/s, {r['gflop_per_s']:.0f} GFLOP/s = {100 * r['roofline_ratio']:.0f} % of matmul",
                flush=True,
            )
        for mp in [False, True] if mixed else [False]:
            r = bench_infer(w, dev, args.infer_side, mixed=mp)
            r["roofline_ratio"] = r["gflop_per_s"] / rates["bf16" if mp else "fp32"]
            results["infer"][w + ("_mixed" if mp else "")] = r
            print(
                f"infer {w:6s} {'mixed' if mp else 'fp32 '}: {r['mpx_per_s']:.3f} Mpx/s, {r['gflop_per_s']:.0f} "
                f"GFLOP/s = {100 * r['roofline_ratio']:.0f} % of matmul",
                flush=True,
            )
        gc.collect()
    if args.memory or args.memory_only:
        for kind in args.memory_kinds.split(","):
            r = bench_memory(kind, args.memory_width, ["--compile"] if args.memory_compile else [])
            results[f"memory_{kind}"] = {"width": args.memory_width, "compile": args.memory_compile, **r}
            print(
                f"denoise {'4096x4096 image' if kind == 'image' else '200x512x512 stack'} ({args.memory_width}): {r}",
                flush=True,
            )
    path = record(
        args.name or f"throughput_{dev.type}",
        {"patch": args.patch, "batch": args.batch, "blind": args.blind, **results},
    )
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
