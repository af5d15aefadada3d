"""The main fields of the Train widget: image, axes, network, noise model and budget."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QWidget

from ...core.constants import region_extent
from .._common import ImageLayerCombo, guessed_axes
from .._header import wrapping
from .._options import NOISE_CHOICES, NOISE_PARAMS
from ._noise_fields import NoiseParamFields
from ._train_help import HELP

__all__ = ["TrainForm", "line_edit", "fmt_choices"]

DEFAULT_BUDGET = {"iterations": "300", "minutes": "2"}


def line_edit(text: str, help_text: str) -> QLineEdit:
    """A line edit holding ``text`` with ``help_text`` as its tooltip."""
    w = QLineEdit(text)
    w.setToolTip(help_text)
    return w


class TrainForm(QWidget):
    """The fields above Advanced settings.

    Signals
    -------
    changed()
        Any field changed (the owner validates).
    """

    changed = Signal()

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.layer_combo = ImageLayerCombo(viewer)
        self.layer_combo.setToolTip(HELP["layer"])
        self.axes_edit = line_edit("", HELP["axes"])
        self.dims_combo = QComboBox()
        self.dims_combo.addItems(["2D", "3D"])
        self.dims_combo.setToolTip(HELP["dims"])
        self.noise_combo = QComboBox()
        self.noise_combo.addItems(list(NOISE_CHOICES))
        self.noise_combo.setCurrentText("auto")
        self.noise_combo.setToolTip(HELP["noise"])
        self.pair_combo = ImageLayerCombo(viewer, none_text="(none)")
        self.pair_combo.setToolTip(HELP["pair"])
        form.addRow("Image", self.layer_combo)
        form.addRow("Other half", self.pair_combo)
        form.addRow("Axes", self.axes_edit)
        form.addRow("Network", self.dims_combo)
        form.addRow("Noise model", self.noise_combo)
        self.noise_params = NoiseParamFields(form, self)
        self._filled: dict[str, float] = {}  # noise parameters filled from a layer that states them
        # What a run's auto settings became and why (shown while it runs and after it ends).
        self.choices_label = QLabel("")
        wrapping(self.choices_label)
        self.choices_label.setToolTip("What the run uses for the noise model and the blind region, and why")
        self.choices_label.setVisible(False)
        form.addRow(self.choices_label)
        self.warning_label = QLabel("")
        wrapping(self.warning_label)
        self.warning_label.setStyleSheet("color: #e0a030;")
        self.warning_label.setVisible(False)
        form.addRow(self.warning_label)
        budget_row = QWidget()
        bl = QHBoxLayout(budget_row)
        bl.setContentsMargins(0, 0, 0, 0)
        self.budget_edit = line_edit(DEFAULT_BUDGET["iterations"], HELP["budget"])
        self.budget_unit = QComboBox()
        self.budget_unit.addItems(list(DEFAULT_BUDGET))
        bl.addWidget(self.budget_edit)
        bl.addWidget(self.budget_unit)
        form.addRow("Budget", budget_row)

        self.layer_combo.currentIndexChanged.connect(self._on_layer_changed)
        self.noise_combo.currentTextChanged.connect(self._on_noise_changed)
        self.budget_unit.currentTextChanged.connect(self._on_unit_changed)
        self.noise_params.changed.connect(lambda *_: self.changed.emit())
        for w in (self.axes_edit, self.budget_edit):
            w.textChanged.connect(lambda *_: self.changed.emit())
        self.dims_combo.currentTextChanged.connect(lambda *_: self.changed.emit())
        self.noise_params.show_for(self.noise_combo.currentText())
        self._on_layer_changed()

    def _on_layer_changed(self, *args) -> None:
        layer = self.layer_combo.layer()
        if layer is not None:
            self.axes_edit.blockSignals(True)
            self.axes_edit.setText(guessed_axes(layer))
            self.axes_edit.blockSignals(False)
        self._fill_known_noise(layer)
        self.changed.emit()

    def _fill_known_noise(self, layer) -> None:
        """A layer that states its noise (the samples do) fills the noise fields with it; the
        next layer without one puts back what the user had (auto)."""
        known = known_noise(layer)
        if known:
            noise, params = known
            self.noise_combo.setCurrentText(noise)
            self.noise_params.fill(params)
            self._filled = params
        elif self._filled:
            self.noise_params.clear(self._filled)
            self.noise_combo.setCurrentText("auto")
            self._filled = {}

    def _on_noise_changed(self, noise: str) -> None:
        self.noise_params.show_for(noise)
        self.changed.emit()

    def show_choices(self, choices: dict | None) -> None:
        """Show a run's noise model and blind region with the reasons (None: clear the line
        and the run's warning)."""
        text = fmt_choices(choices) if choices else ""
        self.choices_label.setText(text)
        self.choices_label.setVisible(bool(text))
        if choices is None:
            self.show_warning("")

    def show_warning(self, text: str) -> None:
        """Show what the user should check about a run's settings ("" clears it)."""
        self.warning_label.setText(f"\u26a0 {text}" if text else "")
        self.warning_label.setVisible(bool(text))

    def _on_unit_changed(self, unit: str) -> None:
        self.budget_edit.blockSignals(True)
        self.budget_edit.setText(DEFAULT_BUDGET.get(unit, "300"))
        self.budget_edit.blockSignals(False)
        self.changed.emit()

    def values(self) -> dict:
        """This part's :class:`~napari_ssdn._napari.train._validation.TrainFields` values."""
        layer = self.layer_combo.layer()
        shape = None if layer is None else tuple((layer.data[0] if layer.multiscale else layer.data).shape)
        noise = self.noise_combo.currentText()
        axes = self.axes_edit.text()
        return {
            "shape": shape,
            "axes": axes,
            "noise": noise,
            "params": self.noise_params.values(noise),
            "budget": self.budget_edit.text(),
            "budget_unit": self.budget_unit.currentText(),
            "dims": self.dims_combo.currentText(),
            "anisotropy": anisotropy(layer, axes.strip().upper()),
        }

    def field_widgets(self) -> dict[str, QWidget]:
        """Field key (as in :func:`~napari_ssdn._napari.train._validation.validate_train`) -> widget."""
        ws = {
            "layer": self.layer_combo,
            "axes": self.axes_edit,
            "noise": self.noise_combo,
            "budget": self.budget_edit,
            "dims": self.dims_combo,
        }
        ws.update({f"param:{n}": e for n, e in self.noise_params.edits().items()})
        return ws


