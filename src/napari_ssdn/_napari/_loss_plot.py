"""A tiny live plot of training and validation loss, painted with QPainter (no matplotlib)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossPlot"]

TRAIN_COLOR = QColor(80, 160, 255)
VAL_COLOR = QColor(255, 150, 40)


class LossPlot(QWidget):
    """Training loss (blue, smoothed) and validation loss (orange dots) against step.

    Call :meth:`add` from the main thread; :meth:`clear` starts over.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip("Training loss (blue, smoothed, left scale) and validation loss on pixels held out of training "
                        "(orange, right scale; unweighted, so its values differ from the training loss's). Lower is better.")

    def clear(self) -> None:
        """Forget all points."""
        self.train.clear()
        self.val.clear()
        self.update()

    def add(self, step: int, loss: float, val_loss: float | None = None) -> None:
        """Append one step; non-finite losses are skipped."""
        if math.isfinite(loss):
            self.train.append((step, float(loss)))
        if val_loss is not None and math.isfinite(val_loss):
            self.val.append((step, float(val_loss)))
        self.update()

    def smoothed(self) -> list[tuple[int, float]]:
        """Exponential moving average of the training loss (what is drawn)."""
        out, avg = [], None
        for s, v in self.train:
            avg = v if avg is None else 0.9 * avg + 0.1 * v
            out.append((s, avg))
        return out

    def paintEvent(self, event):  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fg = pal.color(pal.ColorRole.WindowText)
        rect = QRectF(self.rect()).adjusted(48, 8, -48, -20)
        p.setPen(QPen(fg, 1))
        p.drawRect(rect)
        train = self.smoothed()
        pts = train + self.val
        if not pts:
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "loss curve appears when training starts")
            p.end()
            return
        # Each curve has its own y scale (train on the left, validation on the right): the
        # training loss is weighted per pixel and the validation loss is not, so their values
        # differ by a lot and one scale would flatten both.
        train_range = _robust_range([v for _, v in train[len(train) // 20 :]] or [v for _, v in train])
        val_range = _robust_range([v for _, v in (self.val[1:] if len(self.val) >= 3 else self.val)])
        x0 = min(s for s, _ in pts)
        x1 = max(max(s for s, _ in pts), x0 + 1)

        def at(s, v, yr):
            lo, hi = yr
            v = min(max(v, lo), hi)
            return QPointF(rect.left() + (s - x0) / (x1 - x0) * rect.width(), rect.bottom() - (v - lo) / (hi - lo) * rect.height())

        if train:
            path = QPainterPath(at(*train[0], train_range))
            for s, v in train[1:]:
                path.lineTo(at(s, v, train_range))
            p.setPen(QPen(TRAIN_COLOR, 1.5))
            p.drawPath(path)
        p.setPen(QPen(VAL_COLOR, 1))
        p.setBrush(VAL_COLOR)
        for s, v in self.val:
            p.drawEllipse(at(s, v, val_range), 2.5, 2.5)
        font = p.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        for yr, color, side, align, shown in ((train_range, TRAIN_COLOR, 0, Qt.AlignmentFlag.AlignRight, bool(train)),
                                              (val_range, VAL_COLOR, rect.right() + 2, Qt.AlignmentFlag.AlignLeft, bool(self.val))):
            if not shown:
                continue
            p.setPen(QPen(color, 1))
            p.drawText(QRectF(side, rect.top() - 6, 46, 14), align, f"{yr[1]:.3g}")
            p.drawText(QRectF(side, rect.bottom() - 8, 46, 14), align, f"{yr[0]:.3g}")
        p.setPen(QPen(fg, 1))
        p.drawText(QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16), Qt.AlignmentFlag.AlignLeft, f"step {x0}")
        p.drawText(QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16), Qt.AlignmentFlag.AlignRight, f"{x1}")
        p.drawText(QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16), Qt.AlignmentFlag.AlignHCenter, "loss: train (left scale), validation (right)")
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
