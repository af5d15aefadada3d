"""The Train widget: train a model on one image layer in a background thread."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.data import to_samples
from ._common import (
    ImageLayerCombo,
    advance_progress,
    guessed_axes,
    layer_snapshot,
    mark_field,
    set_or_add_image,
    show_failure,
)
from ._jobs import TrainResult, TrainUpdate, device_label_job, train_job
from ._loss_plot import LossPlot
from ._options import DEVICES, NOISE_PARAMS, PARAM_HELP, WIDTHS
from ._session import SessionModel, session_models
from ._settings import TrainFields, validate_train

__all__ = ["TrainWidget"]

log = logging.getLogger(__name__)

PREVIEW_SIDE = 128
# A run stopped before this share of its plan is called undertrained.
EARLY_STOP = 0.25

HELP = {
    "layer": "The noisy image layer to train on (the model learns from this data alone).",
    "axes": "One letter per dimension: Y, X, optional C (channels) and T/Z/S (trained as separate 2D samples), e.g. YX, ZYX, TYX, YXC.",
    "noise": "Noise model of the camera/detector. Gaussian: additive; Poisson: photon counts; Poisson-Gaussian: both; impulse: salt-and-pepper.",
    "dims": "2D trains on images (a Z axis becomes a stack of slices); 3D trains a volume network that also uses the slices above and below (needs a Z axis). With patch, batch and width on auto, 3D takes 24-voxel crops, batch 1 and the tiny width, the best per CPU minute.",
    "budget": "How long to train: a number of iterations or of minutes.",
    "patch": "Side of the square training crops in pixels (>= 8), or auto: 64 on a CPU, 128 on a GPU, 24 for 3D.",
    "batch": "Crops per training step, or auto: 4 on a CPU, 8 on a GPU, 1 for 3D.",
    "width": "Network size: auto (the best per minute measured: tiny on a CPU; on a GPU tiny where the shipped starting network fits, else light), tiny, light, paper (Laine et al.; use a GPU).",
    "lr": "Peak learning rate of Adam. auto: from the shipped start 3e-4 (1e-3 on 1.5 megapixels of data or more); "
          "from scratch 2e-3 for the tiny 2D network, else 1e-3.",
    "seed": "Random seed of crops and initialisation (same seed, same result).",
    "subsample": "1: off. 2: train and denoise on the 4 interleaved half-size sub-images, for noise correlated "
    "between neighbouring pixels (resampled or processed camera images), which the network would otherwise "
    "learn to reproduce: the result then barely differs from the input.",
    "device": "auto picks CUDA, then Apple MPS, then the CPU.",
    "per_image": "Learn a separate level for each image or slice (exposures or gains that differ across a stack); "
    "each starts from its own classical estimate and is estimated again from the image when denoising.",
}


def _line(text: str, help_text: str) -> QLineEdit:
    w = QLineEdit(text)
    w.setToolTip(help_text)
    return w


class TrainWidget(QWidget):
    """Train an SSDN model on an image layer; live loss curve, preview and noise level.

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
        self._planned = 0  # steps the latest run planned, for the stop message
        self.current: SessionModel | None = None  # the model Resume continues and Save writes
        self.last_result: TrainResult | None = None
        self._stop = threading.Event()
        self._pbar = None
        self._preview_geom: dict = {}
        self._preview_name = ""
        self._preview_contrast = None
        self._errors: dict[str, str] = {}
        self._build()
        self._on_layer_changed()

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        form = QFormLayout()
        self.layer_combo = ImageLayerCombo(self.viewer)
        self.layer_combo.setToolTip(HELP["layer"])
        self.axes_edit = _line("", HELP["axes"])
        self.noise_combo = QComboBox()
        self.noise_combo.addItems(list(NOISE_PARAMS))
        self.noise_combo.setToolTip(HELP["noise"])
        form.addRow("Image", self.layer_combo)
        form.addRow("Axes", self.axes_edit)
        self.dims_combo = QComboBox()
        self.dims_combo.addItems(["2D", "3D"])
        self.dims_combo.setToolTip(HELP["dims"])
        form.addRow("Network", self.dims_combo)
        form.addRow("Noise model", self.noise_combo)
        # One row per noise parameter of any model; only the current model's are shown.
        self.param_rows: dict[str, tuple[QLabel, QWidget, QLineEdit, QCheckBox]] = {}
        for names in NOISE_PARAMS.values():
            for name in names:
                edit = _line("", f"{name}: {PARAM_HELP[name]}. Leave 'learn' ticked to learn it from the data.")
                edit.setPlaceholderText("learned")
                learn = QCheckBox("learn")
                learn.setChecked(True)
                learn.setToolTip(f"Learn {name} from the data (starting from a classical estimate)")
                row = QWidget()
                lay = QHBoxLayout(row)
                lay.setContentsMargins(0, 0, 0, 0)
                lay.addWidget(edit)
                lay.addWidget(learn)
                label = QLabel(f"  {name}")
                form.addRow(label, row)
                self.param_rows[name] = (label, row, edit, learn)
                learn.toggled.connect(self._validate)
                learn.toggled.connect(lambda on, e=edit: e.setEnabled(not on))
                edit.setEnabled(False)
                edit.textChanged.connect(self._validate)
        budget_row = QWidget()
        bl = QHBoxLayout(budget_row)
        bl.setContentsMargins(0, 0, 0, 0)
        self.budget_edit = _line("300", HELP["budget"])
        self.budget_unit = QComboBox()
        self.budget_unit.addItems(["iterations", "minutes"])
        bl.addWidget(self.budget_edit)
        bl.addWidget(self.budget_unit)
        form.addRow("Budget", budget_row)
        root.addLayout(form)

        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        root.addWidget(self.advanced_button)
        self.advanced = QWidget()
        adv = QFormLayout(self.advanced)
        self.patch_edit = _line("auto", HELP["patch"])
        self.batch_edit = _line("auto", HELP["batch"])
        self.width_combo = QComboBox()
        self.width_combo.addItems(list(WIDTHS))
        self.width_combo.setCurrentText("auto")
        self.width_combo.setToolTip(HELP["width"])
        self.lr_edit = _line("auto", HELP["lr"])
        self.seed_edit = _line("0", HELP["seed"])
        self.subsample_edit = _line("1", HELP["subsample"])
        self.per_image_check = QCheckBox("learned levels vary per image")
        self.per_image_check.setToolTip(HELP["per_image"])
        self.device_combo = QComboBox()
        self.device_combo.setEditable(True)
        self.device_combo.addItems(list(DEVICES))
        self.device_combo.setToolTip(HELP["device"])
        self.device_label = QLabel("Device: resolved when training starts")
        self.device_label.setWordWrap(True)
        for label, w in (("Patch", self.patch_edit), ("Batch", self.batch_edit), ("Width", self.width_combo),
                         ("Learning rate", self.lr_edit), ("Seed", self.seed_edit), ("Subsample", self.subsample_edit),
                         ("Device", self.device_combo)):
            adv.addRow(label, w)
        adv.addRow("Noise level", self.per_image_check)
        adv.addRow(self.device_label)
        self.advanced.setVisible(False)
        root.addWidget(self.advanced)
        self.advanced_button.toggled.connect(self._toggle_advanced)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        root.addWidget(self.status)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.start_button.setToolTip("Train a new model on the selected layer")
        self.stop_button.setToolTip("Stop after the current step and keep the model trained so far")
        self.resume_button.setToolTip("Continue training the current model on the selected layer")
        for b in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(b)
        root.addLayout(buttons)
        files = QHBoxLayout()
        self.save_button = QPushButton("Save model…")
        self.load_button = QPushButton("Load model…")
        self.save_button.setToolTip("Write the current model (with its optimizer state, for resuming) to a .ssdn file")
        self.load_button.setToolTip("Load a .ssdn model file to resume training or to denoise with it")
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        root.addLayout(files)
        self.progress_label = QLabel("")
        self.noise_label = QLabel("")
        self.noise_label.setToolTip("Noise parameters of the model, in image units (learned ones change during training)")
        self.model_label = QLabel("No model yet")
        self.model_label.setWordWrap(True)
        self.loss_plot = LossPlot()
        for w in (self.progress_label, self.noise_label, self.loss_plot, self.model_label):
            root.addWidget(w)
        root.addStretch(1)

        self.start_button.clicked.connect(lambda: self.start())
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.layer_combo.currentIndexChanged.connect(self._on_layer_changed)
        self.noise_combo.currentTextChanged.connect(self._on_noise_changed)
        self.device_combo.currentTextChanged.connect(self._on_device_changed)
        for w in (self.axes_edit, self.budget_edit, self.patch_edit, self.batch_edit, self.lr_edit, self.seed_edit, self.subsample_edit):
            w.textChanged.connect(self._validate)
        for w in (self.budget_unit, self.width_combo, self.dims_combo):
            w.currentTextChanged.connect(self._validate)
        self.budget_unit.currentTextChanged.connect(self._on_unit_changed)
        self._on_noise_changed(self.noise_combo.currentText())

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    # -- field logic --------------------------------------------------------------------
    def _on_layer_changed(self, *args) -> None:
        layer = self.layer_combo.layer()
        if layer is not None:
            self.axes_edit.setText(guessed_axes(layer))
        self._validate()

    def _on_noise_changed(self, noise: str) -> None:
        shown = NOISE_PARAMS.get(noise, ())
        for name, (label, row, _, _) in self.param_rows.items():
            label.setVisible(name in shown)
            row.setVisible(name in shown)
        self._validate()

    def _on_unit_changed(self, unit: str) -> None:
        self.budget_edit.setText("2" if unit == "minutes" else "300")

    def _on_device_changed(self, device: str) -> None:
        """Resolve the device name in a thread (it imports torch) and show it."""
        self._validate()
        if "device" in self._errors:
            return
        from superqt.utils import create_worker

        self.device_label.setText("Device: checking…")
        worker = create_worker(device_label_job, device.strip().lower(), _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._show_device)
        self._device_worker = worker
        worker.start()

    def _show_device(self, result: tuple[bool, str]) -> None:
        ok, text = result
        self.device_label.setText(f"Device: {text}" if ok else text)
        self.device_label.setStyleSheet("" if ok else "color: #e05050;")

    def fields(self) -> TrainFields:
        """The current field values (strings as typed)."""
        layer = self.layer_combo.layer()
        shape = None
        if layer is not None:
            data = layer.data[0] if layer.multiscale else layer.data
            shape = tuple(data.shape)
        noise = self.noise_combo.currentText()
        params = {n: (self.param_rows[n][3].isChecked(), self.param_rows[n][2].text()) for n in NOISE_PARAMS.get(noise, ())}
        return TrainFields(
            shape=shape,
            axes=self.axes_edit.text(),
            noise=noise,
            params=params,
            budget=self.budget_edit.text(),
            budget_unit=self.budget_unit.currentText(),
            patch=self.patch_edit.text(),
            batch=self.batch_edit.text(),
            width=self.width_combo.currentText(),
            lr=self.lr_edit.text(),
            seed=self.seed_edit.text(),
            device=self.device_combo.currentText(),
            dims=self.dims_combo.currentText(),
            anisotropy=_anisotropy(layer, self.axes_edit.text().strip().upper()),
            subsample=self.subsample_edit.text(),
            per_image=self.per_image_check.isChecked(),
        )

    def _field_widgets(self) -> dict[str, QWidget]:
        ws = {
            "layer": self.layer_combo, "axes": self.axes_edit, "noise": self.noise_combo, "budget": self.budget_edit,
            "patch": self.patch_edit, "batch": self.batch_edit, "width": self.width_combo, "lr": self.lr_edit,
            "seed": self.seed_edit, "device": self.device_combo, "dims": self.dims_combo, "subsample": self.subsample_edit,
        }
        ws.update({f"param:{n}": row[2] for n, row in self.param_rows.items()})
        return ws

    def _validate(self, *args) -> bool:
        if not hasattr(self, "start_button"):
            return False  # still building
        request, errors = validate_train(self.fields())
        self._errors = errors
        for key, w in self._field_widgets().items():
            if key.startswith("param:"):
                n = key.split(":", 1)[1]
                base = f"{n}: {PARAM_HELP[n]}. Leave 'learn' ticked to learn it from the data."
            else:
                base = HELP.get(key, "")
            mark_field(w, errors.get(key), base)
        if errors:
            if any(k in errors for k in ("patch", "batch", "lr", "seed", "device", "subsample")) and not self.advanced.isVisible():
                self.advanced_button.setChecked(True)
            self.status.setText("⚠ " + next(iter(errors.values())))
            self.status.setStyleSheet("color: #e05050;")
        elif self.worker is None:
            self.status.setText("Ready to train.")
            self.status.setStyleSheet("")
        self._update_buttons()
        return not errors

    def _update_buttons(self) -> None:
        running = self.worker is not None
        ok = not self._errors
        self.start_button.setEnabled(ok and not running)
        self.resume_button.setEnabled(ok and not running and self.current is not None)
        self.stop_button.setEnabled(running)
        self.save_button.setEnabled(not running and self.current is not None)
        self.load_button.setEnabled(not running)
        self.start_button.setToolTip(
            "Train a new model on the selected layer" if ok else "Fix the marked field first: " + next(iter(self._errors.values()))
        )

    # -- training -----------------------------------------------------------------------
    def start(self, resume: bool = False):
        """Start training (or resume the current model) in a worker thread; returns the worker.

        Returns None, with the reason in the status line, when a field is invalid.
        """
        from superqt.utils import create_worker
        from napari.utils.notifications import show_error

        if self.worker is not None:
            return self.worker
        if not self._validate():
            show_error("napari-ssdn: " + next(iter(self._errors.values())))
            return None
        request, _ = validate_train(self.fields())
        layer = self.layer_combo.layer()
        data = layer_snapshot(layer)
        resume_model = resume_info = None
        if resume:
            if self.current is None:
                show_error("napari-ssdn: there is no model to resume; press Start or load a model file first")
                return None
            resume_model, resume_info = self.current.model, self.current.info
            if self.current.channels != _channels(data.shape, request.axes):
                show_error(
                    f"napari-ssdn: the model {self.current.name!r} has {self.current.channels} channel(s) but layer "
                    f"{layer.name!r} has {_channels(data.shape, request.axes)} (axes {request.axes!r}); "
                    "resume on data of the same kind or press Start to train a new model"
                )
                return None
        crop, origin, plane = preview_crop(data, request.axes, ndim=request.config.get("ndim", 2))
        self._preview_setup(layer, request.axes, origin, crop, plane)
        self._stop = threading.Event()
        # Closing the widget (or the viewer) stops training at the next step.
        self.destroyed.connect(self._stop.set)
        self._source_name = layer.name
        if not resume:
            self.loss_plot.clear()
        self._steps_offset = None
        self._planned = 0
        worker = create_worker(train_job, data, request, self._stop, crop, resume_model, resume_info, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_update)
        worker.returned.connect(self._on_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        from napari.utils import progress

        self._pbar = progress(total=0, desc="napari-ssdn training: starting")
        self.status.setText("Preparing training (normalisation, noise estimate)…")
        self.status.setStyleSheet("")
        self.progress_label.setText("")
        self._update_buttons()
        log.info("napari-ssdn: training on %r, axes %s, %s", layer.name, request.axes, request.config)
        worker.start()
        return worker

    def stop(self) -> None:
        """Stop after the current step; the model trained so far is kept."""
        if self.worker is not None:
            self._stop.set()
            self.stop_button.setEnabled(False)
            self.status.setText("Stopping after this step…")

    def _on_update(self, upd: TrainUpdate) -> None:
        if upd.device is not None:
            self.device_label.setText(f"Device: {upd.device}")
            self.device_label.setStyleSheet("")
            self.status.setText(f"Training on {upd.device}.")
        rec = upd.progress
        if rec is not None:
            step = upd.steps_before + rec.step
            self._planned = rec.total
            self.loss_plot.add(step, rec.loss, rec.val_loss)
            eta = _fmt_time(rec.eta)
            self.progress_label.setText(f"Step {rec.step} / {rec.total}   elapsed {_fmt_time(rec.elapsed)}   ETA {eta}   loss {rec.loss:.4g}")
            self.noise_label.setText("Noise: " + _fmt_noise(rec.noise_params))
        if upd.preview is not None:
            self._show_preview(upd.preview)
        if rec is not None:
            advance_progress(self._pbar, rec.step, rec.total, f"napari-ssdn training (ETA {_fmt_time(rec.eta)})")

    def _on_result(self, result: TrainResult) -> None:
        self.last_result = result
        name = f"{self._source_name} (trained)"
        self.current = self.registry.add(SessionModel(name, result.model, result.info, "trained"))
        steps = result.info.get("training", {}).get("steps", result.steps)
        how = "stopped" if result.stopped else "finished"
        kept = result.info.get("training", {}).get("kept_step", steps)
        best = f", keeping step {kept}'s weights (lowest held-out loss)" if kept != steps else ""
        self.model_label.setText(f"Model {name!r}: {how} after {steps} steps{best}; available in the Denoise widget.")
        self.noise_label.setText("Noise: " + _fmt_noise(result.info.get("noise_params", {})))
        done, planned = result.steps, self._planned
        if result.stopped and planned and done < EARLY_STOP * planned:
            # The learning rate never ramped down: such weights denoise visibly worse.
            self.status.setText(
                f"Training stopped at step {done} of about {planned} planned ({100 * done / planned:.0f} %): the model "
                "is undertrained. Resume continues it; denoising with it now gives a rough result."
            )
            self.status.setStyleSheet("color: #e0a030;")
        else:
            self.status.setText(f"Training {how}. Save the model, resume, or denoise with it.")
            self.status.setStyleSheet("")

    def _on_error(self, exc: Exception) -> None:
        show_failure(self.status, "training", exc)

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self._update_buttons()

    # -- preview ------------------------------------------------------------------------
    def _preview_setup(self, layer, axes: str, origin: tuple[int, int], crop, plane: dict | None = None) -> None:
        """Geometry of the preview layer: on top of the crop it shows, and, for a stack or
        volume without a channel axis, only on the slice it comes from (``plane``: index
        per leading axis), not broadcast over every slice."""
        dims = axes.replace("C", "") if layer.rgb else axes
        iy, ix = dims.index("Y"), dims.index("X")
        leading = [i for i, a in enumerate(dims) if a not in "YX"] if plane and "C" not in dims else []
        at = {iy: origin[0], ix: origin[1], **{i: plane[dims[i]] for i in leading}}
        keep = leading + [iy, ix]
        self._preview_name = f"{layer.name}_ssdn_preview"
        self._preview_geom = {
            "scale": tuple(float(layer.scale[i]) for i in keep),
            "translate": tuple(float(layer.translate[i]) + at[i] * float(layer.scale[i]) for i in keep),
            "units": tuple(str(layer.units[i]) for i in keep),
            "axis_labels": tuple(str(layer.axis_labels[i]) for i in keep),
        }
        self._preview_lead = len(leading)
        self._preview_rgb = crop is not None and crop.shape[-1] in (3, 4) and bool(layer.rgb)
        # The input's contrast, so that the preview compares with the noisy image beside it.
        self._preview_contrast = None if layer.rgb else tuple(float(v) for v in layer.contrast_limits)

    def _show_preview(self, preview: np.ndarray) -> None:
        img = preview[..., 0] if preview.shape[-1] == 1 else preview
        if img.ndim == 3 and not self._preview_rgb:
            img = np.moveaxis(img, -1, 0)  # channels first, shown as a small stack
            channel_axis = {"scale": (1.0,), "translate": (0.0,), "units": ("pixel",), "axis_labels": ("c",)}
            geom = {k: channel_axis[k] + tuple(v) for k, v in self._preview_geom.items()}
        else:
            geom = dict(self._preview_geom)
            img = img.reshape((1,) * self._preview_lead + img.shape)  # one slice of the stack or volume
        if self._preview_rgb:
            img = np.clip(img, 0, None)
        elif img.ndim == 2 and self._preview_contrast is not None:
            geom["contrast_limits"] = self._preview_contrast
        set_or_add_image(self.viewer, self._preview_name, img.astype(np.float32), rgb=self._preview_rgb, **geom)

    # -- model files --------------------------------------------------------------------
    def save_model(self, path) -> Path:
        """Write the current model to ``path`` (``.ssdn``), with its optimizer state for resuming."""
        from ..core import save_model

        if self.current is None:
            raise ValueError("there is no model to save; train one or load a model file first")
        info = self.current.info
        out = save_model(self.current.model, path, optimizer_state=info.get("optimizer"), train_state=info.get("training"))
        self.model_label.setText(f"Model {self.current.name!r} saved to {out}")
        return out

    def load_model(self, path) -> SessionModel:
        """Load a ``.ssdn`` file as the current model (to resume or denoise with)."""
        from ..core import load_model

        model, info = load_model(path)
        entry = self.registry.add(SessionModel(Path(path).name, model, info, str(path)))
        self.current = entry
        steps = info.get("training", {}).get("steps", "?")
        self.model_label.setText(f"Model {entry.name!r} loaded ({steps} steps, {model.config.noise} noise); Resume continues it.")
        self.noise_label.setText("Noise: " + _fmt_noise(info.get("noise_params", {})))
        self._update_buttons()
        return entry

    def _save_dialog(self) -> None:
        from napari.utils.notifications import show_error, show_info

        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.ssdn", "napari-ssdn model (*.ssdn)")
        if path:
            try:
                show_info(f"napari-ssdn: model saved to {self.save_model(path)}")
            except Exception as exc:  # noqa: BLE001 - report, keep the widget usable
                show_error(f"napari-ssdn: could not save the model to {path!r} ({exc}); choose a writable folder")

    def _load_dialog(self) -> None:
        from napari.utils.notifications import show_error

        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "napari-ssdn model (*.ssdn);;All files (*)")
        if path:
            try:
                self.load_model(path)
            except Exception as exc:  # noqa: BLE001
                show_error(f"napari-ssdn: {exc}")


