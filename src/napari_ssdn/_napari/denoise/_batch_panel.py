"""The Denoise widget's batch section: denoise several image layers, or a folder of TIFF/MRC
files, with the widget's model, output and device; one progress bar and a Cancel.

The run is :func:`~._batch_jobs.batch_denoise_job` in a worker thread; files go through
:func:`napari_ssdn.batch.denoise_file`, the path of ``ssdn denoise``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._common import advance_progress, geometry_of, in_widget_terms, layer_snapshot, set_or_add_image
from .._header import wrapping
from .._options import OUTPUT_SUFFIX
from .._words import failure_text
from .._workers import WorkerGroup
from ._batch_jobs import PER_ITEM, BatchProgress, BatchSummary, FileItem, ItemDone, LayerItem, batch_denoise_job

__all__ = ["BatchPanel", "summary_text"]


def summary_text(summary: BatchSummary, what: str, where: str = "") -> str:
    """A batch run's outcome in words, naming each item that failed and why."""
    n, done = summary.count, len(summary.done)
    head = f"Cancelled after {done} of {n} {what}" if summary.cancelled else f"Denoised {done} of {n} {what}"
    text = head + (f" into {where}" if where and done else "") + "."
    if summary.failed:
        text += " Failed: " + "; ".join(f"{name!r} ({in_widget_terms(why)})" for name, why in summary.failed) + "."
    if summary.warnings:
        text += " \u26a0 Check: " + "; ".join(f"{name!r}: {why}" for name, why in summary.warnings)
    return text


