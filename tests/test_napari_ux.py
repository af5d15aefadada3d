"""The widgets as docks in a real napari window: closing, preview plane, saving results,
loss plot, status lines, device line, size, and the noise model and blind region left to
the data (run under Xvfb: xvfb-run -a pytest)."""

import time

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import (  # noqa: E402
    TIMEOUT,
    fast_previews,
    tiny,
    train,
    wait,
)

from napari_ssdn._napari._model_registry import SessionModel, session_models  # noqa: E402
from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget  # noqa: E402
from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.samples import noisy_cells, noisy_cells_stack  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


def _long_run(qtbot, viewer, name="img"):
    """A Train dock on a 2D image, training a long run that has done a few steps."""
    noisy, _ = noisy_cells(64)
    viewer.add_image(noisy, name=name)
    w = TrainWidget(viewer)
    dock = viewer.window.add_dock_widget(w, name="Train denoiser", area="right")
    tiny(w, "100000")
    assert w.start() is not None, w.status.text()
    qtbot.waitUntil(lambda: len(w.loss_plot.train) >= 3, timeout=TIMEOUT)
    return w, dock


@pytest.mark.parametrize("how", ["remove dock", "close"])
def test_closing_the_train_dock_stops_training_and_keeps_the_model(viewer, qtbot, how):
    """Closing the Train dock mid-run stops training, waits for the worker to end and
    offers the model trained so far to the Denoise widget."""
    w, dock = _long_run(qtbot, viewer)
    run = w.run
    t0 = time.perf_counter()
    if how == "remove dock":
        viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    else:
        w.close()
    assert run.ended.is_set(), "the training thread is still running"
    assert time.perf_counter() - t0 < 10
    assert run.stop.is_set() and run.result.stopped and run.result.steps < 100000
    assert "run 1 (img)" in session_models()
    assert session_models().get("run 1 (img)").model is run.result.model
    d = DenoiseWidget(viewer)
    assert d.model_combo.currentText() == "run 1 (img)" and d.run_button.isEnabled()
    n = run.result.steps
    qtbot.wait(300)  # queued updates of the ended run change nothing any more
    assert run.result.steps == n and w.worker is None


def test_preview_shows_and_follows_the_viewer_plane(viewer, qtbot, monkeypatch):
    """The preview of a stack is drawn on the plane the viewer shows (napari opens on
    (n - 1) // 2), and the next preview after the slider moves is on the new plane."""
    fast_previews(monkeypatch)
    noisy, _ = noisy_cells_stack(n=4, size=32)
    viewer.add_image(noisy, name="stack", scale=(3.0, 0.5, 0.5))
    w = TrainWidget(viewer)
    tiny(w, "100000")
    w.axes_edit.setText("SYX")
    assert viewer.dims.current_step[0] == 1  # not n // 2 = 2
    assert w.start() is not None, w.status.text()
    qtbot.waitUntil(lambda: "stack_ssdn_preview" in viewer.layers, timeout=TIMEOUT)
    preview = viewer.layers["stack_ssdn_preview"]
    assert tuple(preview.translate) == (3.0, 0.0, 0.0)  # plane 1
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: tuple(viewer.layers["stack_ssdn_preview"].translate) == (9.0, 0.0, 0.0), timeout=TIMEOUT)
    w.stop()
    wait(qtbot, w)
    assert viewer.layers["stack_ssdn_preview"].data.shape == (1, 32, 32)


def test_save_result_with_voxel_size(viewer, qtbot, tiny_model, tmp_path):
    """Save result… writes the result layer with our TIFF writer (.tif added to a name
    without extension): the file's voxel size is the layer's scale."""
    from napari_ssdn.io import read_image

    session_models().add(SessionModel("tiny", tiny_model))
    noisy, _ = noisy_cells_stack(n=2, size=32)
    viewer.add_image(noisy, name="tomo", scale=(2.0, 0.5, 0.25), units="nm", axis_labels=("z", "y", "x"))
    d = DenoiseWidget(viewer)
    assert not d.save_button.isEnabled()
    assert d.run() is not None
    wait(qtbot, d)
    assert d.save_button.isEnabled() and "Save result" in d.status.text()
    out = d.save_result(tmp_path / "tomo_ssdn")
    assert out == str(tmp_path / "tomo_ssdn.tif")
    img = read_image(out)
    layer = viewer.layers["tomo_ssdn"]
    assert img.axes == "ZYX" and img.unit in ("nm", "nanometer")
    np.testing.assert_allclose(img.scale(), tuple(layer.scale), rtol=1e-5)
    np.testing.assert_allclose(img.data, layer.data)
    out = d.save_result(tmp_path / "tomo_ssdn.mrc")  # MRC by extension, in angstrom
    assert read_image(out).voxel["X"] == pytest.approx(2.5)
    viewer.layers.remove("tomo_ssdn")
    assert not d.save_button.isEnabled()


