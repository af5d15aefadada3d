"""Train and Denoise widgets in a real napari viewer (run under Xvfb: xvfb-run -a pytest)."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import TIMEOUT, tiny, train, wait  # noqa: E402

from napari_ssdn._napari._jobs import TrainRequest, train_job  # noqa: E402
from napari_ssdn._napari._model_registry import SessionModel, session_models  # noqa: E402
from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget  # noqa: E402
from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.samples import noisy_cells, noisy_cells_stack  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


def test_train_through_widget(viewer, qtbot):
    """Training a tiny model adds it to the session, draws the loss curve and a preview layer."""
    noisy, _ = noisy_cells(64)
    viewer.add_image(noisy, name="noisy", scale=(0.5, 0.5), units="micrometer")
    w = TrainWidget(viewer)
    tiny(w, "20")
    assert w.axes_edit.text() == "YX"
    assert w.start_button.isEnabled()
    qtbot.waitUntil(lambda: "CPU" in w.device_label.text(), timeout=TIMEOUT)
    train(qtbot, w)
    assert w.last_result is not None and w.last_result.steps == 20
    assert "run 1 (noisy)" in session_models()
    assert len(w.loss_plot.train) == 20 and len(w.loss_plot.val) >= 3
    assert "sigma" in w.noise_label.text()
    preview = viewer.layers["noisy_ssdn_preview"]
    assert preview.data.shape == (64, 64)
    assert tuple(preview.scale) == (0.5, 0.5)
    assert w.start_button.isEnabled() and w.resume_button.isEnabled() and not w.stop_button.isEnabled()


def test_auto_width_and_learning_rate(viewer, qtbot):
    """The widget's defaults leave width and learning rate to the core (tiny at 2e-3 on a
    CPU); a bad learning rate disables Start with a message until it is fixed; subsample and
    per-image levels reach the model."""
    noisy, _ = noisy_cells(64)
    viewer.add_image(noisy, name="noisy")
    w = TrainWidget(viewer)
    assert w.width_combo.currentText() == "auto" and w.lr_edit.text() == "auto"
    w.subsample_edit.setText("2")  # carried to the model; the preview comes back whole
    w.per_image_combo.setCurrentText("per image")
    w.patch_edit.setText("16")
    w.batch_edit.setText("2")
    w.budget_edit.setText("3")
    w.device_combo.setCurrentText("cpu")
    w.lr_edit.setText("fast")
    assert not w.start_button.isEnabled() and "learning rate" in w.status.text()
    w.lr_edit.setText("auto")
    assert w.start_button.isEnabled(), w.status.text()
    train(qtbot, w)
    model = w.last_result.model
    assert model.config.enc == 16
    assert model.config.subsample == 2
    assert model.config.per_image and model.estimator is not None
    assert viewer.layers["noisy_ssdn_preview"].data.shape == (64, 64)


def test_event_loop_runs_during_training(viewer, qtbot):
    """The viewer stays responsive: a 20 ms QTimer keeps firing while a time-budget run trains."""
    from qtpy.QtCore import QTimer

    noisy, _ = noisy_cells_stack(n=3, size=64)
    viewer.add_image(noisy, name="stack")
    w = TrainWidget(viewer)
    tiny(w, "0.02", unit="minutes")  # 1.2 s
    assert w.axes_edit.text() in ("TYX", "SYX")
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    t0 = time.perf_counter()
    train(qtbot, w)
    elapsed = time.perf_counter() - t0
    timer.stop()
    assert elapsed > 1.0
    # Without a responsive loop the timer could not fire during the run at all.
    assert len(ticks) > 0.3 * elapsed / 0.02, (len(ticks), elapsed)


def test_preview_of_a_stack_sits_on_its_own_slice(viewer, qtbot):
    """A stack's preview is its middle image, shown on that slice only (not broadcast)."""
    noisy, _ = noisy_cells_stack(n=3, size=48)
    viewer.add_image(noisy, name="stack", scale=(3.0, 0.5, 0.5))
    w = TrainWidget(viewer)
    tiny(w, "3")
    w.axes_edit.setText("SYX")
    train(qtbot, w)
    preview = viewer.layers["stack_ssdn_preview"]
    assert preview.data.shape == (1, 48, 48)
    assert tuple(preview.translate) == (3.0, 0.0, 0.0) and tuple(preview.scale) == (3.0, 0.5, 0.5)


