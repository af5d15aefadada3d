"""The noise-parameter rows of the Train widget: one per parameter of any noise model,
each a value field and a 'learn' box; only the chosen model's rows are shown."""

from __future__ import annotations

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QCheckBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QWidget

from .._options import NOISE_PARAMS
from ._train_help import param_help

__all__ = ["NoiseParamFields"]


class NoiseParamFields(QObject):
    """Rows ``(label, row, edit, learn)`` per noise parameter, added to ``form``.

    Signals
    -------
    changed()
        A value was typed or a 'learn' box toggled.
    """

    changed = Signal()

    def __init__(self, form: QFormLayout, parent=None):
        super().__init__(parent)
        self.rows: dict[str, tuple[QLabel, QWidget, QLineEdit, QCheckBox]] = {}
        for names in NOISE_PARAMS.values():
            for name in names:
                if name not in self.rows:
                    self.rows[name] = self._add_row(form, name)

    def _add_row(self, form: QFormLayout, name: str):
        edit = QLineEdit("")
        edit.setToolTip(param_help(name))
        edit.setPlaceholderText("learned")
        edit.setEnabled(False)
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
        learn.toggled.connect(lambda on, e=edit: e.setEnabled(not on))
        learn.toggled.connect(lambda *_: self.changed.emit())
        edit.textChanged.connect(lambda *_: self.changed.emit())
        return label, row, edit, learn

    def show_for(self, noise: str) -> None:
        """Show the rows of the noise model ``noise`` only."""
        shown = NOISE_PARAMS.get(noise, ())
        for name, (label, row, _, _) in self.rows.items():
            label.setVisible(name in shown)
            row.setVisible(name in shown)

    def values(self, noise: str) -> dict[str, tuple[bool, str]]:
        """``{name: (learn, text)}`` for the parameters of ``noise``."""
        return {n: (self.rows[n][3].isChecked(), self.rows[n][2].text()) for n in NOISE_PARAMS.get(noise, ())}

    def fill(self, values: dict[str, float]) -> None:
        """Give the named parameters these values, not learned (e.g. a sample's known level)."""
        for name, v in values.items():
            _, _, edit, learn = self.rows[name]
            edit.setText(f"{v:g}")
            learn.setChecked(False)

    def clear(self, names) -> None:
        """Back to learning the named parameters, their fields empty."""
        for name in names:
            _, _, edit, learn = self.rows[name]
            edit.setText("")
            learn.setChecked(True)

    def edits(self) -> dict[str, QLineEdit]:
        """The value field of each parameter (for error marks)."""
        return {n: row[2] for n, row in self.rows.items()}
