"""Test-time averaging over the 8 flips and rotations: PSNR and time with and without it.

    python benchmarks/ablations/tta.py --data SET12 --models 01.png=m01.ssdn 02.png=m02.ssdn ... --name tta_set12

Each model was trained on one 256 x 256 Set12 image by config_trial.py (same noise: sigma
25, seed 1000 + index); this script re-creates that noisy image, denoises it with
``tta=False`` and ``tta=True`` and prints prior-mean and posterior-mean PSNR and seconds.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # common.py and table.py live one level up
from common import add_gaussian, load_clean, psnr8, record  # noqa: E402

from napari_ssdn.core import denoise, load_model  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--models", nargs="+", required=True, metavar="IMAGE=MODEL")
p.add_argument(
    "--data", required=True, help="folder of the Set12 images the models were trained on (see benchmarks/README.md)"
)
p.add_argument("--name", default=None)
args = p.parse_args()

data = load_clean(args.data, None, 256)
names = [n for n, _ in data]
rows = []
for item in args.models:
    name, path = item.split("=", 1)
    idx = names.index(name)
    clean = data[idx][1]
    noisy = add_gaussian(clean, 25 / 255, 1000 + idx)
    model, _ = load_model(path)
    row = {"image": name, "model": path}
    for tta in (False, True):
        t0 = time.perf_counter()
        res = denoise(model, noisy, "YX", ("prior-mean", "posterior-mean"), tta=tta)
        tag = "tta" if tta else "single"
        row[f"{tag}_seconds"] = round(time.perf_counter() - t0, 2)
        row[f"{tag}_prior"] = round(psnr8(res["prior-mean"], clean), 2)
        row[f"{tag}_posterior"] = round(psnr8(res["posterior-mean"], clean), 2)
    rows.append(row)
    print(row, flush=True)
mean = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0] if k not in ("image", "model")}
print("mean", mean)
if args.name:
    print("wrote", record(args.name, {"rows": rows, "mean": mean}))
