"""The Train widget learns from two layers, the second observation of one field (the other
even/odd half, another frame), in a real napari viewer."""

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import tiny, train  # noqa: E402

from napari_ssdn._napari._model_registry import session_models  # noqa: E402
from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402
from napari_ssdn.samples import clean_cells  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


def _halves(viewer):
    rng = np.random.default_rng(0)
    clean = clean_cells(64, seed=2) * 100
    for name in ("EVN", "ODD"):
        viewer.add_image((clean + rng.normal(0, 15, clean.shape)).astype(np.float32), name=name)


def test_train_on_two_layers_measures_the_noise_from_them(viewer, qtbot):
    _halves(viewer)
    w = TrainWidget(viewer)
    w.layer_combo.setCurrentText("EVN")
    assert w.form.pair_combo.currentText() == "(none)" and w.form.pair_combo.layer() is None
    w.form.pair_combo.setCurrentText("ODD")
    tiny(w, "6")
    train(qtbot, w)
    assert w.last_result is not None and w.last_result.steps == 6
    registry = session_models()
    info = registry.get(registry.names()[-1]).info["training"]
    assert info["pair"]["measured"]["variance"] and info["pair"]["method"] in ("mean", "noise2noise")
    # 15 per half: the halves' mean has std 15 / sqrt(2).
    assert info["pair"]["params"].get("sigma") == pytest.approx(15 / np.sqrt(2), rel=0.1)
    assert "measured from the halves" in w.form.choices_label.text()


def test_the_image_itself_as_its_other_half_is_refused(viewer, qtbot):
    _halves(viewer)
    w = TrainWidget(viewer)
    w.layer_combo.setCurrentText("EVN")
    w.form.pair_combo.setCurrentText("EVN")
    tiny(w, "3")
    assert w.start() is None and w.worker is None
