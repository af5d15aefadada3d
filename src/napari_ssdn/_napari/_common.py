"""Small Qt helpers shared by the widgets: an image-layer picker, field error marks,
layer snapshots and output layers that keep the input's geometry."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QComboBox, QWidget

from ._layers import layer_axes
from ._words import failure_text, in_widget_terms  # noqa: F401 - in_widget_terms: imported from here
from ._workers import WorkerGroup

__all__ = ["ImageLayerCombo", "mark_field", "layer_snapshot", "geometry_of", "channels_of"]

_ERROR_STYLE = "border: 1px solid #e05050;"


class ImageLayerCombo(QComboBox):
    """A combo box listing the viewer's image layers, kept in sync with the layer list."""

    def __init__(self, viewer, parent=None, none_text: str | None = None):
        super().__init__(parent)
        self.viewer = viewer
        #: The first entry, meaning "no layer", for an optional choice (None: a layer is required).
        self.none_text = none_text
        self.setToolTip("The image layer to use")
        ev = viewer.layers.events
        for e in (ev.inserted, ev.removed, ev.moved, ev.reordered):
            e.connect(self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        """Re-list the image layers, keeping the selection when it still exists."""
        from napari.layers import Image

        current = self.currentText()
        names = [lay.name for lay in self.viewer.layers if isinstance(lay, Image)]
        for lay in self.viewer.layers:
            if isinstance(lay, Image):
                try:
                    lay.events.name.connect(self.refresh)
                except Exception:  # noqa: BLE001 - already connected or no such event
                    pass
        self.blockSignals(True)
        self.clear()
        self.addItems(([self.none_text] if self.none_text else []) + names)
        if current in names:
            self.setCurrentText(current)
        self.blockSignals(False)
        if current not in names or not current:
            self.currentIndexChanged.emit(self.currentIndex())

    def layer(self):
        """The selected image layer, or None."""
        name = self.currentText()
        if self.none_text and self.currentIndex() == 0:
            return None
        return self.viewer.layers[name] if name and name in self.viewer.layers else None


def mark_field(widget: QWidget, message: str | None, help_text: str = "") -> None:
    """Show ``message`` as the field's tooltip and frame it red; clear when None."""
    widget.setStyleSheet(_ERROR_STYLE if message else "")
    widget.setToolTip(message or help_text)


def layer_snapshot(layer) -> np.ndarray:
    """The layer's full-resolution data as a numpy array (loaded once, on the main thread)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def guessed_axes(layer) -> str:
    """Axes guessed for ``layer`` (see :func:`~napari_ssdn._napari._layers.layer_axes`)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return layer_axes(tuple(data.shape), layer.axis_labels, bool(layer.rgb), layer.metadata)


def channels_of(shape: tuple, axes: str) -> int:
    """Number of channels of data with ``shape`` and ``axes``."""
    return int(shape[axes.index("C")]) if "C" in axes else 1


def geometry_of(layer) -> dict:
    """Keyword arguments that give a new layer the input layer's geometry and metadata."""
    return {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "units": tuple(str(u) for u in layer.units),
        "axis_labels": tuple(layer.axis_labels),
        "metadata": dict(layer.metadata),
    }


def set_or_add_image(viewer, name: str, data: np.ndarray, **kwargs):
    """Update the image layer ``name`` in place (data and geometry) or add it."""
    from napari.layers import Image

    ndim = data.ndim - (1 if kwargs.get("rgb") else 0)
    if name in viewer.layers and isinstance(viewer.layers[name], Image) and viewer.layers[name].ndim == ndim:
        lay = viewer.layers[name]
        if bool(lay.rgb) == bool(kwargs.get("rgb", False)):
            lay.data = data
            for key in ("scale", "translate", "units", "axis_labels", "metadata"):
                if key in kwargs:
                    setattr(lay, key, kwargs[key])
            if "contrast_limits" in kwargs:
                lay.contrast_limits = kwargs["contrast_limits"]
            elif not lay.rgb:
                lay.reset_contrast_limits()
            return lay
        viewer.layers.remove(lay)
    elif name in viewer.layers:
        viewer.layers.remove(viewer.layers[name])
    return viewer.add_image(data, name=name, **kwargs)


class DockedWidget(QWidget):
    """A widget that calls its ``shutdown()`` when closed or when napari removes its dock
    (napari takes the widget out of the dock, parent None, without closing it), then stops
    the background workers of its parts (each part's :class:`~._workers.WorkerGroup`,
    which also stops them when napari deletes the widget with its window)."""

    def shutdown(self) -> None:
        """Stop what the widget runs; called once the dock is gone."""

    def _close(self) -> None:
        self.shutdown()
        for part in [self, *self.findChildren(QWidget)]:
            group = getattr(part, "workers", None)
            if isinstance(group, WorkerGroup):
                group.shutdown()

    def closeEvent(self, event):  # noqa: N802 - Qt API
        self._close()
        super().closeEvent(event)

    def event(self, event):
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif getattr(self, "_docked", False):
                self._close()
        return super().event(event)


def show_failure(status_label, what: str, exc: Exception) -> None:
    """Report a worker failure: a napari notification and the widget's status line in red.

    The jobs turn the failures they expect into an SSDNError whose message says what to do;
    any other exception (a library's, possibly many lines) is shown as one line, its type
    and the first line of its message (see :func:`~._words.failure_text`).
    """
    from napari.utils.notifications import show_error

    message = failure_text(exc)
    show_error(f"napari-ssdn: {what} failed: {message}")
    status_label.setText(f"\u26a0 {what.capitalize()} failed: {message}")
    status_label.setStyleSheet("color: #e05050;")


def advance_progress(pbar, done: int, total: int, description: str | None = None) -> None:
    """Move a napari progress bar to ``done`` of ``total``.

    Call it last in a handler: napari's progress update may process queued events.
    """
    if pbar is None:
        return
    pbar.total = total
    if description is not None:
        pbar.set_description(description)
    pbar.update(done - pbar.n)


def load_model_dialog(parent: QWidget, load) -> None:
    """Ask for a ``.ssdn`` file (or a package from ``ssdn export``) and ``load(path)`` it; a
    file that fails to load is reported as a notification and the widget stays usable."""
    from napari.utils.notifications import show_error
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(parent, "Load model", "", "napari-ssdn model (*.ssdn *.zip);;All files (*)")
    if path:
        try:
            load(path)
        except Exception as exc:  # noqa: BLE001 - any failure: report, keep the widget usable
            show_error(f"napari-ssdn: {exc}")
