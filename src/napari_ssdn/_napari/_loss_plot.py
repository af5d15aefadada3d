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
        self.setToolTip("Training loss (blue, smoothed) and validation loss on pixels held out of training (orange). Lower is better.")

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
        rect = QRectF(self.rect()).adjusted(48, 8, -8, -20)
        p.setPen(QPen(fg, 1))
        p.drawRect(rect)
        train = self.smoothed()
        pts = train + self.val
        if not pts:
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "loss curve appears when training starts")
            p.end()
            return
        # Robust y range: ignore the first steps' very high loss once there are enough points.
        ys = sorted(v for _, v in (train[len(train) // 20 :] + self.val)) or [v for _, v in pts]
        lo, hi = ys[0], ys[-1]
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        pad = 0.05 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        x0 = min(s for s, _ in pts)
        x1 = max(max(s for s, _ in pts), x0 + 1)

        def at(s, v):
            v = min(max(v, lo), hi)
            return QPointF(rect.left() + (s - x0) / (x1 - x0) * rect.width(), rect.bottom() - (v - lo) / (hi - lo) * rect.height())

        if train:
            path = QPainterPath(at(*train[0]))
            for s, v in train[1:]:
                path.lineTo(at(s, v))
            p.setPen(QPen(TRAIN_COLOR, 1.5))
            p.drawPath(path)
        p.setPen(QPen(VAL_COLOR, 1))
        p.setBrush(VAL_COLOR)
        for s, v in self.val:
            p.drawEllipse(at(s, v), 2.5, 2.5)
        p.setPen(QPen(fg, 1))
        font = p.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        p.drawText(QRectF(0, rect.top() - 6, 46, 14), Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
        p.drawText(QRectF(0, rect.bottom() - 8, 46, 14), Qt.AlignmentFlag.AlignRight, f"{lo:.3g}")
        p.drawText(QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16), Qt.AlignmentFlag.AlignLeft, f"step {x0}")
        p.drawText(QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16), Qt.AlignmentFlag.AlignRight, f"{x1}")
        p.drawText(QRectF(rect.left(), rect.bottom() + 2, rect.width(), 16), Qt.AlignmentFlag.AlignHCenter, "loss: train, validation")
        p.end()
