"""Steps per second of the training loop on one process against several gloo ranks
(DistributedDataParallel on the CPU), one thread each, with the same total batch.

    python benchmarks/ddp.py                                  # 1 process against 2 ranks, 1 thread each, twice
    python benchmarks/ddp.py --steps 50 --rounds 2 --batch 8 --patch 64 --name ddp_cpu
    python benchmarks/ddp.py --threads 2                      # also 1 process with 2 threads (on an idle machine)

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
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402


def _config(args, batch: int):
    from napari_ssdn.core import TrainConfig

    return TrainConfig(
        iterations=args.steps,
        patch=args.patch,
        batch=batch,
        width="tiny",
        noise="gaussian",
        blind=1,
        val_every=10**6,
        device="cpu",
        seed=0,
    )


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
        from napari_ssdn.core.training.distributed import DistributedTrainer, close, init_ranks

        os.environ.update(
            {
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(world),
                "GLOO_SOCKET_IFNAME": "lo",
            }
        )
        ranks = init_ranks("cpu", timeout=120)
        trainer = DistributedTrainer(_data(args.size), "YX", _config(args, args.batch // world), ranks=ranks)
    records = list(trainer.run())
    result = {
        "ranks": world,
        "threads_per_rank": threads,
        "batch_per_rank": args.batch // world,
        "steps": records[-1].step,
        "steps_per_s": round(_rate(records, args.skip), 3),
        "final_loss": records[-2].loss,
    }
    if world > 1:
        result.update(_collectives(trainer))
        close()
    if rank == 0:
        queue.put(result)


def _collectives(trainer, reps: int = 50) -> dict:
    """Milliseconds of the exchanges of one step, timed alone: the gradient average (one
    all-reduce of every parameter) and the scalars agreed on (rank 0's clock, the finite check)."""
    import torch.distributed as dist

    flat = torch.zeros(sum(p.numel() for p in trainer.model.parameters()))
    out = {"parameters": flat.numel()}
    for name, op in (
        ("allreduce_gradients_ms", lambda: dist.all_reduce(flat)),
        ("broadcast_scalar_ms", lambda: dist.broadcast(torch.zeros(2, dtype=torch.float64), src=0)),
    ):
        dist.barrier()
        t = time.perf_counter()
        for _ in range(reps):
            op()
        out[name] = round(1e3 * (time.perf_counter() - t) / reps, 3)
    return out


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
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--skip", type=int, default=5, help="steps left out of the timing (start-up)")
    parser.add_argument("--batch", type=int, default=8, help="total crops per step (split over the ranks)")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic image")
    parser.add_argument("--rounds", type=int, default=2, help="times each setting runs, interleaved")
    parser.add_argument(
        "--threads",
        type=int,
        choices=[1, 2],
        default=1,
        help="2: also one process with 2 threads (meaningless on a machine busy with other work)",
    )
    parser.add_argument("--name", default="ddp_cpu")
    args = parser.parse_args()
    # Interleaved rounds: the machine's other load drifts, and each setting sees some of it.
    settings = [(1, 1), (2, 1)] + ([(1, 2)] if args.threads == 2 else [])
    runs = [_run(world, threads, args) for _ in range(args.rounds) for world, threads in settings]
    summary = {}
    for world, threads in settings:
        rates = [r["steps_per_s"] for r in runs if (r["ranks"], r["threads_per_rank"]) == (world, threads)]
        summary[f"{world} x {threads} thread(s)"] = {"steps_per_s": rates, "best": max(rates)}
    path = record(args.name, {"settings": vars(args), "summary": summary, "runs": runs})
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
