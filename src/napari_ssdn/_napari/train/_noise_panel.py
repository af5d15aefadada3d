"""The Train widget's noise section: measure the noise of the selected layer (in a worker
thread) and draw it with the current model's noise model over it.

The numbers come from :func:`napari_ssdn.core.noise.curve.measure_noise` and
:func:`~napari_ssdn.core.noise.stats.model_variance`; this module only shows them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .._header import wrapping
from .._workers import WorkerGroup
from ._noise_plot import NoisePlot

__all__ = ["NoisePanel", "fmt_model_line", "negative_b_note", "form_source"]

HELP = (
    "Measure the noise of the selected image: its variance against intensity in the flattest parts of "
    "the image and its correlation between neighbouring pixels. The current model's noise model is drawn "
    "over it, so you can see whether it fits your data."
)


def fmt_model_line(noise: str | None, params: dict) -> str:
    """The model's variance line in words, e.g. ``Model (gaussian): variance = sigma^2 = 0.0096``."""
    params = params or {}
    p = {} if noise == "curve" else {k: float(np.mean(v)) for k, v in params.items()}
    if noise == "gaussian" and "sigma" in p:
        return f"Model (gaussian): variance = \u03c3\u00b2 = {p['sigma'] ** 2:.4g}, flat."
    if noise == "poisson" and "lam" in p:
        return f"Model (poisson): variance = x / \u03bb, \u03bb = {p['lam']:.4g}."
    if noise == "poisson-gaussian" and "a" in p and "b" in p:
        line = f"Model (poisson-gaussian): variance = a\u00b7x + b, a = {p['a']:.4g}, b = {p['b']:.4g}."
        return line + (" " + negative_b_note(p["a"], p["b"]) if p["b"] < 0 else "")
    if noise == "curve" and params.get("mean"):
        n = len(params["mean"])
        return f"Model (curve): the variance measured from the training data at {n} brightness levels, joined by lines."
    if noise == "impulse":
        return "Model (impulse): no variance line (a share of pixels replaced by random values)."
    if noise is not None and not p:
        return "This model has no noise model to draw (a baseline without one)."
    return "No model yet: train or load one to draw its noise model over the measurement."


def negative_b_note(a: float, b: float) -> str:
    """What a negative Poisson-Gaussian ``b`` means, in words (``a`` > 0, ``b`` < 0)."""
    zero = f" (at intensity {-b / a:.4g}, where the line reaches 0, or above)" if a > 0 else ""
    return (
        "b is negative: the camera adds an offset (pedestal) to every pixel, so intensity 0 lies below the "
        "signal's true zero and b, the line's value there, is not a variance. The variance at zero signal, "
        f"the read noise, is the line's value at the offset{zero}."
    )


def form_source(form) -> Callable[[], tuple]:
    """The image a :class:`~._train_form.TrainForm` names, as :class:`NoisePanel` wants it."""

    def source():
        from ...core.data import check_axes
        from ...core.errors import SSDNError
        from .._common import layer_snapshot

        layer = form.layer_combo.layer()
        if layer is None:
            raise SSDNError("no image layer: open an image or a sample first")
        data = layer_snapshot(layer)
        axes = check_axes(form.axes_edit.text().strip().upper(), data.shape)
        ndim = 3 if form.dims_combo.currentText() == "3D" and "Z" in axes else 2
        return layer.name, data, axes, ndim

    return source


class NoisePanel(QWidget):
    """A **Measure noise** button, the plot, and a line saying what is drawn.

    Parameters
    ----------
    source : callable
        Returns ``(name, data, axes, ndim)`` of the image to measure, or raises
        :class:`~napari_ssdn.core.errors.SSDNError` saying why there is none.
    """

    def __init__(self, source: Callable[[], tuple], parent=None):
        super().__init__(parent)
        self.source = source
        self.worker = None
        self.workers = WorkerGroup(self)  # stopped when the widget closes
        self.measured_name: str | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.measure_button = QPushButton("Measure noise")
        self.measure_button.setToolTip(HELP)
        row.addWidget(self.measure_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.label = QLabel("")
        wrapping(self.label)
        lay.addWidget(self.label)
        self.model_label = QLabel(fmt_model_line(None, {}))
        wrapping(self.model_label)
        self.plot = NoisePlot()
        self.plot.setVisible(False)
        self.model_label.setVisible(False)
        lay.addWidget(self.plot)
        lay.addWidget(self.model_label)
        self.measure_button.clicked.connect(lambda: self.measure())

    def measure(self):
        """Measure the source image's noise in a worker thread; returns the worker (None
        when there is nothing to measure: the reason is in the line beside the button)."""
        from ...core.errors import SSDNError
        from ...core.noise.curve import measure_noise

        if self.worker is not None:
            return self.worker
        try:
            name, data, axes, ndim = self.source()
        except SSDNError as exc:
            self._say(f"\u26a0 {exc}", error=True)
            return None
        self.measure_button.setEnabled(False)
        self._say(f"Measuring the noise of {name!r}\u2026")
        self.worker = self.workers.start(
            measure_noise,
            data,
            axes,
            ndim,
            on={
                "returned": lambda result: self._on_measured(name, axes, result),
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        return self.worker

    def set_model(self, noise: str | None, params: dict | None) -> None:
        """Draw the variance line of ``noise`` with ``params`` (data units)."""
        self.plot.set_model(noise, params)
        self.model_label.setText(fmt_model_line(noise, params or {}))

    def _on_measured(self, name: str, axes: str, result: dict) -> None:
        self.measured_name = name
        self.plot.set_measured(result)
        self.plot.setVisible(True)
        self.model_label.setVisible(True)
        lag = f", pixels {result['lag']} apart (beyond the noise's correlation)" if result.get("lag", 1) > 1 else ""
        text = f"Noise of {name!r} ({axes}): dots, variance in the flattest parts at each brightness{lag}."
        if result.get("rho_error"):
            text += f" Correlation not measured: {result['rho_error']}"
        self._say(text)

    def _on_error(self, exc: Exception) -> None:
        from .._words import failure_text

        self._say(f"\u26a0 Could not measure the noise: {failure_text(exc)}", error=True)

    def _on_finished(self) -> None:
        self.worker = None
        self.measure_button.setEnabled(True)

    def _say(self, text: str, error: bool = False) -> None:
        self.label.setText(text)
        self.label.setStyleSheet("color: #e05050;" if error else "")