class BatchPanel(QWidget):
    """Layers list, **Denoise selected layers**, **Denoise folder…** and **Cancel**.

    Parameters
    ----------
    viewer : napari.Viewer
    settings : callable
        ``() -> (entry, output, device)``: the widget's model (a SessionModel), output kind
        and device; raises SSDNError saying what to fix.
    axes_for : callable
        ``(layer) -> str``: the axes to denoise ``layer`` with.

    Signals
    -------
    running(bool)
        A run started or ended (the widget disables its own Denoise meanwhile).
    """

    running = Signal(bool)

    def __init__(self, viewer, settings: Callable, axes_for: Callable, parent=None):
        super().__init__(parent)
        self.viewer, self.settings, self.axes_for = viewer, settings, axes_for
        self.worker = None
        self.workers = WorkerGroup(self)  # stopped when the widget closes
        self.summary: BatchSummary | None = None
        self._stop = threading.Event()
        self._pbar = None
        self._targets: dict = {}
        self._what, self._where = "layers", ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Several layers, or a folder of files:"))
        # One row per image layer: its name, and the axes it is denoised with (editable).
        self.layer_list = QTableWidget(0, 2)
        self.layer_list.setHorizontalHeaderLabels(["Layer", "Axes"])
        self.layer_list.verticalHeader().setVisible(False)
        self.layer_list.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.layer_list.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.layer_list.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.layer_list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.layer_list.setMaximumHeight(110)
        self.layer_list.setToolTip(
            "Image layers to denoise in one run (click to select several); double-click an Axes "
            "cell to change the axes a layer is denoised with, e.g. TYX or ZYX"
        )
        self._axes: dict[str, str] = {}  # axes typed for a layer, by name
        self.layer_list.itemChanged.connect(self._on_axes_edited)
        lay.addWidget(self.layer_list)
        row = QHBoxLayout()
        self.all_button = QPushButton("All")
        self.all_button.setToolTip("Select all image layers")
        self.layers_button = QPushButton("Denoise selected layers")
        self.layers_button.setToolTip("Denoise each selected layer into its own output layer, one after the other")
        row.addWidget(self.all_button)
        row.addWidget(self.layers_button, 1)
        lay.addLayout(row)
        row = QHBoxLayout()
        self.folder_button = QPushButton("Denoise folder\u2026")
        self.folder_button.setToolTip(
            "Denoise every TIFF and MRC file of a folder into another folder (same names, float32, with the "
            "voxel size), as `ssdn denoise` does; inputs are never overwritten"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop after the current tile; finished outputs are kept, an unfinished file is not written"
        )
        self.cancel_button.setEnabled(False)
        row.addWidget(self.folder_button, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.status = QLabel("")
        wrapping(self.status)
        lay.addWidget(self.status)

        self.all_button.clicked.connect(self.layer_list.selectAll)
        self.layers_button.clicked.connect(lambda: self.run_layers())
        self.folder_button.clicked.connect(self._folder_dialog)
        self.cancel_button.clicked.connect(self.cancel)
        ev = viewer.layers.events
        for e in (ev.inserted, ev.removed, ev.moved, ev.reordered):
            e.connect(self.refresh)
        self.refresh()

    # -- layers -------------------------------------------------------------------------
    def refresh(self, event=None) -> None:
        """Re-list the image layers, keeping the selection of those still there."""
        from napari.layers import Image

        try:
            chosen = set(self.selected_layers())
        except RuntimeError:  # the widget was deleted; the layer list outlives it
            return
        table = self.layer_list
        table.blockSignals(True)
        table.setRowCount(0)
        for lay in self.viewer.layers:
            if isinstance(lay, Image):
                try:
                    lay.events.name.connect(self.refresh)
                except Exception:  # noqa: BLE001 - already connected
                    pass
                row = table.rowCount()
                table.insertRow(row)
                name = QTableWidgetItem(lay.name)
                name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
                table.setItem(row, 0, name)
                table.setItem(row, 1, QTableWidgetItem(self.layer_axes(lay)))
                for col in (0, 1):
                    table.item(row, col).setSelected(lay.name in chosen)
        table.blockSignals(False)

    def layer_axes(self, layer) -> str:
        """The axes ``layer`` is denoised with: as typed in its row, else the widget's."""
        return self._axes.get(layer.name) or self.axes_for(layer)

    def set_layer_axes(self, name: str, axes: str) -> None:
        """Denoise the layer ``name`` with ``axes`` (what typing in its Axes cell does)."""
        for row in range(self.layer_list.rowCount()):
            if self.layer_list.item(row, 0).text() == name:
                self.layer_list.item(row, 1).setText(axes)

    def _on_axes_edited(self, item) -> None:
        if item.column() == 1:
            name = self.layer_list.item(item.row(), 0).text()
            self._axes[name] = item.text().strip().upper()

    def selected_layers(self) -> list[str]:
        """The selected layers' names, in the list's order."""
        rows = sorted({it.row() for it in self.layer_list.selectedItems()})
        return [self.layer_list.item(r, 0).text() for r in rows]

    def select_layers(self, names) -> None:
        for row in range(self.layer_list.rowCount()):
            chosen = self.layer_list.item(row, 0).text() in set(names)
            for col in (0, 1):
                self.layer_list.item(row, col).setSelected(chosen)

    def run_layers(self, names=None):
        """Denoise the layers ``names`` (default: those selected) into ``<name>_ssdn``
        layers (the output's suffix); returns the worker, or None with the reason shown."""
        names = self.selected_layers() if names is None else list(names)
        names = [n for n in names if n in self.viewer.layers]
        if not names:
            return self._refuse("select one or more image layers first (or All)")
        items = []
        for name in names:
            layer = self.viewer.layers[name]
            items.append(LayerItem(name, layer_snapshot(layer), self.layer_axes(layer)))
        self._targets = {n: (geometry_of(self.viewer.layers[n]), bool(self.viewer.layers[n].rgb)) for n in names}
        return self._start(items, "layers", "")

    # -- folders ------------------------------------------------------------------------
    def run_folder(self, input_dir, output_dir):
        """Denoise the TIFF and MRC files of ``input_dir`` into ``output_dir``; returns the
        worker, or None with the reason shown."""
        from ...batch import folder_plan
        from ...core.errors import SSDNError

        try:
            pairs = folder_plan(input_dir, output_dir)
        except SSDNError as exc:
            return self._refuse(in_widget_terms(exc))
        self._targets = {}
        return self._start([FileItem(p, t) for p, t in pairs], "files", str(Path(output_dir)))

    def _folder_dialog(self) -> None:
        src = QFileDialog.getExistingDirectory(self, "Folder of images to denoise (TIFF, MRC)")
        if not src:
            return
        dst = QFileDialog.getExistingDirectory(self, "Folder for the denoised files (not the input folder)")
        if dst:
            self.run_folder(src, dst)

    # -- the run ------------------------------------------------------------------------
    def _start(self, items: list, what: str, where: str):
        from napari.utils import progress

        from ...core.errors import SSDNError

        if self.worker is not None:
            return self.worker
        try:
            entry, output, device = self.settings()
        except SSDNError as exc:
            return self._refuse(in_widget_terms(exc))
        self._stop = threading.Event()
        self._what, self._where, self._output, self._model_name = what, where, output, entry.name
        self.summary = None
        self._pbar = progress(total=len(items) * PER_ITEM, desc=f"napari-ssdn denoising {len(items)} {what}")
        self._buttons(running=True)
        self._say(f"Denoising {len(items)} {what} with {entry.name!r}\u2026")
        # Closing the dock (or napari deleting it with its window) cancels the run.
        self.worker = self.workers.start(
            batch_denoise_job,
            entry.model,
            items,
            output,
            device,
            self._stop,
            model_name=repr(entry.name),
            stop=self._stop,
            on={
                "yielded": self._on_yield,
                "returned": self._on_result,
                "errored": lambda exc: self._say(f"\u26a0 Denoising failed: {failure_text(exc)}", error=True),
                "finished": self._on_finished,
            },
        )
        self.running.emit(True)
        return self.worker

    def cancel(self) -> None:
        """Stop after the current tile."""
        if self.worker is not None:
            self._stop.set()
            self.cancel_button.setEnabled(False)
            self._say("Cancelling after this tile\u2026")

    def _on_yield(self, rec) -> None:
        if isinstance(rec, ItemDone):
            if rec.result is not None and rec.name in self._targets:
                self._add_layer(rec.name, rec.result)
            return
        if isinstance(rec, BatchProgress):
            self._say(
                f"{self._what.capitalize()[:-1]} {rec.index + 1} / {rec.count} {rec.name!r}: "
                f"tile {rec.done} / {rec.total}"
            )
            advance_progress(self._pbar, rec.units, rec.count * PER_ITEM)

    def _add_layer(self, name: str, result) -> None:
        import numpy as np

        geom, rgb = self._targets[name]
        if rgb and self._output != "posterior-std":
            result = np.clip(result, 0, None)
        meta = dict(geom["metadata"])
        meta["ssdn"] = {"output": self._output, "model": self._model_name}
        set_or_add_image(
            self.viewer, f"{name}{OUTPUT_SUFFIX[self._output]}", result, rgb=rgb, **{**geom, "metadata": meta}
        )

    def _on_result(self, summary: BatchSummary) -> None:
        from napari.utils.notifications import show_info, show_warning

        self.summary = summary
        text = summary_text(summary, self._what, self._where)
        self._say(text, error=bool(summary.failed))
        (show_warning if summary.failed else show_info)(f"napari-ssdn: {text}")

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self._buttons(running=False)
        self.running.emit(False)

    def _buttons(self, running: bool) -> None:
        for b in (self.layers_button, self.folder_button, self.all_button):
            b.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _refuse(self, message: str):
        from napari.utils.notifications import show_error

        self._say(f"\u26a0 {message}", error=True)
        show_error(f"napari-ssdn: {message}")
        return None

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #e05050;" if error else "")
