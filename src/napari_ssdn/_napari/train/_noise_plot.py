"""A picture of the noise, painted with QPainter like the loss plot (no matplotlib).

Left: the measured noise variance against the local mean (dots, data units) with the
model's variance line (Gaussian sigma^2, Poisson x / lam, Poisson-Gaussian a x + b). Right:
the measured correlation of the noise between pixels 1 to 4 apart, per axis, with two
standard errors and the level above which the blind region grows.
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFontMetrics, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from ...core.noise.curve import model_variance
from ...core.noise.stats import NEGLIGIBLE
from ._loss_plot import VAL_COLOR

__all__ = ["NoisePlot", "tick_text"]

MEASURED_COLOR = VAL_COLOR
MODEL_COLOR = QColor(90, 200, 120)
# Centred, word-wrapped text (the two flags are of different enum types under Qt 6).
_CENTER_WRAP = int(getattr(Qt.AlignmentFlag.AlignCenter, "value", Qt.AlignmentFlag.AlignCenter)) | int(
    getattr(Qt.TextFlag.TextWordWrap, "value", Qt.TextFlag.TextWordWrap)
)
AXIS_COLORS = {"X": QColor(235, 80, 80), "Y": QColor(110, 170, 255), "Z": QColor(200, 120, 220)}


def tick_text(v: float) -> str:
    """A short tick label: ``47k``, ``1.25M``, ``0.25``, ``3e-5`` (never ``4.7e+04``, whose
    width the plot's margin could not hold)."""
    a = abs(v)
    if a == 0 or not math.isfinite(v):
        return f"{v:g}"
    if a < 1e-3:
        mantissa, exponent = f"{v:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    for scale, suffix in ((1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        text = f"{v / scale:.3g}"
        if "e" not in text:  # 3 significant digits without an exponent at this scale
            return text + suffix
    return f"{v:.1e}"


class NoisePlot(QWidget):
    """Measured noise variance against intensity with the model's line, and the measured
    correlation per lag along each axis.

    :meth:`set_measured` takes :func:`~napari_ssdn.core.noise.curve.measure_noise`'s dict;
    :meth:`set_model` the model's noise model and parameters in data units.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.measured: dict | None = None
        self.noise: str | None = None
        self.params: dict = {}
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip(
            "Left: dots, the noise variance measured in the flattest parts of the image at each brightness "
            "(data units); green line, the variance the model's noise model gives. A good fit runs through "
            "the dots: flat for Gaussian noise, rising for Poisson(-Gaussian) noise, bent for a measured curve.\n"
            "Right: the noise's correlation between pixels 1 to 4 apart along each axis (bars: two standard "
            "errors). Near 0: independent noise, a blind spot of one pixel suffices; above the dashed line "
            "the blind region (auto) grows to hide the correlated neighbours."
        )

    def set_measured(self, measured: dict | None) -> None:
        self.measured = measured
        self.update()

    def set_model(self, noise: str | None, params: dict | None) -> None:
        self.noise, self.params = noise, dict(params or {})
        self.update()

    def model_line(self) -> list[tuple[float, float]]:
        """The model's variance at the measured means (empty: no model, or impulse noise)."""
        if not self.measured or not self.measured.get("mean") or self.noise is None:
            return []
        xs = _span(self.measured["mean"])
        v = model_variance(self.noise, self.params, xs)
        return [] if v is None else list(zip(xs.tolist(), v.tolist(), strict=True))

    def variance_labels(self) -> tuple[str, str]:
        """The variance axis's lowest and highest tick labels."""
        return tuple(tick_text(v) for v in self.variance_range())

    def label_margin(self, font=None) -> int:
        """Pixels left of the variance plot: its widest tick label and a gap, at least 30."""
        fm = QFontMetrics(font if font is not None else self._small_font())
        return max(30, max(fm.horizontalAdvance(t) for t in self.variance_labels()) + 8)

    def _small_font(self):
        font = self.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        return font

    def variance_range(self) -> tuple[float, float]:
        vals = [v for v in (self.measured or {}).get("variance", []) if math.isfinite(v)]
        vals += [v for _, v in self.model_line() if math.isfinite(v)]
        hi = max(vals, default=1.0) * 1.1 or 1.0
        return 0.0, hi

    def paintEvent(self, event):  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fg = self.palette().color(self.palette().ColorRole.WindowText)
        p.setFont(self._small_font())
        half = self.width() * 0.58
        left = QRectF(0, 0, half, self.height())
        right = QRectF(half, 0, self.width() - half, self.height())
        if not self.measured:
            p.setPen(QPen(fg, 1))
            p.drawText(
                QRectF(self.rect()),
                _CENTER_WRAP,
                "Measure noise to see the noise variance against intensity and its correlation",
            )
            p.end()
            return
        margin = self.label_margin(p.font())  # the tick labels stay whole however wide
        self._paint_variance(p, left.adjusted(margin, 18, -6, -20), fg, margin)
        self._paint_correlation(p, right.adjusted(30, 18, -6, -20), fg)
        p.end()

    def _paint_variance(self, p: QPainter, rect: QRectF, fg: QColor, margin: int) -> None:
        m = self.measured
        xs = _span(m["mean"]) if m["mean"] else np.array([0.0, 1.0])
        x0, x1 = float(xs[0]), float(xs[-1])
        if x1 - x0 < 1e-12:
            x0, x1 = x0 - 0.5, x1 + 0.5
        y0, y1 = self.variance_range()

        def at(x, v):
            v = min(max(v, y0), y1)
            return QPointF(
                rect.left() + (x - x0) / (x1 - x0) * rect.width(), rect.bottom() - (v - y0) / (y1 - y0) * rect.height()
            )

        _frame(p, rect, fg, "variance vs mean", (tick_text(x0), "mean", tick_text(x1)), self.variance_labels(), margin)
        line = self.model_line()
        if line:
            p.setPen(QPen(MODEL_COLOR, 2))
            for (xa, va), (xb, vb) in zip(line[:-1], line[1:], strict=True):
                p.drawLine(at(xa, va), at(xb, vb))
        p.setPen(QPen(MEASURED_COLOR, 1))
        p.setBrush(MEASURED_COLOR)
        for x, v in zip(m["mean"], m["variance"], strict=True):
            if math.isfinite(v):
                p.drawEllipse(at(x, v), 3, 3)
        p.setBrush(Qt.BrushStyle.NoBrush)

    def _paint_correlation(self, p: QPainter, rect: QRectF, fg: QColor) -> None:
        rho, se = self.measured.get("rho") or {}, self.measured.get("rho_se") or {}
        y0, y1 = -0.2, 1.0
        lags = max((len(v) for v in rho.values()), default=4)

        def at(lag, r):
            r = min(max(r, y0), y1)
            return QPointF(
                rect.left() + (lag - 0.5) / lags * rect.width(), rect.bottom() - (r - y0) / (y1 - y0) * rect.height()
            )

        _frame(p, rect, fg, "correlation", ("1", "lag", str(lags)), (f"{y0:g}", f"{y1:g}"), 30)
        if not rho:
            p.setPen(QPen(fg, 1))
            p.drawText(rect, _CENTER_WRAP, "too little data")
            return
        p.setPen(QPen(fg, 1, Qt.PenStyle.DotLine))
        p.drawLine(at(0.5, 0.0), at(lags + 0.5, 0.0))
        p.setPen(QPen(fg, 1, Qt.PenStyle.DashLine))
        p.drawLine(at(0.5, NEGLIGIBLE), at(lags + 0.5, NEGLIGIBLE))
        legend = []
        for k, (axis, values) in enumerate(rho.items()):
            color = AXIS_COLORS.get(axis, fg)
            shift = (k - (len(rho) - 1) / 2) * 0.12
            p.setPen(QPen(color, 2))
            pts = [at(lag + shift, r) for lag, r in enumerate(values, start=1)]
            for a, b in zip(pts[:-1], pts[1:], strict=True):
                p.drawLine(a, b)
            for lag, (r, e) in enumerate(zip(values, se.get(axis, [0.0] * len(values)), strict=True), start=1):
                p.drawLine(at(lag + shift, r - 2 * e), at(lag + shift, r + 2 * e))
            legend.append((axis.lower(), color))
        x = rect.right() - 14 * len(legend)
        for name, color in legend:
            p.setPen(QPen(color, 1))
            p.drawText(QRectF(x, rect.top() + 2, 12, 12), Qt.AlignmentFlag.AlignCenter, name)
            x += 14


def _span(means) -> np.ndarray:
    """Points from the lowest to the highest measured mean (where the line is drawn)."""
    lo, hi = float(min(means)), float(max(means))
    return np.linspace(lo, hi, 24)


def _frame(p: QPainter, rect: QRectF, fg: QColor, title: str, xlabels: tuple, ylabels: tuple, margin: int) -> None:
    """Box, title above it, x labels (left, middle, right) below it, y range in the
    ``margin`` at its left."""
    p.setPen(QPen(fg, 1))
    p.drawRect(rect)
    p.drawText(QRectF(rect.left(), rect.top() - 16, rect.width(), 14), Qt.AlignmentFlag.AlignHCenter, title)
    below = QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16)
    for text, align in zip(
        xlabels, (Qt.AlignmentFlag.AlignLeft, Qt.AlignmentFlag.AlignHCenter, Qt.AlignmentFlag.AlignRight), strict=True
    ):
        p.drawText(below, align, text)
    right = Qt.AlignmentFlag.AlignRight
    p.drawText(QRectF(rect.left() - margin, rect.top() - 6, margin - 2, 14), right, ylabels[1])
    p.drawText(QRectF(rect.left() - margin, rect.bottom() - 8, margin - 2, 14), right, ylabels[0])