def test_stop_keeps_model_and_resume_continues(viewer, qtbot, tmp_path):
    """Stop ends a long run quickly and keeps the model; Resume continues it; Save/Load round-trips."""
    noisy, _ = noisy_cells(64)
    viewer.add_image(noisy, name="img")
    w = TrainWidget(viewer)
    tiny(w, "100000")
    worker = w.start()
    qtbot.waitUntil(lambda: len(w.loss_plot.train) >= 3, timeout=TIMEOUT)
    assert w.stop_button.isEnabled() and not w.start_button.isEnabled()
    t0 = time.perf_counter()
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        w.stop_button.click()
    assert time.perf_counter() - t0 < 5
    assert w.last_result.stopped and 3 <= w.last_result.steps < 100000
    # Stopped at a sliver of the plan: the status says the model is undertrained.
    assert "undertrained" in w.status.text() and f"step {w.last_result.steps} of about" in w.status.text()
    first = w.last_result.steps
    assert session_models().get("run 1 (img)").model is w.last_result.model

    w.budget_edit.setText("5")
    train(qtbot, w, resume=True)
    assert w.last_result.info["training"]["steps"] == first + 5
    # finished, and still a few steps: undertrained by the Stop path's share, not stopped early
    assert f"Training finished after only {first + 5} steps" in w.status.text() and "of about" not in w.status.text()
    assert w.loss_plot.train[-1][0] == first + 5  # the curve continues from the earlier steps

    path = w.save_model(tmp_path / "m.ssdn")
    assert path.is_file()
    entry = w.load_model(path)
    assert entry.name == "m.ssdn" and "m.ssdn" in session_models()
    assert w.current is entry


def test_stop_job_takes_no_further_step():
    """Once Stop is set, the training job does not start another step."""
    noisy, _ = noisy_cells(64)
    req = TrainRequest("YX", {"iterations": 1000, "width": "tiny", "patch": 16, "batch": 2, "device": "cpu"})
    stop = threading.Event()
    gen = train_job(noisy, req, stop)
    seen = []
    try:
        while True:
            upd = next(gen)
            if upd.progress is not None:
                seen.append((upd.progress.step, upd.progress.done))
                if len(seen) == 3:
                    stop.set()
    except StopIteration as end:
        result = end.value
    # The stop's closing record validates step 3 again (done); no step 4 is taken.
    assert [s for s, _ in seen[:3]] == [1, 2, 3] and all(s == 3 for s, _ in seen[3:])
    assert seen[-1][1]
    assert result.stopped and result.steps == 3


def test_invalid_fields_disable_start(viewer, qtbot):
    """Bad settings disable Start and say why on the field and in the status line."""
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    w = TrainWidget(viewer)
    assert w.start_button.isEnabled()
    assert (w.patch_edit.text(), w.batch_edit.text()) == ("auto", "auto")  # the device's defaults
    w.patch_edit.setText("abc")
    assert not w.start_button.isEnabled()
    assert "patch" in w.patch_edit.toolTip() and "whole number" in w.status.text() and "auto" in w.status.text()
    assert w.advanced.isVisibleTo(w)  # the offending field is shown
    w.patch_edit.setText("16")
    assert w.start_button.isEnabled()
    w.batch_edit.setText("0")
    assert not w.start_button.isEnabled() and "batch" in w.batch_edit.toolTip().lower()
    w.batch_edit.setText(" Auto ")
    assert w.start_button.isEnabled()
    w.noise_combo.setCurrentText("gaussian")
    sigma_edit, learn = w.param_rows["sigma"][2], w.param_rows["sigma"][3]
    learn.setChecked(False)
    assert not w.start_button.isEnabled() and "learn" in sigma_edit.toolTip()
    sigma_edit.setText("0.1")
    assert w.start_button.isEnabled()
    w.subsample_edit.setText("9")
    assert not w.start_button.isEnabled() and "subsample" in w.subsample_edit.toolTip().lower()
    w.subsample_edit.setText("2")
    assert w.start_button.isEnabled()
    w.axes_edit.setText("ZYX")
    assert not w.start_button.isEnabled() and "dimensions" in w.axes_edit.toolTip()
    assert w.start() is None


def test_worker_error_becomes_message_and_widget_recovers(viewer, qtbot, monkeypatch):
    """A failure inside the worker is reported with a remedy and the widget can start again."""
    viewer.add_image(np.random.default_rng(0).random((6, 6)).astype(np.float32), name="small")
    w = TrainWidget(viewer)
    tiny(w, "5")
    w.patch_edit.setText("auto")  # a patch of 16 is refused in the field: larger than the 6 x 6 image
    from napari.utils.notifications import NotificationSeverity, notification_manager

    before = len(notification_manager.records)
    assert w.start() is not None
    wait(qtbot, w)
    new = [n for n in notification_manager.records[before:] if n.severity == NotificationSeverity.ERROR]
    # "the smallest image is 6 pixels along Y but this network needs at least 8; give larger images"
    assert len(new) == 1 and "larger images" in new[0].message
    assert "failed" in w.status.text()
    assert w.worker is None and w.start_button.isEnabled()