def test_loss_plot_axes_and_caption(qtbot):
    """One labelled y-axis (the validation loss's scale, 'lower is better'), an x label and
    a caption; the validation loss is the main curve, the training loss faint behind it."""
    from napari_ssdn._napari.train._loss_plot import TRAIN_COLOR, VAL_COLOR, LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 200)
    for step in range(200):
        val = (22.0 if step == 0 else -3.8 - 0.2 * step / 200) if step % 20 == 0 else None
        plot.add(step, -0.30 - 0.05 * step / 200, val)
    assert plot.y_label == "loss (lower is better)" and plot.x_label == "step"
    assert "validation" in plot.caption and "training" in plot.caption
    axis, train = plot.ranges()
    vals = [v for _, v in plot.val[1:]]
    assert axis[0] < min(vals) < max(vals) < axis[1] < 0 and train[0] < -0.34 < -0.31 < train[1]
    img = plot.grab().toImage()
    rgb = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(img.width())] for y in range(img.height())])

    def count(color):
        return int((np.abs(rgb - np.array(color.getRgb()[:3])) < 30).all(-1).sum())

    assert count(VAL_COLOR) > 2 * count(TRAIN_COLOR) > 0
    assert sum(TRAIN_COLOR.getRgb()[:3]) > sum(VAL_COLOR.getRgb()[:3]) - 100  # pale, not a strong colour


def test_status_lines_do_not_go_stale(viewer, qtbot):
    """A finished run's step line has no ETA; after Resume step line, curve and model line
    agree; a new run clears the noise line; a failure message clears when a field changes."""
    noisy, _ = noisy_cells(48)
    viewer.add_image(noisy, name="img")
    w = TrainWidget(viewer)
    tiny(w, "4")
    train(qtbot, w)
    assert "ETA" not in w.progress_label.text() and "step 4" in w.progress_label.text()
    w.budget_edit.setText("3")
    assert w.start(resume=True) is not None
    assert "estimating" in w.noise_label.text() and "Resuming" in w.model_label.text()
    wait(qtbot, w)
    assert w.loss_plot.train[-1][0] == 7
    assert "step 7" in w.progress_label.text() and "after 7 steps" in w.model_label.text()
    w.noise_label.setText("Noise: sigma = 0.1")
    assert w.start() is not None
    assert "sigma = 0.1" not in w.noise_label.text()
    wait(qtbot, w)

    viewer.add_image(np.random.default_rng(0).random((6, 6)).astype(np.float32), name="small")
    w.layer_combo.setCurrentText("small")
    w.patch_edit.setText("auto")  # 16 is refused in the field, larger than the image: fail in the run
    assert w.start() is not None
    wait(qtbot, w)
    assert "failed" in w.status.text()
    w.per_image_combo.setCurrentText("per image")
    assert "failed" not in w.status.text() and w.status.text() == "Ready to train."


@pytest.mark.parametrize("widget_class", [TrainWidget, DenoiseWidget])
def test_device_line_in_widget_terms_with_help_link(viewer, qtbot, widget_class, monkeypatch):
    """The top line shows the device in use, word-wrapped, with a Help link to the docs;
    an unusable device is explained in the widget's words, not command-line options."""
    import torch

    from napari_ssdn._napari._header import docs_url

    # CUDA looks absent, so that asking for it is the unusable device on every machine.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    w = widget_class(viewer)
    assert w.header.device_label.wordWrap()
    assert docs_url() in w.header.help_url and w.header.help_url in w.header.help_label.text()
    assert w.header.help_label.openExternalLinks()
    qtbot.waitUntil(lambda: "CPU" in w.header.device_label.text(), timeout=TIMEOUT)
    assert "\u26a0" not in w.header.device_label.text()
    w.device_combo.setCurrentText("cuda")
    qtbot.waitUntil(lambda: "\u26a0" in w.header.device_label.text(), timeout=TIMEOUT)
    text = w.header.device_label.text()
    assert "--" not in text and "use Device 'cpu'" in text, text


