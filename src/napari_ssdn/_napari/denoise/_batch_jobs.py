"""The Denoise widget's batch run, in a worker thread: several layers or a folder of files
with one model, one after the other, through the same core path as ``ssdn denoise``.

Plain data in, small records out; nothing here touches Qt or the viewer. An item that fails
is recorded by name and the others go on; a stop ends the run after the current tile (an
unfinished output file is removed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.errors import template_of
from .._jobs import _guard

__all__ = ["LayerItem", "FileItem", "BatchProgress", "ItemDone", "BatchSummary", "batch_denoise_job", "PER_ITEM"]

#: Progress-bar units per item (the bar spans all items; tiles move it within one).
PER_ITEM = 100


@dataclass(frozen=True)
class LayerItem:
    """A layer's data to denoise into a layer (``name``: the input layer's)."""

    name: str
    data: np.ndarray
    axes: str


@dataclass(frozen=True)
class FileItem:
    """A file to denoise into ``target``."""

    path: Path
    target: Path

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class BatchProgress:
    """Tile ``done`` of ``total`` of item ``index`` (of ``count``), named ``name``."""

    index: int
    count: int
    name: str
    done: int
    total: int
    eta: float

    @property
    def units(self) -> int:
        """Progress-bar position out of ``count * PER_ITEM``."""
        return self.index * PER_ITEM + int(PER_ITEM * self.done / max(self.total, 1))


@dataclass(frozen=True)
class ItemDone:
    """Item ``index`` ended: a layer's ``result`` array, or the file ``path`` written."""

    index: int
    name: str
    result: np.ndarray | None = None
    path: str | None = None


@dataclass
class BatchSummary:
    """What a batch run did: items done, failed (name, reason), warned (name, warning),
    and whether it was cancelled (the items after ``done`` and ``failed`` never started)."""

    count: int = 0
    done: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    cancelled: bool = False


def _layer_run(model, item: LayerItem, output: str, device: str):
    from ...core import denoise_iter, scale_mismatch

    mismatch = scale_mismatch(model, item.data, item.axes)
    if mismatch:
        yield mismatch
    return (yield from denoise_iter(model, item.data, item.axes, output, device=device))


def _file_run(model, item: FileItem, output: str, device: str, model_name: str):
    from ...batch import denoise_file

    return (
        yield from denoise_file(
            model, item.path, item.target, output, model_name=model_name, axes_option=None, device=device
        )
    )


def batch_denoise_job(
    model, items: list, output: str, device: str, stop: threading.Event, model_name: str = "the model"
):
    """Denoise ``items`` (:class:`LayerItem` or :class:`FileItem`) one after the other,
    yielding :class:`BatchProgress` per tile and :class:`ItemDone` per item; returns a
    :class:`BatchSummary`. ``stop``: set from the main thread to cancel."""
    from ...core.device import threads_for_run

    with threads_for_run():  # the cores free now, in the thread that runs the tiles
        return (yield from _batch_items(model, items, output, device, stop, model_name))


def _batch_items(model, items: list, output: str, device: str, stop: threading.Event, model_name: str):
    summary = BatchSummary(count=len(items))
    for index, item in enumerate(items):
        if stop.is_set():
            summary.cancelled = True
            break
        if isinstance(item, FileItem):
            gen = _file_run(model, item, output, device, model_name)
        else:
            gen = _layer_run(model, item, output, device)
        gen = _guard(gen, "denoising")
        result = None
        try:
            while True:
                try:
                    rec = next(gen)
                except StopIteration as end:
                    result = end.value
                    break
                if isinstance(rec, str):
                    summary.warnings.append((item.name, rec))
                    continue
                yield BatchProgress(index, len(items), item.name, rec.done, rec.total, rec.eta)
                if stop.is_set():
                    gen.close()  # an unfinished output file is removed
                    summary.cancelled = True
                    break
        except Exception as exc:  # noqa: BLE001 - report the item by name; the others go on
            summary.failed.append((item.name, template_of(exc) or type(exc).__name__))
            summary.warnings = [(n, w) for n, w in summary.warnings if n != item.name]  # the failure says enough
            continue
        if summary.cancelled:
            break
        summary.done.append(item.name)
        if isinstance(item, FileItem):
            yield ItemDone(index, item.name, path=str(result))
        else:
            yield ItemDone(index, item.name, result=result)
    return summary
