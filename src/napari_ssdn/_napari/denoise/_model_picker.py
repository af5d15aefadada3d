"""The Denoise widget's model row: the session's models, **Load…**, **Remove** and **Export…**.

Every run of the Train widget leaves its own model here (``run N (layer)``), and loaded
files theirs; a model stays until the user removes it, so a new Start never takes a
finished model away.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QMessageBox, QPushButton, QVBoxLayout, QWidget

from .._common import load_model_dialog
from .._export_button import ExportButton
from .._model_registry import ModelRegistry, SessionModel

__all__ = ["ModelPicker"]


class ModelPicker(QWidget):
    """The chosen model and the buttons beside it.

    Parameters
    ----------
    registry : ModelRegistry
        The session's models.
    export_sample : callable
        ``() -> (data, axes) or None``: the example image of an exported package.
    status : QLabel
        Where the export reports.

    Signals
    -------
    changed(str)
        The chosen model changed (its name; empty when there is none).
    """

    changed = Signal(str)

    def __init__(self, registry: ModelRegistry, export_sample: Callable, status, parent=None):
        super().__init__(parent)
        self.registry = registry
        self.combo = QComboBox()
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Load a .ssdn model file or a package written by Export… / 'ssdn export'")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip(
            "Take the chosen model off this list (asks first for a model trained here and not saved)"
        )
        self.export_button = ExportButton(self.selected, export_sample, status)
        # The buttons under the list, so that the row fits a narrow dock.
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.combo)
        row = QHBoxLayout()
        for b in (self.load_button, self.remove_button, self.export_button):
            row.addWidget(b)
        lay.addLayout(row)
        self._names_offered: list[str] = []
        self.combo.currentTextChanged.connect(self._on_choice)
        self.load_button.clicked.connect(lambda: load_model_dialog(self, self.load))
        self.remove_button.clicked.connect(self._remove_clicked)
        registry.changed.connect(self.refresh)
        self.refresh()

    def selected(self) -> SessionModel | None:
        """The chosen session model, or None."""
        name = self.combo.currentText()
        return self.registry.get(name) if name in self.registry else None

    def refresh(self) -> None:
        """List the registry's models; one just added becomes the choice, else the user's
        choice stays while it exists."""
        try:
            current = self.combo.currentText()
        except RuntimeError:  # the widget was deleted; the registry outlives it
            self.registry.changed.disconnect(self.refresh)
            return
        names = self.registry.names()
        added = [n for n in names if n not in self._names_offered]
        self._names_offered = names
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(names)
        kept = current if current in names else (names[-1] if names else "")
        self.combo.setCurrentText(added[-1] if added else kept)
        self.combo.blockSignals(False)
        self._on_choice(self.combo.currentText())

    def load(self, path) -> SessionModel:
        """Load a ``.ssdn`` model file (or an exported package) into the session and choose it."""
        from ...core import load_model

        model, info = load_model(path)
        entry = self.registry.add(SessionModel(Path(path).name, model, info, str(path)))
        self.combo.setCurrentText(entry.name)
        return entry

    def remove(self, name: str) -> None:
        """Take the model ``name`` off the session's list (the Train widget keeps its own)."""
        self.registry.remove(name)

    def _remove_clicked(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        if entry.unsaved:
            answer = QMessageBox.question(
                self,
                "Remove model",
                f"{entry.name!r} was trained in this session and is not saved: removing it loses it unless it is "
                "still the Train widget's model (Save model…). Remove it?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.remove(entry.name)

    def _on_choice(self, name: str) -> None:
        self.remove_button.setEnabled(bool(name))
        self.changed.emit(name)
