"""Denoising time of one large image against the tile size (inference only, CPU or GPU).

    python benchmarks/tiles.py --side 2048 --tiles default,256,512

A tiny network trained for one step (speed does not depend on the weights) denoises a
random SIDE x SIDE image with each kept tile side (``default``: the engine's choice),
test-time averaging off. Prints seconds and megapixels per second.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402

from napari_ssdn.core import TrainConfig, denoise, train  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=2048)
    p.add_argument("--tiles", default="default,256,512")
    p.add_argument("--width", default="tiny")
    p.add_argument("--device", default="auto")
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    model = train(rng.random((64, 64)).astype(np.float32), "YX", TrainConfig(iterations=1, width=args.width, patch=32, device=args.device))
    image = rng.random((args.side, args.side), dtype=np.float32)
    results = {}
    for t in args.tiles.split(","):
        tile = None if t == "default" else int(t)
        start = time.perf_counter()
        denoise(model, image, "YX", tile=tile, tta=False, device=args.device)
        dt = time.perf_counter() - start
        results[t] = {"seconds": round(dt, 1), "mpx_per_s": round(image.size / dt / 1e6, 4)}
        print(f"tile {t}: {dt:.1f} s, {image.size / dt / 1e6:.3f} Mpx/s", flush=True)
    print(f"recorded {record(args.name or f'tiles_{args.side}_{args.width}', {'side': args.side, 'width': args.width, 'tiles': results})}")


if __name__ == "__main__":
    main()
