"""The Train widget's picture of the noise, in a real napari window: the measured variance
against intensity and correlation per lag, with the model's noise drawn over it after a run
(run under Xvfb: xvfb-run -a pytest)."""

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import TIMEOUT, tiny, train  # noqa: E402

from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.core.noise.curve import model_variance  # noqa: E402
from napari_ssdn.samples import DEMO_SIGMA, noisy_cells  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


def _measure(qtbot, w):
    worker = w.noise_panel.measure()
    assert worker is not None, w.noise_panel.label.text()
    qtbot.waitUntil(lambda: w.noise_panel.worker is None, timeout=TIMEOUT)
    return w.noise_plot.measured


def _colour_count(widget, color):
    img = widget.grab().toImage()
    rgb = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(img.width())] for y in range(img.height())])
    return int((np.abs(rgb - np.array(color.getRgb()[:3])) < 30).all(-1).sum())


def test_measure_noise_then_train_draws_the_model_line_over_it(viewer, qtbot):
    """Measure noise shows the sample's noise variance (sigma^2 at every brightness, data
    units) and its correlation (near 0: white noise); after a run the model's Gaussian level
    is drawn over it as a flat line in the same units."""
    from napari_ssdn._napari.train._noise_plot import MEASURED_COLOR, MODEL_COLOR

    noisy, _ = noisy_cells(256)
    viewer.add_image(noisy * 255, name="cells")  # data units: 0-255
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w, name="Train denoiser", area="right")
    assert w.noise_plot.isHidden()
    m = _measure(qtbot, w)
    assert not w.noise_plot.isHidden() and "cells" in w.noise_panel.label.text()
    assert len(m["mean"]) >= 5 and m["mean"][-1] - m["mean"][0] > 50
    np.testing.assert_allclose(np.median(m["variance"]), (DEMO_SIGMA * 255) ** 2, rtol=0.3)
    assert set(m["rho"]) == {"Y", "X"} and all(abs(v[0]) < 0.15 for v in m["rho"].values())
    assert w.noise_plot.model_line() == [] and "No model yet" in w.noise_panel.model_label.text()
    w.noise_plot.resize(420, 180)
    assert _colour_count(w.noise_plot, MEASURED_COLOR) > 0 and _colour_count(w.noise_plot, MODEL_COLOR) == 0

    tiny(w, "20")
    train(qtbot, w)
    model = w.current.model
    noise, params = model.config.noise, model.noise_params_data()
    assert w.noise_plot.noise == noise and w.noise_plot.params == pytest.approx(params)
    line = w.noise_plot.model_line()
    xs = np.array([x for x, _ in line])
    np.testing.assert_allclose([v for _, v in line], model_variance(noise, params, xs), rtol=1e-9)
    assert xs.min() == pytest.approx(min(m["mean"])) and xs.max() == pytest.approx(max(m["mean"]))
    # The model's level is that of the data it was trained on (same units as the dots).
    assert 0.5 < np.median([v for _, v in line]) / np.median(m["variance"]) < 2
    assert noise in w.noise_panel.model_label.text()
    assert _colour_count(w.noise_plot, MODEL_COLOR) > 0


def test_a_loaded_model_is_drawn_and_bad_axes_are_named(viewer, qtbot, tmp_path):
    """A model loaded from a file gets its line; a wrong Axes field is said beside the button."""
    from napari_ssdn.core import TrainConfig, Trainer, save_model

    noisy, _ = noisy_cells(64)
    trainer = Trainer(
        noisy, "YX", TrainConfig(iterations=2, width="tiny", patch=16, batch=2, device="cpu", noise="poisson-gaussian")
    )
    for _ in trainer.run():
        pass
    path = tmp_path / "pg.ssdn"
    save_model(trainer.model, path)
    viewer.add_image(noisy, name="small")
    w = TrainWidget(viewer)
    w.load_model(path)
    assert w.noise_plot.noise == "poisson-gaussian" and "a\u00b7x + b" in w.noise_panel.model_label.text()
    w.axes_edit.setText("ZYX")
    assert w.noise_panel.measure() is None
    assert "axes" in w.noise_panel.label.text().lower()
    w.axes_edit.setText("YX")
    m = _measure(qtbot, w)  # a small image: the curve, and why there is no correlation
    assert m["mean"] and m["rho"] == {} and "Correlation not measured" in w.noise_panel.label.text()
    assert len(w.noise_plot.model_line()) > 0


def test_camera_counts_fit_the_axis_and_a_negative_b_is_explained(viewer, qtbot):
    """Variances of tens of thousands (camera counts) get a short tick label held whole by
    the margin; a Poisson-Gaussian b below zero is explained under the plot (the camera's
    offset, and where the variance at zero signal is read), a positive one is not."""
    from qtpy.QtGui import QFontMetrics

    from napari_ssdn._napari.train._noise_plot import tick_text

    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="img")
    w = TrainWidget(viewer)
    plot = w.noise_plot
    means = np.linspace(2000.0, 60000.0, 8)
    plot.set_measured({"mean": list(means), "variance": list(0.8 * means - 1000.0), "rho": {}, "rho_se": {}})
    w.noise_panel.set_model("poisson-gaussian", {"a": 0.8, "b": -1000.0})
    low, high = plot.variance_labels()
    assert (low, high) == ("0", "51.7k") and tick_text(47000) == "47k" and tick_text(2.5e-5) == "2.5e-5"
    fm = QFontMetrics(plot._small_font())
    assert fm.horizontalAdvance(high) + 2 <= plot.label_margin()
    assert fm.horizontalAdvance(tick_text(1.23e-5)) + 2 <= max(30, fm.horizontalAdvance("1.2e-5") + 8)
    plot.resize(420, 180)
    plot.grab()  # paints with the wider margin
    text = w.noise_panel.model_label.text()
    assert "b = -1000" in text and "camera adds an offset (pedestal)" in text, text
    assert "variance at zero signal" in text and "at intensity 1250" in text
    w.noise_panel.set_model("poisson-gaussian", {"a": 0.8, "b": 40.0})
    assert "pedestal" not in w.noise_panel.model_label.text()