def fmt_choices(choices: dict) -> str:
    """A run's choices (``DataChoices.to_dict()``) in words, e.g. ``Noise model:
    poisson-gaussian — noise variance grows with the signal (2.6x from dark to bright).
    Blind region: 3 x 3 pixels — noise correlated between neighbours (...).``"""
    region = [int(k) for k in choices.get("blind_region") or ()]
    if all(k == 1 for k in region):
        shown = "the pixel alone"
    else:
        shown = region_extent(region) + " pixels"
    out = []
    level = "per image" if choices.get("per_image") else "shared"
    for what, value, why in (
        ("Noise model", choices.get("noise"), choices.get("noise_why")),
        ("Blind region", shown, choices.get("blind_why")),
        ("Noise level", level, choices.get("per_image_why", "given")),
    ):
        if why == "given":
            out.append(f"{what}: {value} (as set).")
        else:
            out.append(f"{what}: {value} \u2014 {why}." if why else f"{what}: {value}.")
    if choices.get("channels_apart"):
        out.append(f"Channels: trained apart as gray images \u2014 {choices['channels_why']}.")
    return " ".join(out)


def known_noise(layer) -> tuple[str, dict[str, float]] | None:
    """``(noise model, parameters)`` that ``layer``'s metadata states, e.g. a sample's
    ``{"noise": "gaussian", "sigma": 0.1}``; None when it states no complete one."""
    meta = getattr(layer, "metadata", None) or {}
    names = NOISE_PARAMS.get(meta.get("noise"), ())
    try:
        params = {n: float(meta[n]) for n in names}
    except (KeyError, TypeError, ValueError):
        return None
    return (meta["noise"], params) if names and all(v > 0 for v in params.values()) else None


def anisotropy(layer, axes: str) -> float:
    """z spacing over x spacing of ``layer`` (1 when unknown)."""
    if layer is None or "Z" not in axes or "X" not in axes:
        return 1.0
    dims = axes.replace("C", "") if layer.rgb else axes
    try:
        z, x = float(layer.scale[dims.index("Z")]), float(layer.scale[dims.index("X")])
    except (IndexError, ValueError):
        return 1.0
    return z / x if z > 0 and x > 0 else 1.0
