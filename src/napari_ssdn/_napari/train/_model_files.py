"""The Train widget's "Save model…" and "Load model…" buttons and what they do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

from .._common import load_model_dialog
from .._model_registry import ModelRegistry, SessionModel

__all__ = ["ModelFiles"]


class ModelFiles(QWidget):
    """Write the current model to a ``.ssdn`` file, or load one into the registry.

    Parameters
    ----------
    registry : ModelRegistry
    current : callable
        Returns the model Save writes (or None).
    report : callable
        ``report(text, noise_params_or_None)``: shows what was saved or loaded.

    Signals
    -------
    loaded(SessionModel)
        A model file was loaded (it becomes the current model).
    """

    loaded = Signal(object)

    def __init__(
        self,
        registry: ModelRegistry,
        current: Callable[[], SessionModel | None],
        report: Callable[[str, dict | None], None],
        parent=None,
    ):
        super().__init__(parent)
        self.registry, self._current, self._report = registry, current, report
        self.save_button = QPushButton("Save model…")
        self.load_button = QPushButton("Load model…")
        self.save_button.setToolTip("Write the current model (with its optimizer state, for resuming) to a .ssdn file")
        self.load_button.setToolTip("Load a .ssdn model file to resume training or to denoise with it")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.save_button)
        lay.addWidget(self.load_button)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)

    def save(self, path) -> Path:
        """Write the current model to ``path`` (``.ssdn``), with its optimizer state for resuming."""
        from ...core import save_model

        entry = self._current()
        if entry is None:
            raise ValueError("there is no model to save; train one or load a model file first")
        info = entry.info
        out = save_model(
            entry.model,
            path,
            optimizer_state=info.get("optimizer"),
            train_state=info.get("training"),
            sample=info.get("sample"),
        )
        entry.saved = str(out)  # the Denoise widget removes it without asking
        self._report(f"Model {entry.name!r} saved to {out}", None)
        return out

    def load(self, path) -> SessionModel:
        """Load a ``.ssdn`` file into the registry; announces it with :attr:`loaded`."""
        from ...core import load_model

        model, info = load_model(path)
        entry = self.registry.add(SessionModel(Path(path).name, model, info, str(path)))
        steps = info.get("training", {}).get("steps", "?")
        self._report(
            f"Model {entry.name!r} loaded ({steps} steps, {model.config.noise} noise); Resume continues it.",
            info.get("noise_params", {}),
        )
        self.loaded.emit(entry)
        return entry

    def _save_dialog(self) -> None:
        from napari.utils.notifications import show_error, show_info

        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.ssdn", "napari-ssdn model (*.ssdn)")
        if path:
            try:
                show_info(f"napari-ssdn: model saved to {self.save(path)}")
            except Exception as exc:  # noqa: BLE001 - report, keep the widget usable
                show_error(f"napari-ssdn: could not save the model to {path!r} ({exc}); choose a writable folder")

    def _load_dialog(self) -> None:
        load_model_dialog(self, self.load)
