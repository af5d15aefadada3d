"""Scale-out denoising on Dask: files per second, memory per worker, per-task costs.

    python benchmarks/scaleout.py files --n 12 --size 512      # serial CLI, 1 and 2 workers, same files
    python benchmarks/scaleout.py memory --shape 32 384 384    # peak RSS per worker against the serial streaming path
    python benchmarks/scaleout.py costs                        # scheduler round trips per second (empty tasks)

files: N synthetic TIFF images (napari_ssdn.samples.noisy_cells), a tiny 2D model trained
for a few steps. Each run is a fresh ``ssdn denoise`` process (wall time from start to exit,
cluster start included); the steady rate is measured again in this process on a cluster
started beforehand and warmed up (``--scheduler``: the model already loaded on the workers).

memory: a float32 MRC volume (the synthetic volume tiled), a tiny 3D model. The serial
command in a child process (its peak resident memory, ru_maxrss), then the same volume on a
local cluster of 1 and of 2 workers (each worker's peak resident memory, ru_maxrss, read
from the workers at the end, and the peak anonymous resident memory, RssAnon sampled every
50 ms: ru_maxrss also counts the pages of the memory-mapped input and output files, which
the kernel reclaims under pressure); outputs compared with the serial one.

costs: 2,000 empty tasks through ``client.map`` + ``as_completed`` on a 2-worker local
cluster: the scheduler's round trips per second, the figure that bounds a large cluster.
Threads: the serial command uses torch's default (the machine's cores); a worker runs
cores / workers tasks at a time with one torch thread each (what ``--workers`` sets up).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from common import record, tiled_mrc  # noqa: E402

from napari_ssdn.core import TrainConfig, Trainer  # noqa: E402

CHILD = """
import resource, sys, time
from napari_ssdn.cli import main
t = time.perf_counter(); rc = main(sys.argv[1:]); s = time.perf_counter() - t
print("RESULT", rc, s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


class AnonPeaks:
    """Peak anonymous resident memory (RssAnon: heap and tensors, what cannot be paged back
    to a file) of the processes ``pids``, sampled every ``every`` s from /proc while the
    block runs. ru_maxrss also counts the pages of memory-mapped input and output files, which
    the kernel reclaims under pressure; this figure does not. Every sample is kept in
    ``samples`` as (seconds, pid, VmRSS MB, RssAnon MB)."""

    def __init__(self, pids=(), every: float = 0.05):
        self.peaks = {int(p): 0 for p in pids}
        self.samples: list[tuple] = []
        self.every = every
        self._stop = threading.Event()

    def add(self, pid: int) -> None:
        self.peaks.setdefault(int(pid), 0)

    def _sample(self):
        t0 = time.perf_counter()
        while not self._stop.wait(self.every):
            for pid in list(self.peaks):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        kb = {ln.split(":")[0]: int(ln.split()[1]) for ln in f if ln.startswith(("VmRSS", "RssAnon"))}
                except (OSError, ValueError):
                    continue  # the process has ended
                if "RssAnon" not in kb:
                    continue
                self.peaks[pid] = max(self.peaks[pid], kb["RssAnon"])
                self.samples.append((time.perf_counter() - t0, pid, kb.get("VmRSS", 0) / 1024, kb["RssAnon"] / 1024))

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def mb(self) -> list[int]:
        return sorted(round(kb / 1024) for kb in self.peaks.values())


def _ssdn(args) -> tuple[float, float, float]:
    """Run ``ssdn`` in a child process; returns (wall seconds including start-up, peak RSS
    MB, peak anonymous RSS MB)."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with AnonPeaks([proc.pid]) as anon:
        out, err = proc.communicate()
    wall = time.perf_counter() - t
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
    if proc.returncode != 0 or line is None or line.split()[1] != "0":
        print(err[-3000:])
        raise SystemExit(f"ssdn {' '.join(map(str, args))} failed")
    return wall, float(line.split()[3]), anon.mb()[0]


def _cluster(n, threads=None):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=threads or max(1, (os.cpu_count() or 1) // n),
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    return cluster, Client(cluster)


def _steady(base, tmp, n, threads=None):
    """Seconds of one run on a local cluster of ``n`` workers started and warmed up beforehand."""
    from napari_ssdn.cli import main as ssdn_main

    cluster, client = _cluster(n, threads)
    with cluster, client:
        address = ["--scheduler", cluster.scheduler_address]
        ssdn_main([str(a) for a in base[:-1]] + ["-o", str(tmp / f"warm{n}x{threads}"), "-q", *address])
        t = time.perf_counter()
        ssdn_main([str(a) for a in base] + ["-o", str(tmp / f"steady{n}"), *address])
        return time.perf_counter() - t


def _train(data, axes, **cfg):
    trainer = Trainer(data, axes, TrainConfig(width="tiny", iterations=5, device="cpu", seed=0, **cfg))
    for _ in trainer.run():
        pass
    return trainer


def cmd_files(args):
    from napari_ssdn.io import read_image, write_image
    from napari_ssdn.samples import noisy_cells

    tmp = Path(tempfile.mkdtemp(prefix="ssdn-scaleout-"))
    (tmp / "in").mkdir()
    for i in range(args.n):
        noisy, _ = noisy_cells(args.size, seed=i)
        write_image(tmp / "in" / f"img{i:03d}.tif", noisy, "YX")
    _train(noisy, "YX", patch=64).save(tmp / "m.ssdn")
    inputs = sorted((tmp / "in").iterdir())
    base = ["denoise", *inputs, "-m", tmp / "m.ssdn", "--quiet"]
    rows = {}
    wall, _, _ = _ssdn(base + ["-o", tmp / "serial"])
    rows["serial"] = {"seconds": round(wall, 2), "files_per_s": round(args.n / wall, 3)}
    print("serial", rows["serial"], flush=True)
    # One worker on one core is the baseline that N workers on N cores are measured against.
    rows["workers_1_one_thread"] = {"steady_files_per_s": round(args.n / _steady(base, tmp, 1, 1), 3)}
    print("1 worker, 1 thread", rows["workers_1_one_thread"], flush=True)
    for n in (1, 2):
        wall, _, _ = _ssdn(base + ["-o", tmp / f"w{n}", "--workers", n])
        steady = _steady(base, tmp, n)
        same = max(
            float(np.abs(read_image(tmp / "serial" / p.name).data - read_image(tmp / f"w{n}" / p.name).data).max())
            for p in inputs
        )
        rows[f"workers_{n}"] = {
            "seconds": round(wall, 2),
            "files_per_s": round(args.n / wall, 3),
            "steady_seconds": round(steady, 2),
            "steady_files_per_s": round(args.n / steady, 3),
            "steady_seconds_per_file_per_worker": round(steady * n / args.n, 3),
            "max_abs_difference_to_serial": same,
        }
        print(f"{n} worker(s)", rows[f"workers_{n}"], flush=True)
    _cleanup(tmp)
    path = record(
        args.name or "scaleout_files", {"files": args.n, "size": args.size, "network": "tiny 2D", "runs": rows}
    )
    print(f"recorded {path}")


def _worker_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_memory(args):
    import mrcfile

    from napari_ssdn.cli import main as ssdn_main
    from napari_ssdn.samples import noisy_volume

    shape = tuple(args.shape)
    tmp = Path(tempfile.mkdtemp(prefix="ssdn-scaleout-"))
    block, _ = noisy_volume((32, 128, 128), sigma=0.1, seed=0)
    src = tmp / "vol.mrc"
    tiled_mrc(src, shape, block)
    _train(block, "ZYX", ndim=3, patch=24, batch=1).save(tmp / "m.ssdn")
    base = ["denoise", src, "-m", tmp / "m.ssdn", "--quiet"]
    wall, peak, anon = _ssdn(base + ["-o", tmp / "serial.mrc"])
    rows = {"serial": {"seconds": round(wall, 1), "peak_rss_mb": round(peak), "peak_anon_mb": anon}}
    print("serial", rows["serial"], flush=True)
    with mrcfile.mmap(tmp / "serial.mrc", mode="r") as m:
        serial = np.array(m.data)
    for n in (1, 2):
        out = tmp / f"w{n}.{args.format}"
        cluster, client = _cluster(n)
        with cluster, client, AnonPeaks(client.run(os.getpid).values()) as anon:
            t = time.perf_counter()
            rc = ssdn_main([str(a) for a in base] + ["-o", str(out), "--scheduler", cluster.scheduler_address])
            seconds = time.perf_counter() - t
            peaks = client.run(_worker_peak_mb)
        assert rc == 0
        if args.format == "mrc":
            with mrcfile.mmap(out, mode="r") as m:
                diff = float(np.abs(np.asarray(m.data) - serial).max())
        else:
            import zarr

            diff = float(np.abs(zarr.open_array(str(out / "0"), mode="r")[...] - serial).max())
        rows[f"workers_{n}"] = {
            "seconds": round(seconds, 1),
            "peak_rss_mb_per_worker": sorted(round(v) for v in peaks.values()),
            "peak_anon_mb_per_worker": anon.mb(),
            "max_abs_difference_to_serial": diff,
        }
        print(f"{n} worker(s)", rows[f"workers_{n}"], flush=True)
    _cleanup(tmp)
    path = record(
        args.name or "scaleout_memory",
        {
            "shape": list(shape),
            "bytes": int(np.prod(shape)) * 4,
            "output": args.format,
            "network": "tiny 3D",
            "runs": rows,
        },
    )
    print(f"recorded {path}")


def _noop(i):
    return i


def cmd_costs(args):
    from distributed import as_completed

    cluster, client = _cluster(2)
    with cluster, client:
        client.gather(client.map(_noop, range(100), pure=False))  # warm up
        t = time.perf_counter()
        for f in as_completed(client.map(_noop, range(args.tasks), pure=False)):
            f.result()
        seconds = time.perf_counter() - t
    rows = {"tasks": args.tasks, "seconds": round(seconds, 2), "tasks_per_s": round(args.tasks / seconds)}
    print(rows)
    path = record(args.name or "scaleout_costs", rows)
    print(f"recorded {path}")


def _cleanup(tmp: Path):
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    # Here, not at import: multiprocessing imports this script again in every worker it spawns.
    torch.set_num_threads(os.cpu_count() or 1)  # this process trains the small models and runs the client
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("files")
    f.add_argument("--n", type=int, default=12)
    f.add_argument("--size", type=int, default=512)
    m = sub.add_parser("memory")
    m.add_argument("--shape", type=int, nargs=3, default=[32, 384, 384])
    m.add_argument("--format", choices=["mrc", "ome.zarr"], default="mrc")
    c = sub.add_parser("costs")
    c.add_argument("--tasks", type=int, default=2000)
    for sp in (f, m, c):
        sp.add_argument("--name")
    args = p.parse_args(argv)
    {"files": cmd_files, "memory": cmd_memory, "costs": cmd_costs}[args.cmd](args)


if __name__ == "__main__":
    main()
