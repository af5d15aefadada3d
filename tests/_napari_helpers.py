"""Helpers shared by the napari widget tests (fast training settings, waiting for workers)."""

import dataclasses

TIMEOUT = 60_000  # ms; a tiny network trains its few steps in about a second


def tiny(widget, budget="20", unit="iterations"):
    """Fast settings: tiny network, small crops, CPU."""
    widget.width_combo.setCurrentText("tiny")
    widget.patch_edit.setText("16")
    widget.batch_edit.setText("2")
    widget.budget_unit.setCurrentText(unit)
    widget.budget_edit.setText(budget)
    widget.device_combo.setCurrentText("cpu")


def wait(qtbot, widget):
    """Wait until the widget has handled its worker's finished signal."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)


def train(qtbot, widget, resume=False):
    worker = widget.start(resume=resume)
    assert worker is not None, widget.status.text()
    wait(qtbot, widget)
    return worker


def fast_previews(monkeypatch, every=0.05):
    """Previews every ``every`` seconds instead of every 3 s."""
    import napari_ssdn._napari.train._train_widget as tw

    real = tw.validate_train

    def validate(fields):
        request, errors = real(fields)
        return (dataclasses.replace(request, preview_every=every) if request else request), errors

    monkeypatch.setattr(tw, "validate_train", validate)
