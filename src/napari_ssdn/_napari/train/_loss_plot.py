"""A tiny live plot of the validation and training loss, painted with QPainter (no matplotlib).

The validation loss (pixels held out of training) is the main curve, on the one labelled
y-axis; the training loss is drawn faint behind it, on its own hidden scale, as a trend
only: it weights each pixel by its predicted variance, so its values are not comparable.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossPlot"]

VAL_COLOR = QColor(255, 150, 40)
TRAIN_COLOR = QColor(130, 160, 200)  # faint: a pale line behind the validation curve

Y_LABEL = "loss (lower is better)"
X_LABEL = "step"
CAPTION = "● validation loss   — training loss (faint)"


class LossPlot(QWidget):
    """Validation loss (orange, labelled axis) and training loss (faint, smoothed) against step.

    Call :meth:`add` from the main thread; :meth:`clear` starts over.
    """

    y_label = Y_LABEL
    x_label = X_LABEL
    caption = CAPTION

    def __init__(self, parent=None):
        super().__init__(parent)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip(
            "Orange: validation loss, the loss on pixels held out of training (they stay in the input); "
            "the y-axis is its scale. Lower is better: a curve going down is the model improving. "
            "Faint line: training loss, smoothed, on its own hidden scale (it weights pixels differently, "
            "so only its trend matters). Training keeps the weights of the lowest validation loss."
        )

    def clear(self) -> None:
        """Forget all points."""
        self.train.clear()
        self.val.clear()
        self.update()

    def add(self, step: int, loss: float, val_loss: float | None = None) -> None:
        """Append one step; non-finite losses are skipped. A step already drawn (a run's
        closing record scores its last step again) replaces its point."""
        if math.isfinite(loss):
            _put(self.train, step, float(loss))
        if val_loss is not None and math.isfinite(val_loss):
            _put(self.val, step, float(val_loss))
        self.update()

    def smoothed(self) -> list[tuple[int, float]]:
        """Exponential moving average of the training loss (what is drawn)."""
        out, avg = [], None
        for s, v in self.train:
            avg = v if avg is None else 0.9 * avg + 0.1 * v
            out.append((s, avg))
        return out

    def ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``(axis_range, train_range)``: the labelled axis is the validation loss's (the
        training loss's until a validation point exists); the training curve's hidden scale."""
        train = self.smoothed()
        train_range = _robust_range([v for _, v in train[len(train) // 20 :]] or [v for _, v in train])
        if not self.val:
            return train_range, train_range
        # The first point (random weights) would flatten the rest of the curve.
        return _robust_range([v for _, v in (self.val[1:] if len(self.val) >= 3 else self.val)]), train_range

    def paintEvent(self, event):  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fg = pal.color(pal.ColorRole.WindowText)
        font = p.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        rect = QRectF(self.rect()).adjusted(58, 18, -8, -20)
        p.setPen(QPen(fg, 1))
        p.drawText(QRectF(0, 0, self.width(), 16), Qt.AlignmentFlag.AlignHCenter, self.caption)
        p.drawRect(rect)
        train = self.smoothed()
        pts = train + self.val
        if not pts:
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "the loss curve appears when training starts")
            p.end()
            return
        axis_range, train_range = self.ranges()
        x0 = min(s for s, _ in pts)
        x1 = max(max(s for s, _ in pts), x0 + 1)

        def at(s, v, yr):
            lo, hi = yr
            v = min(max(v, lo), hi)
            return QPointF(
                rect.left() + (s - x0) / (x1 - x0) * rect.width(), rect.bottom() - (v - lo) / (hi - lo) * rect.height()
            )

        if train:
            path = QPainterPath(at(*train[0], train_range))
            for s, v in train[1:]:
                path.lineTo(at(s, v, train_range))
            p.setPen(QPen(TRAIN_COLOR, 1))
            p.drawPath(path)
        if self.val:
            path = QPainterPath(at(*self.val[0], axis_range))
            for s, v in self.val[1:]:
                path.lineTo(at(s, v, axis_range))
            p.setPen(QPen(VAL_COLOR, 2))
            p.drawPath(path)
            p.setBrush(VAL_COLOR)
            for s, v in self.val:
                p.drawEllipse(at(s, v, axis_range), 3, 3)
        # The one y-axis: its top and bottom values and its label, rotated along it.
        p.setPen(QPen(fg, 1))
        right = Qt.AlignmentFlag.AlignRight
        p.drawText(QRectF(14, rect.top() - 6, 42, 14), right, f"{axis_range[1]:.3g}")
        p.drawText(QRectF(14, rect.bottom() - 8, 42, 14), right, f"{axis_range[0]:.3g}")
        p.save()
        p.translate(2, rect.center().y())
        p.rotate(-90)
        p.drawText(QRectF(-rect.height() / 2, 0, rect.height(), 14), Qt.AlignmentFlag.AlignHCenter, self.y_label)
        p.restore()
        below = QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16)
        p.drawText(below, Qt.AlignmentFlag.AlignLeft, f"{x0}")
        p.drawText(below, Qt.AlignmentFlag.AlignHCenter, self.x_label)
        p.drawText(below, right, f"{x1}")
        p.end()


def _robust_range(values: list[float]) -> tuple[float, float]:
    """Padded (low, high) of ``values``; a unit range around a single value."""
    if not values:
        return (0.0, 1.0)
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _put(points: list, step: int, value: float) -> None:
    if points and points[-1][0] == step:
        points[-1] = (step, value)
    else:
        points.append((step, value))
