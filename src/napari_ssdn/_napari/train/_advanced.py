"""The Train widget's collapsible Advanced settings: patch, batch, width, learning rate,
seed, subsample, blind region, per-image noise levels, device and CPU threads."""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QToolButton, QVBoxLayout, QWidget

from .._options import DEVICES, PER_IMAGE_CHOICES, WIDTHS
from ._train_form import line_edit
from ._train_help import HELP

__all__ = ["AdvancedSettings", "ADVANCED_KEYS"]

#: Field keys of the settings in this section (an error in one of them opens it).
ADVANCED_KEYS = ("patch", "batch", "width", "lr", "seed", "device", "threads", "subsample", "blind")


class AdvancedSettings(QWidget):
    """A "▸ Advanced settings" button and the fields it shows or hides.

    Signals
    -------
    changed()
        Any field changed.
    device_changed(str)
        The Device field changed (the owner resolves and shows the device).
    """

    changed = Signal()
    device_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        self.button = QToolButton()
        self.button.setText("Advanced settings")
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setArrowType(Qt.ArrowType.RightArrow)
        root.addWidget(self.button)
        self.body = QWidget()
        form = QFormLayout(self.body)
        self.patch_edit = line_edit("auto", HELP["patch"])
        self.batch_edit = line_edit("auto", HELP["batch"])
        self.width_combo = QComboBox()
        self.width_combo.addItems(list(WIDTHS))
        self.width_combo.setCurrentText("auto")
        self.width_combo.setToolTip(HELP["width"])
        self.lr_edit = line_edit("auto", HELP["lr"])
        self.seed_edit = line_edit("0", HELP["seed"])
        self.subsample_edit = line_edit("1", HELP["subsample"])
        self.blind_edit = line_edit("auto", HELP["blind"])
        self.per_image_combo = QComboBox()
        self.per_image_combo.addItems(list(PER_IMAGE_CHOICES))
        self.per_image_combo.setToolTip(HELP["per_image"])
        self.device_combo = QComboBox()
        self.device_combo.setEditable(True)
        self.device_combo.addItems(list(DEVICES))
        self.device_combo.setToolTip(HELP["device"])
        self.threads_edit = line_edit("auto", HELP["threads"])
        for label, w in (
            ("Patch", self.patch_edit),
            ("Batch", self.batch_edit),
            ("Width", self.width_combo),
            ("Learning rate", self.lr_edit),
            ("Seed", self.seed_edit),
            ("Subsample", self.subsample_edit),
            ("Blind region", self.blind_edit),
            ("Device", self.device_combo),
            ("Threads", self.threads_edit),
        ):
            form.addRow(label, w)
        form.addRow("Noise level", self.per_image_combo)
        self.body.setVisible(False)
        root.addWidget(self.body)

        self.button.toggled.connect(self._toggle)
        edits = (self.patch_edit, self.batch_edit, self.lr_edit, self.seed_edit, self.subsample_edit, self.blind_edit)
        for w in (*edits, self.threads_edit):
            w.textChanged.connect(lambda *_: self.changed.emit())
        self.width_combo.currentTextChanged.connect(lambda *_: self.changed.emit())
        self.per_image_combo.currentTextChanged.connect(lambda *_: self.changed.emit())
        self.device_combo.currentTextChanged.connect(self.device_changed)

    def _toggle(self, on: bool) -> None:
        self.body.setVisible(on)
        self.button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def expand(self) -> None:
        """Show the fields (an error in one of them must be visible)."""
        self.button.setChecked(True)

    def values(self) -> dict:
        """This part's :class:`~napari_ssdn._napari.train._validation.TrainFields` values."""
        return {
            "patch": self.patch_edit.text(),
            "batch": self.batch_edit.text(),
            "width": self.width_combo.currentText(),
            "lr": self.lr_edit.text(),
            "seed": self.seed_edit.text(),
            "device": self.device_combo.currentText(),
            "threads": self.threads_edit.text(),
            "subsample": self.subsample_edit.text(),
            "blind": self.blind_edit.text(),
            "per_image": self.per_image_combo.currentText(),
        }

    def field_widgets(self) -> dict[str, QWidget]:
        """Field key -> widget, for error marks."""
        return {
            "patch": self.patch_edit,
            "batch": self.batch_edit,
            "width": self.width_combo,
            "lr": self.lr_edit,
            "seed": self.seed_edit,
            "device": self.device_combo,
            "threads": self.threads_edit,
            "subsample": self.subsample_edit,
            "blind": self.blind_edit,
        }
