"""The Train widget's progress panel: step line, noise line, loss curve and model line.

All counts are the model's total steps (earlier runs included), so that after Resume the
step line, the curve and the model line agree.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from .._header import wrapping
from ._loss_plot import LossPlot

__all__ = ["ProgressPanel", "fmt_time", "fmt_noise"]


def fmt_time(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def fmt_noise(params: dict) -> str:
    if not params:
        return "–"
    parts = []
    for k, v in params.items():
        v = np.asarray(v, dtype=float)
        parts.append(f"{k} = {float(v.mean()):.4g}" + (" (mean over images)" if v.size > 1 else ""))
    return ", ".join(parts)


class ProgressPanel(QWidget):
    """What a run shows while it trains and after it ends."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.progress_label = QLabel("")
        wrapping(self.progress_label)
        self.noise_label = QLabel("")
        wrapping(self.noise_label)
        self.noise_label.setToolTip(
            "Noise parameters of the model, in image units (learned ones change during training)"
        )
        self.model_label = QLabel("No model yet")
        wrapping(self.model_label)
        self.loss_plot = LossPlot()
        for w in (self.progress_label, self.noise_label, self.loss_plot, self.model_label):
            lay.addWidget(w)
        self._last = None  # the latest step record

    def start_run(self, resume_name: str | None = None, steps_before: int = 0) -> None:
        """A run starts: nothing of the previous run's step, noise or model lines remains."""
        self._last = None
        self.progress_label.setText("Preparing…")
        self.noise_label.setText("Noise: estimating…")
        if resume_name is None:
            self.loss_plot.clear()
            self.model_label.setText("Training a new model…")
        else:
            self.model_label.setText(f"Resuming {resume_name!r} from step {steps_before}…")

    def on_progress(self, rec, steps_before: int) -> None:
        """Show the step record ``rec`` of a run that continues ``steps_before`` earlier steps."""
        self._last = (rec, steps_before)
        step, total = steps_before + rec.step, steps_before + rec.total
        self.loss_plot.add(step, rec.loss, rec.val_loss)
        self.progress_label.setText(
            f"Step {step} / {total}   elapsed {fmt_time(rec.elapsed)}   ETA {fmt_time(rec.eta)}   loss {rec.loss:.4g}"
        )
        self.noise_label.setText("Noise: " + fmt_noise(rec.noise_params))

    def on_result(self, name: str, result) -> None:
        """The run ended with ``result`` (a TrainResult): final step line, noise and model lines."""
        training = result.info.get("training", {})
        steps = training.get("steps", result.steps)
        how = "stopped" if result.stopped else "finished"
        elapsed = f" in {fmt_time(self._last[0].elapsed)}" if self._last is not None else ""
        self.progress_label.setText(f"{how.capitalize()} at step {steps}{elapsed}.")
        kept = training.get("kept_step", steps)
        best = f", keeping step {kept}'s weights (lowest held-out loss)" if kept != steps else ""
        self.model_label.setText(f"Model {name!r}: {how} after {steps} steps{best}; available in the Denoise widget.")
        self.noise_label.setText("Noise: " + fmt_noise(result.info.get("noise_params", {})))

    def on_failure(self) -> None:
        """The run failed: no step line promising an ETA."""
        if self._last is not None:
            rec, before = self._last
            self.progress_label.setText(f"Failed at step {before + rec.step}.")
        else:
            self.progress_label.setText("")
            self.noise_label.setText("")

    def show_model(self, text: str, noise_params: dict | None = None) -> None:
        """A model was loaded or saved."""
        self.model_label.setText(text)
        if noise_params is not None:
            self.noise_label.setText("Noise: " + fmt_noise(noise_params))
