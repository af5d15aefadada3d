"""Steps per second of the training loop on one process against several gloo ranks
(DistributedDataParallel on the CPU), with the same total batch.

    python benchmarks/ddp.py                                  # 1 process (1 and 2 threads) against 2 ranks x 1 thread
    python benchmarks/ddp.py --steps 80 --batch 8 --patch 64 --name ddp_cpu

The point of several ranks is several GPUs (or machines); on one small CPU the ranks share
its cores, so this shows what the gradient averaging and the per-step agreement (rank 0's
clock, the finite check) cost, and that the loop runs. Synthetic data (``samples.clean_cells``
plus Gaussian noise), the tiny network, validation only at the first and last step (not timed).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402


def _config(args, batch: int):
    from napari_ssdn.core import TrainConfig

    return TrainConfig(iterations=args.steps, patch=args.patch, batch=batch, width="tiny", noise="gaussian", blind=1,
                       val_every=10**6, device="cpu", seed=0)


def _data(size: int) -> np.ndarray:
    from napari_ssdn.samples import clean_cells

    clean = clean_cells(size, seed=3)
    return (clean + 0.1 * np.random.default_rng(7).standard_normal(clean.shape)).astype(np.float32)


def _rate(records, skip: int) -> float:
    """Steps per second between record ``skip`` and the one before the last (the last validates)."""
    a, b = records[skip - 1], records[-2]
    return (b.step - a.step) / (b.elapsed - a.elapsed)


def _worker(rank: int, world: int, threads: int, port: int, args, queue) -> None:
    torch.set_num_threads(threads)
    if world == 1:
        from napari_ssdn.core import Trainer

        trainer = Trainer(_data(args.size), "YX", _config(args, args.batch))
    else:
        from napari_ssdn.core.distributed import DistributedTrainer, close, init_ranks

        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
                           "WORLD_SIZE": str(world), "GLOO_SOCKET_IFNAME": "lo"})
        ranks = init_ranks("cpu", timeout=120)
        trainer = DistributedTrainer(_data(args.size), "YX", _config(args, args.batch // world), ranks=ranks)
    records = list(trainer.run())
    if rank == 0:
        queue.put({"ranks": world, "threads_per_rank": threads, "batch_per_rank": args.batch // world,
                   "steps": records[-1].step, "steps_per_s": round(_rate(records, args.skip), 3),
                   "final_loss": records[-2].loss})
    if world > 1:
        close()


def _run(world: int, threads: int, args) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, threads, port, args, queue)) for r in range(world)]
    for p in procs:
        p.start()
    result = queue.get(timeout=600)
    for p in procs:
        p.join(timeout=60)
    result["megapixels_per_s"] = round(result["steps_per_s"] * args.batch * args.patch**2 / 1e6, 3)
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--skip", type=int, default=5, help="steps left out of the timing (start-up)")
    parser.add_argument("--batch", type=int, default=8, help="total crops per step (split over the ranks)")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic image")
    parser.add_argument("--name", default="ddp_cpu")
    args = parser.parse_args()
    runs = [_run(1, 1, args), _run(1, 2, args), _run(2, 1, args)]
    path = record(args.name, {"settings": vars(args), "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
