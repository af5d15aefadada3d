"""Runs of the Train widget as a user meets them: the models each run leaves, the warning
after too few steps and the CPU threads a run takes (run under Xvfb: xvfb-run -a pytest)."""

import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import TIMEOUT, tiny, train, wait  # noqa: E402

from napari_ssdn._napari._model_registry import session_models  # noqa: E402
from napari_ssdn._napari.denoise import _model_picker  # noqa: E402
from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget  # noqa: E402
from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.samples import noisy_cells  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


def _widget(viewer, name="img"):
    noisy, _ = noisy_cells(64)
    viewer.add_image(noisy, name=name)
    return TrainWidget(viewer)


def test_the_threads_field_sets_a_runs_threads_and_the_device_line_says_why(viewer, qtbot, monkeypatch):
    """Threads (advanced) takes a count or auto; the line at the top shows what the run took."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # auto reads the free cores, not the variable
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


def _listed(d):
    return [d.model_combo.itemText(i) for i in range(d.model_combo.count())]


def test_each_run_keeps_its_model_until_the_user_removes_it(viewer, qtbot, monkeypatch, tmp_path):
    """Train to the end, Start again and Stop a few steps in: the finished model is still in
    the Denoise widget's list beside the new one; Remove asks before dropping an unsaved model
    and not before a saved one."""
    from qtpy.QtWidgets import QMessageBox

    w = _widget(viewer)
    d = DenoiseWidget(viewer)
    tiny(w, "3")
    train(qtbot, w)
    finished = w.last_result.model
    w.budget_edit.setText("100000")
    assert w.start() is not None
    qtbot.waitUntil(lambda: len(w.loss_plot.train) >= 2, timeout=TIMEOUT)
    w.stop()
    wait(qtbot, w)
    assert _listed(d) == ["run 1 (img)", "run 2 (img)"] and d.model_combo.currentText() == "run 2 (img)"
    assert session_models().get("run 1 (img)").model is finished
    w.budget_edit.setText("2")
    train(qtbot, w, resume=True)
    assert _listed(d)[-1] == "run 3 (img, continues run 2)" and w.current.name == "run 3 (img, continues run 2)"

    asked, answer = [], [QMessageBox.StandardButton.No]
    monkeypatch.setattr(_model_picker.QMessageBox, "question", lambda *a: asked.append(a[2]) or answer[0])
    d.model_combo.setCurrentText("run 1 (img)")
    d.remove_button.click()
    assert len(asked) == 1 and "'run 1 (img)'" in asked[0] and "not saved" in asked[0]
    assert "run 1 (img)" in session_models()  # the user said no
    answer[0] = QMessageBox.StandardButton.Yes
    d.remove_button.click()
    assert _listed(d) == ["run 2 (img)", "run 3 (img, continues run 2)"] and len(asked) == 2
    w.save_model(tmp_path / "m.ssdn")  # the current model, run 3, is now in a file
    d.model_combo.setCurrentText("run 3 (img, continues run 2)")
    d.remove_button.click()
    assert _listed(d) == ["run 2 (img)"] and len(asked) == 2


def test_a_run_that_barely_trained_warns_however_it_ended(viewer, qtbot):
    """A time budget that a busy CPU turns into a few steps finishes undertrained, warned as
    a run stopped early is, with what to do; the same share decides both (EARLY_STOP)."""
    from napari_ssdn._napari._jobs import TrainResult
    from napari_ssdn._napari.train._train_run import EARLY_STOP, FULL_RUN, ending

    w = _widget(viewer)
    tiny(w, "0.01", unit="minutes")  # 0.6 s
    train(qtbot, w)
    steps, text = w.last_result.steps, w.status.text()
    assert not w.last_result.stopped and steps < EARLY_STOP * FULL_RUN
    assert f"Training finished after only {steps} step" in text and "undertrained" in text, text
    assert "longer budget" in text and "Threads" in text and "GPU" in text
    assert w.status.styleSheet() == "color: #e0a030;"

    def result(steps, stopped=False):
        return TrainResult(None, {"training": {"steps": steps}}, stopped=stopped, steps=steps)

    threshold = int(EARLY_STOP * FULL_RUN)
    assert ending(result(threshold), threshold)[1] is False and ending(result(threshold - 1), threshold - 1)[1]
    assert ending(result(400, stopped=True), 2000)[0].startswith("Training stopped at step 400 of about 2000")
    assert ending(result(600, stopped=True), 2000) == (
        "Training stopped. Save the model, resume, or denoise with it.",
        False,
    )
