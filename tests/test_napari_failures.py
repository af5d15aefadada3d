"""Failures and refusals as the widgets show them: one line naming what happened, nothing
added to the viewer (run under Xvfb: xvfb-run -a pytest)."""

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import TIMEOUT, wait  # noqa: E402

from napari_ssdn._napari._model_registry import SessionModel, session_models  # noqa: E402
from napari_ssdn._napari.denoise import _denoise_widget  # noqa: E402
from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget  # noqa: E402
from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.samples import noisy_cells  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]

# What a library may raise: a header, an indented dump and a traceback-like tail.
DUMP = "3 validation errors for Tensor\n  shape\n    Input should be a tuple [type=tuple_type]\nTraceback (most recent)"


@pytest.fixture
def notifications(monkeypatch):
    """The texts of the error notifications shown."""
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    return shown


def test_a_library_failure_while_denoising_is_one_line(viewer, qtbot, tiny_model, monkeypatch, notifications):
    """An exception from outside the package reaches the status line and the notification as
    its type and the first line of its message, and no layer is added."""

    def broken(*args, **kwargs):
        raise ValueError(DUMP)
        yield  # a generator, as the real job is

    monkeypatch.setattr(_denoise_widget, "denoise_job", broken)
    session_models().add(SessionModel("tiny", tiny_model))
    noisy, _ = noisy_cells(32)
    viewer.add_image(noisy, name="cells")
    d = DenoiseWidget(viewer)
    assert d.run() is not None, d.status.text()
    wait(qtbot, d)
    text = d.status.text()
    assert "Denoising failed: ValueError: 3 validation errors for Tensor" in text, text
    assert "\n" not in text and "Traceback" not in text and "tuple_type" not in text
    assert len(notifications) == 1 and "\n" not in notifications[0] and "ValueError" in notifications[0]
    assert [lay.name for lay in viewer.layers] == ["cells"]


def test_a_library_failure_while_measuring_noise_is_one_line(viewer, qtbot, monkeypatch):
    """The noise measurement's failure line is one line too."""
    from napari_ssdn.core.noise import curve

    def broken(*args, **kwargs):
        raise RuntimeError(DUMP)

    monkeypatch.setattr(curve, "measure_noise", broken)
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="img")
    w = TrainWidget(viewer)
    assert w.noise_panel.measure() is not None
    qtbot.waitUntil(lambda: w.noise_panel.worker is None, timeout=TIMEOUT)
    text = w.noise_panel.label.text()
    assert text.endswith("RuntimeError: 3 validation errors for Tensor"), text
    assert "\n" not in text


def test_an_image_smaller_than_the_network_is_refused(viewer, qtbot, tiny_model, notifications):
    """A 1 x 1 layer: Denoise stays disabled, the line names both sizes, and run() adds nothing."""
    session_models().add(SessionModel("tiny", tiny_model))
    viewer.add_image(np.ones((1, 1), np.float32), name="dot")
    d = DenoiseWidget(viewer)
    text = d.status.text()
    assert not d.run_button.isEnabled()
    assert "1 x 1 pixels" in text and "at least 8 x 8" in text and "larger image" in text, text
    assert d.run() is None and len(notifications) == 1 and "\n" not in notifications[0]
    assert [lay.name for lay in viewer.layers] == ["dot"]
    viewer.add_image(np.random.default_rng(0).random((32, 32)).astype(np.float32), name="big enough")
    d.layer_combo.setCurrentText("big enough")
    assert d.run_button.isEnabled(), d.status.text()


def test_a_patch_larger_than_the_image_is_refused(viewer, qtbot):
    """Patch 100000 on a 64 x 48 layer marks the field, says the largest that fits and keeps
    Start disabled."""
    viewer.add_image(np.random.default_rng(0).random((64, 48)).astype(np.float32), name="img")
    w = TrainWidget(viewer)
    w.patch_edit.setText("100000")
    assert not w.start_button.isEnabled()
    assert "patch 100000 is larger than the image (64 x 48 pixels); use at most 64" in w.status.text()
    assert w.start() is None
    w.patch_edit.setText("64")
    assert w.start_button.isEnabled(), w.status.text()
