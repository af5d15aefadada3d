"""bioimage.io export: export time and package size per width, and inference speed of the
exported TorchScript and ONNX weights against napari-ssdn's own inference (what ``ssdn
denoise --no-tta`` runs) on the same image, in the same run.

    python benchmarks/export.py --widths tiny,light --size 512 --threads 2

Each width's model is trained for a few steps on a synthetic image (speed and size do not
depend on how long it trained). Writes results/export_<widths>_<size>.json.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402


def _interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds per function, timed round by round (each round runs every function
    once, in turn), so that load from other jobs on a shared machine hits all alike."""
    for fn in fns.values():
        fn()  # warm-up: first-call costs (TorchScript profiling, ONNX session arenas)
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {f"{k}_s": statistics.median(v) for k, v in times.items()}


def run_width(width: str, size: int, repeats: int, folder: Path) -> dict:
    from napari_ssdn.core import TrainConfig, Trainer, denoise
    from napari_ssdn.export import export_model
    from napari_ssdn.samples import noisy_cells

    noisy, _ = noisy_cells(256)
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=2, width=width, patch=32, batch=1, device="cpu"))
    for _ in trainer.run():
        pass
    model_path = folder / f"{width}.ssdn"
    trainer.save(model_path)
    package = folder / f"{width}.zip"
    t0 = time.perf_counter()
    export_model(model_path, package)
    export_s = time.perf_counter() - t0
    model = trainer.model.cpu().eval()
    img, _ = noisy_cells(size, seed=5)
    with zipfile.ZipFile(package) as zf:
        ts = torch.jit.load(io.BytesIO(zf.read("weights_torchscript.pt")))
        onnx_bytes = zf.read("weights.onnx")
        sizes = {i.filename: i.compress_size for i in zf.infolist()}
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(onnx_bytes, opts)
    x = torch.from_numpy(img)[None, None]
    outs = {}

    def ours(mixed):
        outs[f"ssdn_{'default' if mixed is None else 'float32'}"] = denoise(
            model, img, "YX", tta=False, mixed_precision=mixed, device="cpu"
        )

    def torchscript():
        with torch.no_grad():
            outs["torchscript"] = ts(x)[0, 0].numpy()

    def onnx():
        outs["onnx"] = session.run(None, {"input": x.numpy()})[0][0, 0]

    speed = _interleaved_medians(
        {
            "ssdn_denoise_default": lambda: ours(None),
            "ssdn_denoise_float32": lambda: ours(False),
            "torchscript": torchscript,
            "onnx": onnx,
        },
        repeats,
    )
    ref = outs["ssdn_float32"]
    return {
        "width": width,
        "parameters": sum(p.numel() for p in model.net.parameters()),
        "export_s": export_s,
        "package_bytes": package.stat().st_size,
        "member_bytes": sizes,
        "image": [size, size],
        **speed,
        "max_abs_diff_vs_float32": {k: float(np.abs(v - ref).max()) for k, v in outs.items() if k != "ssdn_float32"},
        "data_range": float(model.config.scale),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="tiny,light")
    p.add_argument("--size", type=int, default=512, help="side of the square test image")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (the median is reported)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    import bioimageio.spec.model.v0_5  # noqa: F401 - once per process, not part of a width's export time

    import_s = time.perf_counter() - t0
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths.split(","):
            row = run_width(width, args.size, args.repeats, Path(tmp))
            print({k: v for k, v in row.items() if k != "member_bytes"}, flush=True)
            rows.append(row)
    out = record(
        f"export_{args.widths.replace(',', '_')}_{args.size}",
        {
            "threads": args.threads,
            "rows": rows,
            "bioimageio_import_s": import_s,
            "load_average_before_after": [load_before[0], os.getloadavg()[0]],
            "torch": torch.__version__,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
