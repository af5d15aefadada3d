"""The Train widget: train a model on one image layer in a background thread.

It is composed of parts with their own callbacks: :class:`~._train_form.TrainForm` (image,
axes, network, noise model and parameters, budget), :class:`~._advanced.AdvancedSettings`,
:class:`~._progress_panel.ProgressPanel` and :class:`~._preview.PreviewLayer`; a run is a
:class:`~._train_run.TrainRun`. This module wires them and holds the current model.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .._common import DockedWidget, advance_progress, layer_snapshot, mark_field, show_failure
from .._export_button import ExportButton
from .._header import WidgetHeader, scrollable, wrapping
from .._jobs import TrainResult, TrainUpdate
from .._model_registry import SessionModel, session_models
from .._words import in_widget_terms
from .._workers import on_destroyed
from ._advanced import ADVANCED_KEYS, AdvancedSettings
from ._model_files import ModelFiles
from ._noise_panel import NoisePanel, form_source
from ._preview import PreviewLayer, preview_crop  # noqa: F401 - preview_crop: public here before
from ._progress_panel import ProgressPanel, fmt_time
from ._train_form import TrainForm
from ._train_help import HELP, param_help
from ._train_run import TrainRun, ending, resume_problem
from ._validation import TrainFields, validate_train

__all__ = ["TrainWidget"]

log = logging.getLogger(__name__)


def _shutdown_run(runs: dict) -> None:
    if runs["current"] is not None:
        runs["current"].shutdown()


class TrainWidget(DockedWidget):
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
        self.run: TrainRun | None = None
        self._planned = 0  # steps the latest run planned, for the stop message
        self.current: SessionModel | None = None  # the model Resume continues and Save writes
        self.last_result: TrainResult | None = None
        self.preview: PreviewLayer | None = None
        self._pbar = None
        self._docked = False
        self._errors: dict[str, str] = {}
        # Closing the widget (or napari deleting it with the viewer) stops training, waits
        # for it and keeps the model; the callback holds the run, not the widget.
        self._runs: dict = {"current": None}
        on_destroyed(self, partial(_shutdown_run, self._runs))
        self._build()
        self._validate()
        self.header.resolve(self.device_combo.currentText(), self._threads())

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.header = WidgetHeader("train-denoiser")
        self.form = TrainForm(self.viewer)
        self.advanced_settings = AdvancedSettings()
        self.panel = ProgressPanel()
        # The names the tests, the screenshots script and users' scripts use.
        f, a, p = self.form, self.advanced_settings, self.panel
        self.layer_combo, self.axes_edit, self.dims_combo, self.noise_combo = (
            f.layer_combo,
            f.axes_edit,
            f.dims_combo,
            f.noise_combo,
        )
        self.budget_edit, self.budget_unit, self.param_rows = f.budget_edit, f.budget_unit, f.noise_params.rows
        self.choices_label, self.blind_edit = f.choices_label, a.blind_edit
        self.patch_edit, self.batch_edit, self.width_combo, self.lr_edit = (
            a.patch_edit,
            a.batch_edit,
            a.width_combo,
            a.lr_edit,
        )
        self.seed_edit, self.subsample_edit, self.per_image_combo = a.seed_edit, a.subsample_edit, a.per_image_combo
        self.device_combo, self.advanced_button, self.advanced = a.device_combo, a.button, a.body
        self.threads_edit = a.threads_edit
        self.device_label = self.header.device_label
        self.progress_label, self.noise_label, self.model_label, self.loss_plot = (
            p.progress_label,
            p.noise_label,
            p.model_label,
            p.loss_plot,
        )

        self.status = QLabel("")
        wrapping(self.status)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.start_button.setToolTip("Train a new model on the selected layer")
        self.stop_button.setToolTip("Stop after the current step and keep the model trained so far")
        self.resume_button.setToolTip("Continue training the current model on the selected layer")
        self.files = ModelFiles(self.registry, lambda: self.current, self.panel.show_model)
        self.save_button, self.load_button = self.files.save_button, self.files.load_button
        # The current model as a bioimage.io package; its example is the crop of the training data.
        self.export_button = ExportButton(lambda: self.current, lambda: None, self.status)
        self.files.layout().addWidget(self.export_button)
        # The measured noise with the current model's noise model drawn over it.
        self.noise_panel = NoisePanel(form_source(self.form))
        self.noise_plot, self.measure_button = self.noise_panel.plot, self.noise_panel.measure_button
        self._run_noise: str | None = None  # the running model's noise model (from its first update)

        body = QWidget()
        lay = QVBoxLayout(body)
        lay.addWidget(self.form)
        lay.addWidget(self.advanced_settings)
        lay.addWidget(self.files)
        lay.addWidget(self.panel)
        lay.addWidget(self.noise_panel)
        lay.addStretch(1)
        root = QVBoxLayout(self)
        root.addWidget(self.header)
        root.addWidget(scrollable(body), 1)
        # Status and run buttons stay in view however far the form is scrolled.
        root.addWidget(self.status)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(b)
        root.addLayout(buttons)

        self.start_button.clicked.connect(lambda: self.start())
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.stop_button.clicked.connect(self.stop)
        self.files.loaded.connect(self._on_loaded)
        self.form.changed.connect(self._validate)
        self.advanced_settings.changed.connect(self._validate)
        self.advanced_settings.device_changed.connect(self._on_device_changed)
        a.threads_edit.editingFinished.connect(lambda: self._on_device_changed(self.device_combo.currentText()))

    # -- fields -------------------------------------------------------------------------
    def _threads(self) -> int | None:
        """The Threads field as a count (None: auto, or not a count yet)."""
        text = self.advanced_settings.threads_edit.text().strip()
        return int(text) if text.isdigit() and int(text) > 0 else None

    def _on_device_changed(self, device: str) -> None:
        if self._validate() or "device" not in self._errors:
            self.header.resolve(device, self._threads())
        else:
            self.header.show_invalid(self._errors["device"])

    def fields(self) -> TrainFields:
        """The current field values (strings as typed)."""
        return TrainFields(**self.form.values(), **self.advanced_settings.values())

    def _validate(self, *args) -> bool:
        """Check the fields, mark the wrong ones, and say what to fix (or that all is ready)."""
        _, errors = validate_train(self.fields())
        self._errors = errors
        for key, w in {**self.form.field_widgets(), **self.advanced_settings.field_widgets()}.items():
            base = param_help(key.split(":", 1)[1]) if key.startswith("param:") else HELP.get(key, "")
            mark_field(w, errors.get(key), base)
        if errors:
            if any(k in errors for k in ADVANCED_KEYS) and not self.advanced.isVisible():
                self.advanced_settings.expand()
            self.status.setText("⚠ " + next(iter(errors.values())))
            self.status.setStyleSheet("color: #e05050;")
        elif self.worker is None:
            # Also replaces a failed run's message: the fields changed since.
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
            "Train a new model on the selected layer"
            if ok
            else "Fix the marked field first: " + next(iter(self._errors.values()))
        )

    # -- training -----------------------------------------------------------------------
    def start(self, resume: bool = False):
        """Start training (or resume the current model) in a worker thread; returns the worker.

        Returns None, with the reason in the status line, when a field is invalid.
        """
        from napari.utils import progress
        from napari.utils.notifications import show_error

        if self.worker is not None:
            return self.worker
        if not self._validate():
            show_error("napari-ssdn: " + next(iter(self._errors.values())))
            return None
        request, _ = validate_train(self.fields())
        layer = self.layer_combo.layer()
        data = layer_snapshot(layer)
        other = self.form.pair_combo.layer()
        if other is layer and other is not None:
            show_error("napari-ssdn: the other half is the image itself; choose the second observation, or (none)")
            return None
        pair = layer_snapshot(other) if other is not None else None
        resume_model = resume_info = None
        if resume:
            if self.current is None:
                show_error("napari-ssdn: there is no model to resume; press Start or load a model file first")
                return None
            resume_model, resume_info = self.current.model, self.current.info
            problem = resume_problem(self.current, layer.name, data.shape, request.axes)
            if problem:
                show_error(f"napari-ssdn: {problem}")
                return None
        self.preview = PreviewLayer(self.viewer, layer, data, request.axes, ndim=request.config.get("ndim", 2))
        self.preview.follow()
        self.run = run = TrainRun(layer.name, self.registry, self.current.name if resume else None)
        self._runs["current"] = run  # napari deleting the widget stops it and keeps its model
        steps_before = int((resume_info or {}).get("training", {}).get("steps", 0) or 0) if resume else 0
        self.panel.start_run(self.current.name if resume else None, steps_before)
        self.form.show_choices(None)  # the previous run's; this run's come with its first update
        self._run_noise = resume_model.config.noise if resume_model is not None else None
        if resume_model is None:
            self.noise_panel.set_model(None, None)  # the new model's line comes with its first steps
        self._planned = 0
        worker = run.make_worker(data, request, self.preview.source, resume_model, resume_info, pair)
        worker.yielded.connect(self._on_update)
        worker.returned.connect(self._on_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._pbar = progress(total=0, desc="napari-ssdn training: starting")
        self.status.setText("Preparing training (normalisation, noise estimate)…")
        self.status.setStyleSheet("")
        self._update_buttons()
        log.info("napari-ssdn: training on %r, axes %s, %s", layer.name, request.axes, request.config)
        worker.start()
        return worker

    def stop(self) -> None:
        """Stop after the current step; the model trained so far is kept."""
        if self.worker is not None:
            self.run.stop.set()
            self.stop_button.setEnabled(False)
            self.status.setText("Stopping after this step…")

    def _show_warnings(self, found) -> None:
        """A run's warnings about its settings: a notification, and kept under the status
        line for the whole run."""
        from napari.utils.notifications import show_warning

        text = " ".join(in_widget_terms(w) for w in found)
        show_warning(f"napari-ssdn: {text}")
        self.form.show_warning(text)

    def _on_update(self, upd: TrainUpdate) -> None:
        if upd.device is not None:
            self.header.show_device((True, upd.device))
            self.status.setText(f"Training on {upd.device}.")
        if upd.choices is not None:
            self.form.show_choices(upd.choices)
            self._run_noise = upd.choices.get("noise")
        if upd.warnings:
            self._show_warnings(upd.warnings)
        rec = upd.progress
        if rec is not None:
            self._planned = rec.total
            self.panel.on_progress(rec, upd.steps_before)
            if self._run_noise and rec.noise_params:
                self.noise_panel.set_model(self._run_noise, rec.noise_params)
        if upd.preview is not None and self.preview is not None:
            origin = self.preview.source.get().origin
            self.preview.show(upd.preview, upd.preview_plane, origin if upd.preview_plane is not None else None)
        if rec is not None:
            advance_progress(self._pbar, rec.step, rec.total, f"napari-ssdn training (ETA {fmt_time(rec.eta)})")

    def _on_result(self, result: TrainResult) -> None:
        self.last_result = result
        self.current = self.run.keep()
        self.panel.on_result(self.current.name, result)
        self._show_model_noise()
        text, warn = ending(result, self._planned)
        self.status.setText(text)
        self.status.setStyleSheet("color: #e0a030;" if warn else "")

    def _on_error(self, exc: Exception) -> None:
        show_failure(self.status, "training", exc)
        self.panel.on_failure()

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self.preview is not None:
            self.preview.unfollow()
        self.worker = None
        self._update_buttons()

    # -- closing ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop a running training, wait for it to end and keep its model (closing the widget)."""
        worker, run = getattr(self, "worker", None), getattr(self, "run", None)
        if worker is None or run is None:
            return
        for signal, slot in (
            (worker.yielded, self._on_update),
            (worker.returned, self._on_result),
            (worker.errored, self._on_error),
        ):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        run.shutdown()
        if run.result is not None:
            self.last_result, self.current = run.result, run.entry
        self._on_finished()

    # -- model files --------------------------------------------------------------------
    def save_model(self, path) -> Path:
        """Write the current model to ``path`` (``.ssdn``), with its optimizer state for resuming."""
        return self.files.save(path)

    def load_model(self, path) -> SessionModel:
        """Load a ``.ssdn`` file as the current model (to resume or denoise with)."""
        return self.files.load(path)

    def _on_loaded(self, entry: SessionModel) -> None:
        self.current = entry
        self._update_buttons()
        self._show_model_noise()

    def _show_model_noise(self) -> None:
        """Draw the current model's noise model (data units) over the measured noise."""
        model = self.current.model if self.current is not None else None
        if model is not None:
            curve = model.config.noise == "curve"
            self.noise_panel.set_model(
                model.config.noise, model.noise_curve_data() if curve else model.noise_params_data()
            )