def preview_crop(data: np.ndarray, axes: str, side: int = PREVIEW_SIDE, ndim: int = 2) -> tuple[np.ndarray, tuple[int, int], dict]:
    """A centred ``(Y, X, C)`` crop of the middle 2D sample of ``data``, its (y, x) corner
    and the index of the shown plane along each other axis (e.g. ``{"Z": 7}``).

    For a volume network (``ndim=3``): a centred ``(Z, Y, X, C)`` block, whose middle
    slice is the preview, and smaller in-plane so that a preview stays cheap.
    """
    ax = axes.upper()
    spatial = "ZYX" if ndim == 3 else "YX"
    sample_axes = [a for a in ax if a not in spatial + "C"]  # in to_samples' order
    samples = to_samples(data, axes, ndim)
    if ndim == 3:
        side = min(side, 64)
    n, h, w = samples.shape[0], samples.shape[-3], samples.shape[-2]
    sy, sx = min(side, h), min(side, w)
    y0, x0 = (h - sy) // 2, (w - sx) // 2
    if ndim == 3:
        d = samples.shape[1]
        sz = min(16, d)
        z0 = (d - sz) // 2
    lead = [data.shape[ax.index(a)] for a in sample_axes]
    plane = dict(zip(sample_axes, (int(i) for i in np.unravel_index(n // 2, lead)))) if lead else {}
    if ndim == 3:
        plane["Z"] = z0 + sz // 2  # the block's middle slice is what the preview shows
        return np.array(samples[n // 2, z0 : z0 + sz, y0 : y0 + sy, x0 : x0 + sx]), (y0, x0), plane
    return np.array(samples[n // 2, y0 : y0 + sy, x0 : x0 + sx]), (y0, x0), plane


def _anisotropy(layer, axes: str) -> float:
    """z spacing over x spacing of ``layer`` (1 when unknown)."""
    if layer is None or "Z" not in axes or "X" not in axes:
        return 1.0
    dims = axes.replace("C", "") if layer.rgb else axes
    try:
        z, x = float(layer.scale[dims.index("Z")]), float(layer.scale[dims.index("X")])
    except (IndexError, ValueError):
        return 1.0
    return z / x if z > 0 and x > 0 else 1.0


def _channels(shape, axes: str) -> int:
    return int(shape[axes.index("C")]) if "C" in axes else 1


def _fmt_time(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _fmt_noise(params: dict) -> str:
    if not params:
        return "–"
    parts = []
    for k, v in params.items():
        v = np.asarray(v, dtype=float)
        parts.append(f"{k} = {float(v.mean()):.4g}" + (" (mean over images)" if v.size > 1 else ""))
    return ", ".join(parts)