def test_both_docks_fit_a_small_screen(viewer, qtbot):
    """Train and Denoise docks each need less than 350 px of height (the form scrolls),
    so both fit a 1366 x 768 screen, also with Advanced settings open."""
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    t, d = TrainWidget(viewer), DenoiseWidget(viewer)
    t.advanced_button.setChecked(True)
    docks = [
        viewer.window.add_dock_widget(t, name="Train denoiser", area="right"),
        viewer.window.add_dock_widget(d, name="Denoise", area="right"),
    ]
    viewer.window._qt_window.resize(1366, 768)
    for w in (t, d, *docks):
        assert w.minimumSizeHint().height() < 350, (w, w.minimumSizeHint())
    assert sum(dock.minimumSizeHint().height() for dock in docks) < 700


def test_auto_noise_model_and_blind_region_by_default(viewer, qtbot):
    """The noise model is "auto" by default, without parameter rows (a model's rows come back
    when it is picked); training with the defaults shows what auto chose and why, and a new
    run clears that line until its own choices arrive."""
    noisy, _ = noisy_cells(48)
    viewer.add_image(noisy, name="img")
    w = TrainWidget(viewer)
    assert w.noise_combo.itemText(0) == "auto" and w.noise_combo.currentText() == "auto"
    assert w.blind_edit.text() == "auto" and "correlation" in w.blind_edit.toolTip()
    assert not any(row.isVisibleTo(w) for _, row, _, _ in w.param_rows.values())
    w.noise_combo.setCurrentText("poisson-gaussian")
    assert w.param_rows["a"][1].isVisibleTo(w) and w.param_rows["b"][1].isVisibleTo(w)
    assert not w.param_rows["sigma"][1].isVisibleTo(w)
    w.noise_combo.setCurrentText("auto")
    assert not any(row.isVisibleTo(w) for _, row, _, _ in w.param_rows.values())
    assert not w.choices_label.isVisibleTo(w)
    tiny(w, "3")
    assert w.start_button.isEnabled(), w.status.text()
    train(qtbot, w)
    model, auto = w.last_result.model, w.last_result.info["training"]["auto"]
    text = w.choices_label.text()
    assert w.choices_label.isVisibleTo(w) and w.choices_label.wordWrap()
    assert f"Noise model: {model.config.noise} \u2014 {auto['noise_why']}" in text, text
    assert "Blind region: " in text and auto["blind_why"] in text, text
    assert "given" not in text
    assert w.start() is not None
    assert w.choices_label.text() == "" and not w.choices_label.isVisibleTo(w)
    qtbot.waitUntil(lambda: "Noise model" in w.choices_label.text(), timeout=TIMEOUT)
    w.stop()
    wait(qtbot, w)


def test_bad_blind_region_names_the_field_and_disables_start(viewer, qtbot):
    """A blind region the core would refuse marks the Blind region field, says why in the
    status line and disables Start; a valid one enables it again."""
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    w = TrainWidget(viewer)
    assert w.start_button.isEnabled()
    for bad in ("0", "1,2,3", "two"):
        w.blind_edit.setText(bad)
        assert not w.start_button.isEnabled(), bad
        assert "Blind region" in w.status.text() and repr(bad) in w.status.text(), w.status.text()
        assert "Blind region" in w.blind_edit.toolTip() and "1 to 8" in w.blind_edit.toolTip()
        assert w.advanced.isVisibleTo(w)  # the field is shown
        assert w.start() is None
    w.blind_edit.setText("1,3")
    assert w.start_button.isEnabled(), w.status.text()
    w.blind_edit.setText(" auto ")
    assert w.start_button.isEnabled(), w.status.text()


def test_given_blind_region_reaches_the_model(viewer, qtbot):
    """A blind region typed as KY,KX trains a model with that region; the choices line says so."""
    noisy, _ = noisy_cells(48)
    viewer.add_image(noisy, name="img")
    w = TrainWidget(viewer)
    tiny(w, "3")
    w.blind_edit.setText("1,3")
    train(qtbot, w)
    model = w.last_result.model
    assert model.config.region == (1, 3)
    assert w.last_result.info["training"]["auto"]["blind_region"] == [1, 3]
    assert "Blind region: 1 x 5 pixels (as set)" in w.choices_label.text(), w.choices_label.text()
    assert "1 x 5" in model.describe() or "1,3" in model.describe(), model.describe()


