"""The Denoise widget: apply a session or file model to any image layer."""

from __future__ import annotations

import logging
import threading

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.data import check_axes
from ...core.errors import SSDNError
from ...core.sizes import check_denoise_size, spatial_sides
from .._common import (
    DockedWidget,
    ImageLayerCombo,
    advance_progress,
    channels_of,
    geometry_of,
    guessed_axes,
    layer_snapshot,
    mark_field,
    set_or_add_image,
    show_failure,
)
from .._header import WidgetHeader, scrollable, wrapping
from .._jobs import denoise_job
from .._model_registry import SessionModel, session_models
from .._options import DEVICES, OUTPUT_SUFFIX, OUTPUTS
from .._words import in_widget_terms
from .._workers import WorkerGroup
from ._batch_panel import BatchPanel
from ._model_picker import ModelPicker

__all__ = ["DenoiseWidget", "output_layer_name"]

log = logging.getLogger(__name__)

HELP = {
    "layer": "The image layer to denoise (any layer with the model's channels, not only the training one).",
    "axes": "One letter per dimension: Y, X, optional C (channels) and T/Z/S (denoised slice by slice), "
    "e.g. YX, ZYX, YXC.",
    "model": "A model trained in this session (Train widget) or loaded from a .ssdn file "
    "or an exported package (.zip).",
    "output": "posterior-mean: the denoised image; prior-mean: the blind-spot prediction alone; "
    "posterior-std: per-pixel uncertainty; residual: noisy minus denoised (should look like pure noise).",
    "device": "auto picks CUDA, then Apple MPS, then the CPU.",
}


def output_layer_name(layer_name: str, output: str) -> str:
    """Name of the layer an output goes to: ``<name>_ssdn`` for the posterior mean, else ``<name>_ssdn_<kind>``."""
    return f"{layer_name}{OUTPUT_SUFFIX[output]}"


