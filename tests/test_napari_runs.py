"""Runs of the Train widget as a user meets them: the models each run leaves, the warning
after too few steps and the CPU threads a run takes (run under Xvfb: xvfb-run -a pytest)."""

import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import tiny, train  # noqa: E402

from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.samples import noisy_cells  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


def _widget(viewer, name="img"):
    noisy, _ = noisy_cells(64)
    viewer.add_image(noisy, name=name)
    return TrainWidget(viewer)


def test_the_threads_field_sets_a_runs_threads_and_the_device_line_says_why(viewer, qtbot):
    """Threads (advanced) takes a count or auto; the line at the top shows what the run took."""
    w = _widget(viewer)
    tiny(w, "3")
    w.threads_edit.setText("0")
    assert not w.start_button.isEnabled() and "threads 0 is too small" in w.status.text()
    w.threads_edit.setText("1")
    train(qtbot, w)
    assert "CPU (1 thread, as set)" in w.device_label.text(), w.device_label.text()
    w.threads_edit.setText("auto")
    train(qtbot, w)
    assert "cores, load" in w.device_label.text() and "from other work" in w.device_label.text()
