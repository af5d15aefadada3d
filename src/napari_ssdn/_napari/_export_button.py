"""The widgets' "Export…" button: the chosen model as a bioimage.io package, written in a
background thread (napari_ssdn.export does the work)."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QFileDialog, QPushButton

from ._workers import WorkerGroup

__all__ = ["ExportButton"]


def _export_job(model, info, path, sample, axes, name):
    from ..core.errors import SSDNError, one_line
    from ..export import export_model

    try:
        return export_model(model, path, sample=sample, axes=axes, info=info, name=name)
    except SSDNError:
        raise
    except Exception as exc:  # noqa: BLE001 - one readable line in the widget, nothing written
        raise SSDNError(one_line(exc, 300)) from None


class ExportButton(QPushButton):
    """Ask for a ``.zip`` name and export the chosen model there.

    Parameters
    ----------
    entry : callable
        Returns the chosen :class:`SessionModel` (or None).
    sample : callable
        Returns ``(data, axes)`` of an example image for the package, or None for the
        crop of the training data kept with the model.
    status : QLabel
        Where progress and the outcome are shown.
    """

    def __init__(self, entry: Callable, sample: Callable, status, parent=None):
        super().__init__("Export…", parent)
        self._entry, self._sample, self._status = entry, sample, status
        self.worker = None
        self.workers = WorkerGroup(self)  # stopped when the widget closes
        self.setToolTip(
            "Write the model as a bioimage.io package (.zip) for deepImageJ, bioimageio.core or ilastik; "
            "the selected image (or the model's training crop) is its example"
        )
        self.clicked.connect(self._dialog)

    def _dialog(self) -> None:
        from napari.utils.notifications import show_error

        entry = self._entry()
        if entry is None:
            show_error("napari-ssdn: no model to export: train one or load a model file first")
            return
        stem = entry.name.split(" (")[0].rsplit(".", 1)[0] or "model"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export bioimage.io package", f"{stem}.zip", "bioimage.io package (*.zip)"
        )
        if path:
            self.export(path)

    def export(self, path):
        """Export the chosen model to ``path`` in a worker thread; returns the worker."""
        entry = self._entry()
        if entry is None or self.worker is not None:
            return self.worker
        sample = self._sample()
        data, axes = sample if sample is not None else (None, None)
        stem = entry.name.split(" (")[0].rsplit(".", 1)[0] or "model"
        self.setEnabled(False)
        self._status.setStyleSheet("")
        self._status.setText(f"Exporting {entry.name!r} to {path}…")
        self.worker = self.workers.start(
            _export_job,
            entry.model,
            entry.info,
            path,
            data,
            axes,
            stem,
            on={"returned": self._done, "errored": self._failed, "finished": self._finished},
        )
        return self.worker

    def _done(self, path) -> None:
        from napari.utils.notifications import show_info

        self._status.setText(f"Exported {path} (a bioimage.io package; 'ssdn denoise -m' and Load… read it too).")
        show_info(f"napari-ssdn: exported {path}")

    def _failed(self, exc: Exception) -> None:
        from ._common import show_failure

        show_failure(self._status, "export", exc)

    def _finished(self) -> None:
        self.worker = None
        self.setEnabled(True)
