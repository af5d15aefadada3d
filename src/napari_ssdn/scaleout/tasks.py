"""The work a scale-out run sends to its workers: one file, or one block of a volume.

A task is a small dict of paths, block coordinates and the values computed once per
image on the client (noise parameters); never arrays or models. Each worker process loads
a model once and keeps it. Every task may run twice (a retry after a worker died, or a
duplicate): a file appears under its name whole or not at all, and a block write puts the
same values in the same place.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import numpy as np

from ..core.errors import SSDNError, template_of

__all__ = ["run_task", "pin_device", "cached_model", "FAULT_ENV"]

#: Test hook: a path; the first task to reach its fault point creates it and ends its own
#: process there (a worker dying in the middle of a task), later attempts run normally.
FAULT_ENV = "SSDN_FAULT_EXIT_ONCE"

_MODELS: dict = {}
_LOCK = threading.Lock()
_PINNED: str | None = None  # this worker's device, set by pin_device


def pin_device(device: str | None) -> None:
    """Make every task of this process run on ``device`` (one worker per GPU)."""
    global _PINNED
    _PINNED = device


def cached_model(path: str, device: str):
    """The model file ``path`` on ``device``, loaded once per process and kept.

    Keyed by path, modification time and device, so a model rewritten under the same name
    is read again.
    """
    from ..core import load_model
    from ..core.device import resolve_device

    dev = resolve_device(_PINNED or device)
    key = (str(Path(path).resolve()), os.stat(path).st_mtime_ns, str(dev))
    with _LOCK:
        if key not in _MODELS:
            model, _ = load_model(path)
            _MODELS[key] = model.to(dev).eval()
        return _MODELS[key], dev


def _fault_point() -> None:
    marker = os.environ.get(FAULT_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(70)


def on_worker(fn, spec: dict):
    """``fn(spec)`` on a Dask worker, this task thread's torch threads set first:
    ``SSDN_TORCH_THREADS`` where set, else one, so that a worker's task threads share its
    cores. Set per task, as OpenMP keeps the count per thread: left alone, every task thread
    of every worker ran as many threads as the machine has cores, and two workers on two
    cores ran 4x slower than one."""
    import torch

    torch.set_num_threads(int(os.environ.get("SSDN_TORCH_THREADS") or 1))
    return fn(spec)


def run_task(spec: dict) -> dict:
    """Run one task; returns ``{"warnings": [...]}``, or ``{"error": message}`` for a
    failure of the file itself (unreadable, wrong axes), which a retry would not mend."""
    try:
        if spec["task"] == "file":
            return _file_task(spec)
        return _block_task(spec)
    except SSDNError as exc:
        return {"error": template_of(exc)}  # the front end words its settings


def _file_task(spec: dict) -> dict:
    """Denoise a whole file into the run's scratch folder, then rename it onto its target."""
    from ..batch import denoise_file

    model, dev = cached_model(spec["model"], spec["device"])
    target = Path(spec["target"])
    # A name of its own per attempt: a duplicate never writes into another attempt's file.
    tmp = Path(spec["scratch"]) / f"{uuid.uuid4().hex[:8]}-{target.name}"
    warnings = []
    opts = spec["options"]
    for p in denoise_file(
        model,
        spec["input"],
        tmp,
        spec["output"],
        axes=spec["axes"],
        model_name=spec["model_name"],
        device=str(dev),
        **opts,
    ):
        if isinstance(p, str):
            warnings.append(p)
        else:
            _fault_point()
    os.replace(tmp, target)
    return {"warnings": warnings}


def _block_task(spec: dict) -> dict:
    """Denoise one block of a volume into its place in the pre-created output."""
    import torch

    from ..core.device import network_precision
    from ..core.infer.tiles import TileJob, TileWriter, volume_block
    from .volumes import open_block_input, open_block_output

    model, dev = cached_model(spec["model"], spec["device"])
    cfg = model.config
    samples = open_block_input(spec["input"])
    out = open_block_output(spec["out"])
    noise = {
        k: torch.from_numpy(np.asarray(v)).to(dev) if isinstance(v, np.ndarray) else v for k, v in spec["noise"].items()
    }
    precision = network_precision(
        dev, dev.type != "cuda" if spec["mixed_precision"] is None else spec["mixed_precision"]
    )
    with precision:
        writer = TileWriter(samples, {spec["output"]: out}, cfg.offset, cfg.scale)
        job = TileJob(model, writer, (spec["output"],), None, dev, spec["half"], None, 1)
        volume_block(job, spec["k"], spec["start"], spec["inner"], noise, spec.get("margins"))
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()
    _fault_point()
    return {"warnings": []}