def test_a_sample_fills_the_noise_fields_with_its_known_level(viewer, qtbot):
    """The samples state their noise; the Train widget takes it (not learned), and a layer
    that states none puts the noise model back to auto."""
    from napari_ssdn._napari.io.sample_data import sample_cells
    from napari_ssdn.samples import DEMO_SIGMA

    data, kwargs, _ = sample_cells()[0]
    viewer.add_image(data, **kwargs)
    w = TrainWidget(viewer)
    sigma_edit, learn = w.param_rows["sigma"][2], w.param_rows["sigma"][3]
    assert w.noise_combo.currentText() == "gaussian"
    assert float(sigma_edit.text()) == pytest.approx(DEMO_SIGMA) and not learn.isChecked()
    from napari_ssdn._napari.train._validation import validate_train

    request, errors = validate_train(w.fields())
    assert not errors and request.config["noise_params"] == {"sigma": pytest.approx(DEMO_SIGMA)}

    viewer.add_image(np.zeros((32, 32), np.float32), name="plain")
    w.layer_combo.setCurrentText("plain")
    assert w.noise_combo.currentText() == "auto" and learn.isChecked() and sigma_edit.text() == ""


def test_a_given_noise_level_far_above_the_data_warns_in_the_widget(viewer, qtbot, monkeypatch):
    """sigma = 25 given for an image in 0..1 trains, with the warning shown in the widget."""
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    viewer.add_image(noisy_cells(32)[0], name="img")
    w = TrainWidget(viewer)
    tiny(w, "2")
    w.noise_combo.setCurrentText("gaussian")
    w.param_rows["sigma"][3].setChecked(False)
    w.param_rows["sigma"][2].setText("25")
    train(qtbot, w)
    text = w.form.warning_label.text()
    assert w.form.warning_label.isVisibleTo(w) and "sigma = 25" in text and "larger than the data's whole range" in text
    assert "--" not in text and "\x02" not in text
    assert any("larger than the data's whole range" in m for m in shown)


@pytest.mark.parametrize("how", ["remove dock", "close"])
def test_closing_the_denoise_dock_cancels_its_run(viewer, qtbot, tiny_model, how):
    """Closing the Denoise dock mid-run stops after the current tile and adds no layer."""
    session_models().add(SessionModel("tiny", tiny_model))
    viewer.add_image(np.random.default_rng(0).random((200, 64, 64)).astype(np.float32), name="stack")
    d = DenoiseWidget(viewer)
    dock = viewer.window.add_dock_widget(d, name="Denoise", area="right")
    d.model_combo.setCurrentText("tiny")
    d.axes_edit.setText("TYX")
    tiles = []
    worker = d.run()
    assert worker is not None, d.status.text()
    worker.yielded.connect(lambda rec: tiles.append(getattr(rec, "done", 0)))
    qtbot.waitUntil(lambda: len(tiles) >= 2, timeout=TIMEOUT)
    if how == "remove dock":
        viewer.window.remove_dock_widget(dock)
    else:
        d.close()
    qtbot.waitUntil(lambda: d.worker is None, timeout=TIMEOUT)
    assert max(tiles) < 200, "the run went on to the end"
    assert "stack_ssdn" not in viewer.layers and [lay.name for lay in viewer.layers] == ["stack"]


def test_rgb_layer_of_different_channel_noise_trains_channel_by_channel(viewer, qtbot):
    """An RGB layer whose channels carry different noise levels (fluorescence channels of one
    camera) trains channel by channel, the choices line says why, and the Denoise widget
    returns an RGB layer."""
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(3)
    clean = np.stack([clean_cells(64, seed=s) for s in (1, 2, 3)], axis=-1)
    noisy = np.stack([rng.poisson(clean[..., c] * g + 1) / g for c, g in enumerate((160.0, 40.0, 10.0))], axis=-1)
    viewer.add_image((noisy / noisy.max()).astype(np.float32), name="cells", rgb=True)
    t = TrainWidget(viewer)
    tiny(t, "3")
    train(qtbot, t)
    assert t.last_result.model.config.channels_apart
    assert (
        "Channels: trained apart as gray images \u2014 noise levels differ between channels" in t.choices_label.text()
    )
    d = DenoiseWidget(viewer)
    assert d.model_combo.currentText() == "run 1 (cells)" and d.run_button.isEnabled(), d.status.text()
    assert d.run() is not None
    wait(qtbot, d)
    assert viewer.layers["cells_ssdn"].data.shape == noisy.shape and viewer.layers["cells_ssdn"].rgb


def test_the_train_fields_tooltips_hold_the_settings_help(viewer, qtbot):
    from napari_ssdn._napari.train._train_help import TOOLTIP_FIELDS
    from napari_ssdn.core.training.fields import field_help

    w = TrainWidget(viewer)
    widgets = {**w.form.field_widgets(), **w.advanced_settings.field_widgets()}
    widgets["per_image"] = w.advanced_settings.per_image_combo
    for key, name in TOOLTIP_FIELDS.items():
        assert field_help(name).lower() in widgets[key].toolTip().lower(), key