def test_worker_error_names_widget_fields_not_cli_options(viewer, qtbot):
    """A core remedy that names a command-line option is shown with the widget's field instead."""
    viewer.add_image(np.random.default_rng(0).random((3, 32, 32)).astype(np.float32), name="thin")
    w = TrainWidget(viewer)
    tiny(w, "5")
    w.axes_edit.setText("ZYX")
    w.dims_combo.setCurrentText("3D")
    assert w.start() is not None, w.status.text()
    wait(qtbot, w)
    # the core says "... a 3D network needs at least 4; train a 2D network on the slices instead (ndim=2, no --3d)"
    assert "3 slices" in w.status.text() and "(Network 2D)" in w.status.text(), w.status.text()
    assert "--" not in w.status.text()


def test_denoise_adds_layer_with_input_geometry(viewer, qtbot, tiny_model):
    """Denoising writes <name>_ssdn with the input's scale, translate, units and labels; a rerun updates it."""
    session_models().add(SessionModel("tiny", tiny_model))
    noisy, _ = noisy_cells_stack(n=2, size=48)
    layer = viewer.add_image(
        noisy,
        name="tomo",
        scale=(2.0, 0.5, 0.5),
        translate=(1.0, 3.0, 4.0),
        units="nm",
        axis_labels=("z", "y", "x"),
        metadata={"who": "me"},
    )
    w = DenoiseWidget(viewer)
    assert w.model_combo.currentText() == "tiny"
    assert w.axes_edit.text() == "ZYX"
    assert w.run() is not None
    wait(qtbot, w)
    out = viewer.layers["tomo_ssdn"]
    assert w.status.text().startswith("Done") and w.run_button.isEnabled()
    assert out.data.shape == noisy.shape and out.data.dtype == np.float32
    assert tuple(out.scale) == tuple(layer.scale) and tuple(out.translate) == tuple(layer.translate)
    assert tuple(map(str, out.units)) == ("nanometer",) * 3 and tuple(out.axis_labels) == ("z", "y", "x")
    assert out.metadata["who"] == "me"
    assert np.abs(out.data - noisy).mean() > 0  # something was done
    n_layers = len(viewer.layers)
    first = out.data.copy()
    assert w.run() is not None
    wait(qtbot, w)
    assert len(viewer.layers) == n_layers and viewer.layers["tomo_ssdn"] is out
    np.testing.assert_allclose(out.data, first, atol=1e-5)
    w.output_combo.setCurrentText("posterior-std")
    assert w.run() is not None
    wait(qtbot, w)
    assert (viewer.layers["tomo_ssdn_std"].data >= 0).all()


def test_denoise_keeps_missing_pixels_missing(viewer, qtbot, tiny_model):
    """A layer with a NaN hole (masked, not measured) denoises to a layer with the same hole
    and finite, displayable values around it."""
    session_models().add(SessionModel("tiny", tiny_model))
    noisy, _ = noisy_cells(48)
    noisy[5:15, 20:30] = np.nan
    viewer.add_image(noisy, name="masked")
    w = DenoiseWidget(viewer)
    assert w.run() is not None
    wait(qtbot, w)
    out = viewer.layers["masked_ssdn"]
    assert np.array_equal(np.isnan(out.data), np.isnan(noisy))
    assert np.isfinite(out.contrast_limits).all() and out.contrast_limits[1] > out.contrast_limits[0]


def test_denoise_flags_data_far_from_the_training_range(viewer, qtbot, tiny_model):
    """A layer 1000x brighter than the model's training data is denoised, with a warning
    that stays in the status line beside the result."""
    session_models().add(SessionModel("tiny", tiny_model))
    noisy, _ = noisy_cells(48)
    viewer.add_image(noisy * 1000, name="bright")
    w = DenoiseWidget(viewer)
    assert w.run() is not None
    wait(qtbot, w)
    assert "bright_ssdn" in viewer.layers
    assert w.status.text().startswith("Done") and "far from" in w.status.text(), w.status.text()
    viewer.layers.remove("bright")
    viewer.add_image(noisy, name="plain")
    w.layer_combo.setCurrentIndex(w.layer_combo.count() - 1)
    assert w.run() is not None
    wait(qtbot, w)
    assert w.status.text().startswith("Done") and "far from" not in w.status.text(), w.status.text()


def test_denoise_refuses_channel_mismatch(viewer, qtbot, tiny_model):
    """A 3-channel layer with a 1-channel model is refused with a message naming both counts."""
    session_models().add(SessionModel("gray", tiny_model))
    viewer.add_image(np.random.default_rng(0).random((32, 32, 3)).astype(np.float32), name="rgb", rgb=True)
    w = DenoiseWidget(viewer)
    assert w.axes_edit.text() == "YXC"
    assert not w.run_button.isEnabled()
    msg = w.status.text()
    assert "3 channel(s)" in msg and "trained on 1" in msg
    assert "rgb_ssdn" not in viewer.layers
    assert w.run() is None


