"""Volumes kept between runs: the blocks that a failed or interrupted run wrote stay in a
hidden partial output beside the target, with a record of which blocks are whole, and
``--resume`` runs only the others.

A block counts as whole once its task has returned (it flushes its region first); a block
that was being written when the run ended is written again. The record names the input
(size and modification time), the model file (its SHA-256), the block plan and the
settings that change the values; a partial output whose record differs is started afresh.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..io import _umask_permissions, open_output
from .zarrio import is_zarr

__all__ = ["partial_path", "record_path", "plan_key", "BlockRecord", "KeptOutput", "discard"]

#: Seconds between two saves of the record while blocks complete (always saved at the end).
SAVE_EVERY = 1.0


def partial_path(target) -> Path:
    """Where the unfinished output of ``target`` lives: ``.vol.ssdn-partial.mrc`` beside
    ``vol.mrc``, ``.vol.ome.zarr.ssdn-partial`` beside ``vol.ome.zarr``."""
    t = Path(target)
    if is_zarr(t):
        return t.parent / f".{t.name}.ssdn-partial"
    return t.parent / f".{t.stem}.ssdn-partial{t.suffix}"


def record_path(target) -> Path:
    """The JSON record of the blocks of ``target``'s partial output that are whole."""
    t = Path(target)
    return t.parent / f".{t.name}.ssdn-partial.json"


def _sha256(path) -> str:
    st = Path(path).stat()
    return _sha256_of(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """A file's SHA-256, read once per version of it: a run plans every volume with one model."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def plan_key(input_path, model_path, shape, inner, starts, settings: dict) -> dict:
    """What must be equal for a partial output to be continued: the input file, the model
    file, the block plan and the settings that change the values (JSON-able)."""
    st = Path(input_path).stat()
    return {
        "input": os.path.abspath(input_path),
        "input_bytes": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        "model_sha256": _sha256(model_path),
        "shape": [int(n) for n in shape],
        "inner": [int(n) for n in inner],
        "starts": [[int(v) for v in s] for s in starts],
        "settings": json.loads(json.dumps(settings, default=float)),
    }


def _recorded(path: Path) -> dict:
    """The record at ``path`` (``{"key": ..., "done": [...]}``), empty where there is none."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def recorded_inner(target, shape) -> list[int] | None:
    """The block size an earlier run of ``target`` recorded for a volume of ``shape``, if
    any: a resumed run keeps it, since the default block size follows the memory available
    when a run starts and a new plan could not continue the kept blocks."""
    key = _recorded(record_path(target)).get("key") or {}
    try:
        inner = [int(n) for n in key["inner"]]
    except (KeyError, TypeError, ValueError):
        return None
    if key.get("shape") != [int(n) for n in shape] or len(inner) != len(shape) or min(inner) < 1:
        return None
    return inner


class BlockRecord:
    """The indices of a volume's whole blocks, saved atomically beside its target."""

    def __init__(self, target, key: dict):
        self.path, self.key = record_path(target), key
        self.done: set[int] = set()
        self._saved = 0.0

    def load(self) -> set[int]:
        """The whole blocks an earlier run recorded for the same key (empty otherwise)."""
        old = _recorded(self.path)
        if old.get("key") != self.key:
            return set()
        n = len(self.key["starts"])
        self.done = {int(i) for i in old.get("done", []) if 0 <= int(i) < n}
        return set(self.done)

    def mark(self, index: int) -> None:
        """Count block ``index`` as whole (the record is saved at most every SAVE_EVERY s)."""
        self.done.add(int(index))
        if time.monotonic() - self._saved > SAVE_EVERY:
            self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"key": self.key, "done": sorted(self.done)}))
        os.replace(tmp, self.path)
        self._saved = time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class KeptOutput(open_output):
    """:class:`~napari_ssdn.io.open_output` at a fixed partial path that an error leaves in
    place (flushed), and that ``reuse`` opens again instead of creating."""

    def __init__(self, *args, partial: Path, reuse: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.partial, self.reuse = Path(partial), reuse

    def __enter__(self) -> np.ndarray:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.reuse:
            self.partial.unlink(missing_ok=True)
        return self._open(self.partial, self.reuse)

    def __exit__(self, exc_type, exc, tb):
        self._close(exc_type is None)
        if exc_type is None:
            _umask_permissions(self.partial)
            os.replace(self.partial, self.path)
        return False


def discard(target) -> None:
    """Remove ``target``'s partial output and record, if any."""
    p = partial_path(target)
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
    record_path(target).unlink(missing_ok=True)
