"""A volume larger than this machine's memory: resident memory while it is denoised.

    python benchmarks/outofcore.py --factor 1.5 --seconds 240

Writes a float32 MRC of ``factor`` x this machine's memory (a sparse file: the first planes
hold the synthetic volume tiled, the rest zeros) and a tiny 3D model trained for a few
steps, then runs ``ssdn denoise`` on it for ``seconds`` each, stopping it with Ctrl-C:

- serially (MRC out, streaming), sampling the process's resident memory (VmRSS) and its
  anonymous part (RssAnon: heap and tensors, what cannot be paged back to a file) every
  0.5 s, with the peaks of the first and second half of the run apart;
- on a local cluster of 2 workers (OME-Zarr out), the same per worker; then again with
  ``--resume`` for a quarter of the time, which must continue from the kept blocks.

The whole volume takes hours on a CPU; what this shows is that the memory does not grow
with the volume or with the blocks done, and that an interrupted run continues.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402
from scaleout import AnonPeaks, _cluster, _train  # noqa: E402


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemTotal:"))


def _summary(samples: list[tuple], pids, seconds: float) -> dict:
    """Per process: peak VmRSS and RssAnon, and the RssAnon peaks of each half of the run."""
    out = {}
    for pid in pids:
        mine = [s for s in samples if s[1] == pid] or [(0.0, pid, 0.0, 0.0)]
        halves = [[s[3] for s in mine if (s[0] >= seconds / 2) == late] or [0.0] for late in (False, True)]
        out[str(pid)] = {
            "peak_rss_mb": round(max(s[2] for s in mine)),
            "peak_anon_mb": round(max(s[3] for s in mine)),
            "peak_anon_mb_first_half": round(max(halves[0])),
            "peak_anon_mb_second_half": round(max(halves[1])),
        }
    return out


def _interrupted(args, seconds, pids=None):
    """Run ``ssdn`` in a child for ``seconds``, then Ctrl-C; (stderr, memory summary)."""
    cmd = [sys.executable, "-m", "napari_ssdn.cli", *map(str, args)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    pids = pids or [proc.pid]
    with AnonPeaks(pids, every=0.5) as mem:
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=300)[1]
    return err, _summary(mem.samples, pids, seconds)


def _blocks(err: str):
    done = re.findall(r"(\d+)/(\d+)", err)
    return [int(v) for v in done[-1]] if done else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--factor", type=float, default=1.5, help="volume size / this machine's memory")
    p.add_argument("--side", type=int, default=2048, help="Y and X of the volume")
    p.add_argument("--seconds", type=float, default=240)
    p.add_argument("--dir", default=None, help="folder for the volume (default: a temporary one)")
    p.add_argument("--name", default="outofcore")
    args = p.parse_args(argv)

    from napari_ssdn.samples import noisy_volume

    tmp = Path(tempfile.mkdtemp(prefix="ssdn-ooc-", dir=args.dir))
    z = math.ceil(args.factor * _mem_total() / (4 * args.side**2))
    shape = (z, args.side, args.side)
    block, _ = noisy_volume((32, 128, 128), sigma=0.1, seed=0)
    import mrcfile

    with mrcfile.new_mmap(tmp / "vol.mrc", shape=shape, mrc_mode=2) as m:  # a sparse file
        for i in range(64):  # the planes the run reaches hold data, the rest stay zero
            plane = block[i % block.shape[0]]
            m.data[i] = np.tile(plane, (args.side // plane.shape[0], args.side // plane.shape[1]))
        m.voxel_size = 10.0
    _train(block, "ZYX", ndim=3, patch=24, batch=1).save(tmp / "m.ssdn")
    base = ["denoise", tmp / "vol.mrc", "-m", tmp / "m.ssdn"]
    rows = {
        "volume": {
            "shape": list(shape),
            "gib": round(4 * np.prod(shape) / 2**30, 1),
            "machine_memory_gib": round(_mem_total() / 2**30, 1),
        }
    }
    err, mem = _interrupted(base + ["-o", tmp / "serial.mrc"], args.seconds)
    rows["serial"] = {"blocks_done_of": _blocks(err), "memory": mem}
    print("serial", rows["serial"], flush=True)
    cluster, client = _cluster(2)
    with cluster, client:
        import os

        pids = list(client.run(os.getpid).values())
        out = ["-o", tmp / "w2.ome.zarr", "--scheduler", cluster.scheduler_address]
        err, mem = _interrupted(base + out, args.seconds, pids)
        rows["workers_2"] = {"blocks_done_of": _blocks(err), "memory": mem}
        print("2 workers", rows["workers_2"], flush=True)
        err, mem = _interrupted(base + out + ["--resume"], args.seconds / 4, pids)
        line = next((ln for ln in err.splitlines() if "resuming" in ln), "")
        rows["workers_2_resumed"] = {"resuming_line": line.strip(), "blocks_done_of": _blocks(err), "memory": mem}
        print("resumed", rows["workers_2_resumed"], flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"recorded {record(args.name, rows)}")


if __name__ == "__main__":
    main()
