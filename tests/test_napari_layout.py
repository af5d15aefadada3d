"""Both docks in a napari window of a small laptop screen (1366 x 768) after a run: every
control can be seen or scrolled to, none is squeezed below its minimum width, the long
texts wrap inside the dock and the Denoise form gets a usable height (run under Xvfb:
xvfb-run -a pytest)."""

import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import tiny, train  # noqa: E402
from qtpy.QtCore import QPoint, QRect, Qt  # noqa: E402
from qtpy.QtWidgets import (  # noqa: E402
    QApplication,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
)

from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget  # noqa: E402
from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.samples import noisy_cells  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]

CONTROLS = (QPushButton, QComboBox, QLineEdit, QCheckBox, QLabel)
USABLE_HEIGHT = 150  # px of form each dock shows at least (the Denoise form had 51)

LONG_CHOICES = {
    "noise": "poisson-gaussian",
    "noise_why": "noise variance grows with the signal (2.6x from dark to bright), measured on "
    "flat regions of the image, where the signal hardly changes from pixel to pixel",
    "blind_region": [2, 3],
    "blind_why": "noise correlated between neighbours along x and y (0.41 and 0.22 at one pixel), "
    "so the network must not see the pixels whose noise it could copy",
    "per_image": True,
    "per_image_why": "the noise level differs between the images of the stack (up to 3.1x)",
}


def _controls(dock):
    for cls in CONTROLS:
        for c in dock.findChildren(cls):
            if not c.isVisible() or c.width() == 0 and c.height() == 0:
                continue
            if isinstance(c, QLabel) and not c.text():
                continue
            if c.window() is not dock.window():  # popups (a combo's list)
                continue
            yield c


def _name(c):
    text = c.text() if hasattr(c, "text") else c.currentText() if isinstance(c, QComboBox) else ""
    return f"{type(c).__name__} {text[:40]!r}"


def _area_of(c, dock):
    """The innermost scroll area holding ``c`` inside ``dock`` (None: not scrolled)."""
    p = c.parentWidget()
    while p is not None and p is not dock:
        if isinstance(p, QScrollArea) and p.widget() is not None and p.widget().isAncestorOf(c):
            return p
        p = p.parentWidget()
    return None


def _clipped_by(c, top):
    """The first ancestor of ``c`` below ``top`` (inclusive) whose rectangle does not hold
    ``c``'s (a child sticking out of its parent is cut off), else None."""
    p = c.parentWidget()
    while p is not None:
        r = QRect(c.mapTo(p, QPoint(0, 0)), c.size())
        if not p.rect().contains(r):
            return p
        if p is top:
            return None
        p = p.parentWidget()
    return None


def _problems(dock):
    out = []
    for c in _controls(dock):
        area = _area_of(c, dock)
        top = area.widget() if area is not None else dock
        bad = _clipped_by(c, top)
        if bad is not None:
            out.append(f"{_name(c)} sticks out of {type(bad).__name__} {bad.objectName()!r}")
            continue
        if area is not None:
            content, view = area.widget(), area.viewport()
            hbar, vbar = area.horizontalScrollBar(), area.verticalScrollBar()
            off = Qt.ScrollBarPolicy.ScrollBarAlwaysOff
            if content.width() > view.width() and area.horizontalScrollBarPolicy() == off:
                out.append(f"{_name(c)}: the scroll area is narrower than its content and has no scroll bar")
            if content.height() > view.height() and area.verticalScrollBarPolicy() == off:
                out.append(f"{_name(c)}: the scroll area is shorter than its content and has no scroll bar")
            if content.width() - view.width() > hbar.maximum():
                out.append(f"{_name(c)}: the scroll area cannot scroll across its content")
            if content.height() - view.height() > vbar.maximum():
                out.append(f"{_name(c)}: the scroll area cannot scroll down its content")
            bad = _clipped_by(area, dock)
            if bad is not None:
                out.append(f"the scroll area of {_name(c)} sticks out of the dock")
        wraps = isinstance(c, QLabel) and c.wordWrap()
        if not wraps and c.width() < c.minimumSizeHint().width():
            out.append(f"{_name(c)} is {c.width()} px wide, below its minimum {c.minimumSizeHint().width()}")
        if wraps and c.height() < c.heightForWidth(c.width()):
            out.append(f"{_name(c)} is {c.height()} px high, its text needs {c.heightForWidth(c.width())}")
    return out


def _settle(qtbot):
    for _ in range(5):
        QApplication.processEvents()
        qtbot.wait(20)


def test_both_docks_fit_a_small_screen_after_a_run(viewer, qtbot):
    win = viewer.window._qt_window
    win.resize(1366, 768)
    win.show()
    viewer.add_image(noisy_cells(64)[0], name="img")
    t = TrainWidget(viewer)
    d = DenoiseWidget(viewer)
    train_dock = viewer.window.add_dock_widget(t, name="Train denoiser", area="right")
    den_dock = viewer.window.add_dock_widget(d, name="Denoise", area="right")
    tiny(t, "3")
    train(qtbot, t)
    t.noise_combo.setCurrentText("poisson-gaussian")  # its rows: value fields and 'learn' boxes
    t.form.show_choices(LONG_CHOICES)  # what a finished run shows, with long reasons
    t.form.show_warning("the image is small for the crops: most of each crop is its border, " * 2)
    _settle(qtbot)
    assert win.width() <= 1366 and win.height() <= 768
    label = t.form.choices_label
    assert label.isVisible() and "Blind region" in label.text()
    problems = _problems(train_dock) + _problems(den_dock)
    assert not problems, "\n".join(problems)
    assert label.height() >= label.heightForWidth(label.width()), (label.height(), label.heightForWidth(label.width()))
    for dock in (train_dock, den_dock):
        area = dock.widget().findChild(QScrollArea)
        assert area is not None and area.viewport().height() >= USABLE_HEIGHT, (
            dock.windowTitle(),
            None if area is None else area.viewport().height(),
        )
    # Every control scrolled into view lies inside the visible part of its dock.
    for dock in (train_dock, den_dock):
        for c in _controls(dock):
            area = _area_of(c, dock)
            if area is not None:
                area.ensureWidgetVisible(c, 0, 0)
                _settle(qtbot)
            r = QRect(c.mapTo(dock, QPoint(0, 0)), c.size())
            if area is not None:
                view = QRect(area.viewport().mapTo(dock, QPoint(0, 0)), area.viewport().size())
                assert view.intersects(r), f"{_name(c)} cannot be scrolled into view"
            else:
                assert dock.rect().contains(r), f"{_name(c)} lies outside its dock"