class DenoiseWidget(DockedWidget):
    """Denoise an image layer with a trained model, in a background thread.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Passed by napari.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.registry = session_models()
        self.worker = None
        self._stop = threading.Event()  # set to cancel the running denoising (the dock closed)
        self.workers = WorkerGroup(self)  # stopped when the widget closes
        self._pbar = None
        self._errors: dict[str, str] = {}
        self._target = None
        self._done = ""
        self._warning = ""  # the latest run's warning about the data, shown with its result
        self.result_layer = ""  # name of the layer the latest run wrote (what Save writes)
        self.header = WidgetHeader("denoise")
        self.device_label = self.header.device_label
        body = QWidget()
        form = QFormLayout(body)
        self.layer_combo = ImageLayerCombo(self.viewer)
        self.axes_edit = QLineEdit()
        self.status = QLabel("")
        # The session's models, Load…, Remove and Export… (the selected layer is the example).
        self.models = ModelPicker(self.registry, self._export_sample, self.status)
        m = self.models
        self.model_combo, self.load_button, self.remove_button = m.combo, m.load_button, m.remove_button
        self.export_button = m.export_button
        self.output_combo = QComboBox()
        self.output_combo.addItems(list(OUTPUTS))
        self.device_combo = QComboBox()
        self.device_combo.setEditable(True)
        self.device_combo.addItems(list(DEVICES))
        form.addRow("Image", self.layer_combo)
        form.addRow("Axes", self.axes_edit)
        form.addRow("Model", self.models)
        form.addRow("Output", self.output_combo)
        form.addRow("Device", self.device_combo)
        # Several layers or a folder of files, with the model, output and device above.
        self.batch = BatchPanel(self.viewer, self._batch_settings, self._batch_axes)
        self.layer_list, self.folder_button, self.cancel_button = (
            self.batch.layer_list,
            self.batch.folder_button,
            self.batch.cancel_button,
        )
        self.batch.running.connect(self._validate)
        form.addRow(self.batch)
        root = QVBoxLayout(self)
        root.addWidget(self.header)
        root.addWidget(scrollable(body), 1)
        wrapping(self.status)
        root.addWidget(self.status)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Denoise")
        self.save_button = QPushButton("Save result…")
        self.save_button.setToolTip(
            "Write the result layer as float32 TIFF or MRC with its voxel size (the layer's scale and unit)"
        )
        self.save_button.setEnabled(False)
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.save_button)
        root.addLayout(buttons)
        for key, w in self._field_widgets().items():
            w.setToolTip(HELP[key])

        self.run_button.clicked.connect(lambda: self.run())
        self.save_button.clicked.connect(self._save_dialog)
        self.viewer.layers.events.removed.connect(self._update_save)
        self.layer_combo.currentIndexChanged.connect(self._on_layer_changed)
        self.axes_edit.textChanged.connect(self._validate)
        self.axes_edit.textChanged.connect(lambda *_: self.batch.refresh())  # the layer's row shows the field's axes
        self.models.changed.connect(self._validate)
        self.output_combo.currentTextChanged.connect(self._validate)
        self.device_combo.currentTextChanged.connect(self._on_device_changed)
        self._on_layer_changed()
        self.header.resolve(self.device_combo.currentText())

    def _on_device_changed(self, device: str) -> None:
        if self._validate() or "device" not in self._errors:
            self.header.resolve(device)
        else:
            self.header.show_invalid(self._errors["device"])

    def _field_widgets(self) -> dict[str, QWidget]:
        return {
            "layer": self.layer_combo,
            "axes": self.axes_edit,
            "model": self.model_combo,
            "output": self.output_combo,
            "device": self.device_combo,
        }

    def _on_layer_changed(self, *args) -> None:
        layer = self.layer_combo.layer()
        if layer is not None:
            self.axes_edit.setText(guessed_axes(layer))
        self._validate()

    def selected_model(self) -> SessionModel | None:
        """The chosen session model, or None."""
        return self.models.selected()

    def _validate(self, *args) -> bool:
        errors: dict[str, str] = {}
        layer = self.layer_combo.layer()
        entry = self.selected_model()
        axes = self.axes_edit.text().strip().upper()
        if layer is None:
            errors["layer"] = "no image layer: open an image or a sample first"
        else:
            shape = tuple((layer.data[0] if layer.multiscale else layer.data).shape)
            try:
                axes = check_axes(axes, shape)
            except SSDNError as exc:
                errors["axes"] = in_widget_terms(exc)
        if entry is None:
            errors["model"] = "no model: train one with the Train widget or load a .ssdn file (Load…)"
        elif layer is not None and "axes" not in errors and entry.ndim == 3 and "Z" not in axes:
            errors["axes"] = (
                f"model {entry.name!r} is a 3D (volume) model but axes {axes!r} have no Z; "
                "set the axes of the volume (e.g. ZYX) or pick a 2D model"
            )
        elif layer is not None and "axes" not in errors:
            have, cfg = channels_of(shape, axes), entry.model.config
            if not cfg.accepts_channels(have):
                errors["model"] = (
                    f"layer {layer.name!r} has {have} channel(s) (axes {axes!r}) "
                    f"but model {entry.name!r} was trained on "
                    f"{entry.channels}; pick a model trained on this kind of data or fix the axes"
                )
            try:  # the core's rule: an image smaller than the network is refused
                check_denoise_size(spatial_sides(shape, axes, entry.ndim), cfg.arch.multiples, cfg.subsample, axes)
            except SSDNError as exc:
                errors["layer"] = in_widget_terms(exc)
        output = self.output_combo.currentText()
        if entry is not None and entry.model.config.mode != "ssdn" and output == "posterior-std":
            errors["output"] = f"model {entry.name!r} ({entry.model.config.mode}) has no posterior; choose prior-mean"
        dev = self.device_combo.currentText().strip().lower()
        if dev not in DEVICES and not (dev.startswith("cuda:") and dev[5:].isdigit()):
            errors["device"] = f"device {dev!r} is unknown; use {', '.join(DEVICES)} or cuda:N"
        self._errors = errors
        for key, w in self._field_widgets().items():
            mark_field(w, errors.get(key), HELP[key])
        if errors:
            self.status.setText("⚠ " + next(iter(errors.values())))
            self.status.setStyleSheet("color: #e05050;")
        elif self.worker is None:
            self.status.setText(f"Ready: output goes to layer {output_layer_name(layer.name, output)!r}.")
            self.status.setStyleSheet("")
        self.run_button.setEnabled(not errors and self.worker is None and self.batch.worker is None)
        return not errors

    def run(self):
        """Denoise the selected layer in a worker thread; returns the worker (None if refused).

        A refusal (invalid field, channel mismatch) is shown as a notification and in
        the status line.
        """
        from napari.utils import progress
        from napari.utils.notifications import show_error

        if self.worker is not None:
            return self.worker
        if self.batch.worker is not None:
            show_error("napari-ssdn: a batch run is denoising; wait for it or Cancel it")
            return None
        if not self._validate():
            show_error("napari-ssdn: " + next(iter(self._errors.values())))
            return None
        layer = self.layer_combo.layer()
        entry = self.selected_model()
        output = self.output_combo.currentText()
        data = layer_snapshot(layer)
        axes = check_axes(self.axes_edit.text().strip().upper(), data.shape)
        self._target = (output_layer_name(layer.name, output), geometry_of(layer), bool(layer.rgb), output)
        device = self.device_combo.currentText().strip().lower()
        self._stop = threading.Event()
        self._pbar = progress(total=0, desc="napari-ssdn denoising")
        self.run_button.setEnabled(False)
        self._warning = ""
        self.status.setText(f"Denoising {layer.name!r} with {entry.name!r}…")
        log.info("napari-ssdn: denoising %r (axes %s) with %r, output %s", layer.name, axes, entry.name, output)
        self.worker = self.workers.start(
            denoise_job,
            entry.model,
            data,
            axes,
            output,
            device,
            self._stop,
            stop=self._stop,
            on={
                "yielded": self._on_progress,
                "returned": self._on_result,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        return self.worker

    def _on_progress(self, rec) -> None:
        if isinstance(rec, str):  # the data's values are far from the model's training data
            from napari.utils.notifications import show_warning

            self._warning = rec
            show_warning(f"napari-ssdn: {rec}")
            return
        self.status.setText(f"Denoising: tile {rec.done} / {rec.total}, about {rec.eta:.0f} s left")
        advance_progress(self._pbar, rec.done, rec.total)

    def _on_result(self, result: np.ndarray | None) -> None:
        if result is None or self._stop.is_set():  # the dock was closed mid-run
            return
        name, geom, rgb, output = self._target
        if rgb and output != "posterior-std":
            result = np.clip(result, 0, None)
        meta = dict(geom["metadata"])
        meta["ssdn"] = {"output": output, "model": self.model_combo.currentText()}
        geom = {**geom, "metadata": meta}
        set_or_add_image(self.viewer, name, result, rgb=rgb, **geom)
        self.result_layer = name
        self._update_save()
        self._done = (
            f"Done: wrote layer {name!r}. Run again to update it, or Save result… to write it with its voxel size."
        )
        if self._warning:
            self._done += f" \u26a0 Check it: {self._warning}"

    def _on_error(self, exc: Exception) -> None:
        show_failure(self.status, "denoising", exc)
        self._done = self.status.text()  # kept when the run's end re-checks the fields

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        message, self._done = self._done, ""
        if self._validate() and message:
            self.status.setText(message)
            self.status.setStyleSheet("color: #e05050;" if message.startswith("\u26a0") else "")

    def shutdown(self) -> None:
        """Cancel the running denoising (after its current tile) and any batch run; nothing
        more is added to the viewer. Called when the dock closes."""
        self._stop.set()
        self.batch.cancel()

    # -- batch runs ---------------------------------------------------------------------------
    def _batch_settings(self):
        """``(entry, output, device)`` for a batch run; SSDNError says what to fix."""
        self._validate()
        entry = self.selected_model()
        if entry is None:
            raise SSDNError("no model: train one with the Train widget or load a .ssdn file (Load…)")
        if self.worker is not None:
            raise SSDNError("the Denoise button's run is still going; wait for it to end")
        for key in ("output", "device"):
            if key in self._errors:
                raise SSDNError(self._errors[key])
        return entry, self.output_combo.currentText(), self.device_combo.currentText().strip().lower()

    def _export_sample(self):
        """The selected layer and its axes as the exported package's example, where they
        suit the model; else None (the training crop kept with the model)."""
        layer = self.layer_combo.layer()
        if layer is None or any(k in self._errors for k in ("layer", "axes", "model")):
            return None
        return layer_snapshot(layer), self.axes_edit.text().strip().upper()

    def _batch_axes(self, layer) -> str:
        """The Axes field for the layer it describes, the guessed axes for the others."""
        text = self.axes_edit.text().strip().upper()
        if layer is self.layer_combo.layer() and text and "axes" not in self._errors:
            return text
        return guessed_axes(layer)

    def denoise_layers(self, names=None):
        """Denoise several layers (default: those selected in the list); returns the worker."""
        return self.batch.run_layers(names)

    def denoise_folder(self, input_dir, output_dir):
        """Denoise the TIFF and MRC files of ``input_dir`` into ``output_dir``; returns the worker."""
        return self.batch.run_folder(input_dir, output_dir)

    # -- saving the result ----------------------------------------------------------------
    def _update_save(self, *args) -> None:
        try:
            self.save_button.setEnabled(bool(self.result_layer) and self.result_layer in self.viewer.layers)
        except RuntimeError:  # the widget was deleted; the layer list outlives it
            self.viewer.layers.events.removed.disconnect(self._update_save)

    def save_result(self, path) -> str:
        """Write the latest result layer to ``path`` (TIFF, ``.tif`` added without an
        extension; MRC for an MRC extension) with its voxel size; returns the path written."""
        from ..io._writer import write_layer

        if not self.result_layer or self.result_layer not in self.viewer.layers:
            raise ValueError("there is no result to save; press Denoise first")
        out = write_layer(path, self.viewer.layers[self.result_layer])
        self.status.setText(f"Saved layer {self.result_layer!r} to {out} (voxel size from the layer's scale).")
        self.status.setStyleSheet("")
        return out

    def _save_dialog(self) -> None:
        from napari.utils.notifications import show_error, show_info

        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save result",
            f"{self.result_layer}.tif",
            "TIFF with voxel size (*.tif *.tiff);;MRC with voxel size (*.mrc *.mrcs *.map *.rec *.st *.ali)",
        )
        if path:
            try:
                show_info(f"napari-ssdn: saved {self.save_result(path)}")
            except Exception as exc:  # noqa: BLE001 - report, keep the widget usable
                show_error(f"napari-ssdn: could not save to {path!r}: {exc}")

    def load_model(self, path) -> SessionModel:
        """Load a ``.ssdn`` model file into the session and select it."""
        return self.models.load(path)