def test_trained_model_offered_to_denoise(viewer, qtbot):
    """A model trained in the Train widget appears in an open Denoise widget's model list."""
    noisy, _ = noisy_cells(48)
    viewer.add_image(noisy, name="cells")
    d = DenoiseWidget(viewer)
    assert d.model_combo.count() == 0 and not d.run_button.isEnabled()
    t = TrainWidget(viewer)
    tiny(t, "3")
    train(qtbot, t)
    assert d.model_combo.currentText() == "run 1 (cells)"
    assert d.run_button.isEnabled()
    # A model trained next, on another layer, becomes the Denoise widget's choice.
    viewer.add_image(noisy[::-1].copy(), name="more cells")
    t.layer_combo.setCurrentIndex(
        next(i for i in range(t.layer_combo.count()) if t.layer_combo.itemText(i) == "more cells")
    )
    train(qtbot, t)
    assert d.model_combo.count() == 2
    assert d.model_combo.currentText() == "run 2 (more cells)"


def test_train_3d_network_on_a_volume_and_denoise_it(viewer, qtbot):
    """The Train widget's 3D choice trains a volume network (anisotropy from the layer's
    scale); the Denoise widget then denoises the volume and refuses a 2D image."""
    from napari_ssdn.samples import noisy_volume

    noisy, _ = noisy_volume((16, 32, 32))
    viewer.add_image(noisy, name="vol", scale=(2.0, 1.0, 1.0), axis_labels=("z", "y", "x"))
    w = TrainWidget(viewer)
    tiny(w, "3")
    assert w.axes_edit.text() == "ZYX"
    w.dims_combo.setCurrentText("3D")
    assert w.start_button.isEnabled(), w.status.text()
    train(qtbot, w)
    model = w.last_result.model
    assert model.config.ndim == 3 and model.config.flat == 1
    # The preview is the slice the viewer shows (napari opens on z = 7 of 16), on that slice only.
    assert viewer.dims.current_step[0] == 7
    preview = viewer.layers["vol_ssdn_preview"]
    assert preview.data.shape == (1, 32, 32)
    assert tuple(preview.axis_labels) == ("z", "y", "x") and tuple(preview.translate) == (14.0, 0.0, 0.0)
    assert tuple(preview.scale) == (2.0, 1.0, 1.0)
    d = DenoiseWidget(viewer)
    d.layer_combo.setCurrentIndex(next(i for i in range(d.layer_combo.count()) if d.layer_combo.itemText(i) == "vol"))
    assert d.layer_combo.layer().name == "vol"
    assert d.run() is not None
    wait(qtbot, d)
    assert viewer.layers["vol_ssdn"].data.shape == noisy.shape
    viewer.add_image(noisy[0], name="slice")
    d.layer_combo.setCurrentIndex(d.layer_combo.count() - 1)
    assert d.layer_combo.layer().name == "slice"
    assert not d.run_button.isEnabled() and "3D" in d.status.text()
    # 3D on a plain 2D layer: Start stays disabled with a message naming the axes.
    t = TrainWidget(viewer)
    t.layer_combo.setCurrentIndex(t.layer_combo.count() - 1)
    t.dims_combo.setCurrentText("3D")
    assert not t.start_button.isEnabled() and "Z axis" in t.status.text()


def test_loss_plot_gives_each_curve_its_own_scale(qtbot):
    """The weighted training loss and the unweighted validation loss differ in value by far
    more than either varies: each is drawn on its own scale, so both curves fill the plot
    height instead of one flat line (and the first validation point does not set the range)."""
    import numpy as np

    from napari_ssdn._napari.train._loss_plot import TRAIN_COLOR, VAL_COLOR, LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 200)
    for step in range(200):
        val = (22.0 if step == 0 else -3.8 - 0.2 * step / 200) if step % 20 == 0 else None
        plot.add(step, -0.30 - 0.05 * step / 200, val)
    img = plot.grab().toImage()
    rgb = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(img.width())] for y in range(img.height())])

    def rows_with(color):
        near = (np.abs(rgb - np.array(color.getRgb()[:3])) < 40).all(-1)
        return np.flatnonzero(near[:, 60:-60].any(1))  # inside the frame, away from the labels

    for color in (TRAIN_COLOR, VAL_COLOR):
        rows = rows_with(color)
        assert rows.size and rows.max() - rows.min() > 0.4 * (img.height() - 28), color.name()
