"""The Denoise widget's Export… button and loading an exported package (real napari viewer,
under Xvfb)."""

import zipfile

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")
pytest.importorskip("bioimageio.spec")

from _export_helpers import make_model_file, noisy_image  # noqa: E402
from _napari_helpers import TIMEOUT  # noqa: E402

from napari_ssdn._napari import _export_button  # noqa: E402
from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


def test_export_button_writes_a_package_that_loads_back(viewer, qtbot, tmp_path, monkeypatch):
    model_path, _ = make_model_file(tmp_path / "m.ssdn")
    viewer.add_image(noisy_image((90, 84)), name="noisy")
    w = DenoiseWidget(viewer)
    qtbot.addWidget(w)
    w.load_model(model_path)
    target = tmp_path / "m.zip"
    monkeypatch.setattr(_export_button.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    w.export_button.click()
    assert not w.export_button.isEnabled()  # busy: the work runs in a worker thread
    qtbot.waitUntil(lambda: w.export_button.worker is None, timeout=TIMEOUT)
    assert target.is_file() and "Exported" in w.status.text()
    with zipfile.ZipFile(target) as zf:
        x = np.load(zf.open("test_input.npy"))
    assert x.shape == (1, 1, 88, 84)  # the selected layer is the package's example
    entry = w.load_model(target)  # Load… takes the package as a model
    assert entry.name == "m.zip" and w.selected_model() is entry


def test_export_failure_is_reported_and_writes_nothing(viewer, qtbot, tmp_path, monkeypatch):
    model_path, _ = make_model_file(tmp_path / "u.ssdn", steps=0)
    w = DenoiseWidget(viewer)
    qtbot.addWidget(w)
    w.load_model(model_path)
    target = tmp_path / "u.zip"
    monkeypatch.setattr(_export_button.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    w.export_button.click()
    qtbot.waitUntil(lambda: w.export_button.worker is None, timeout=TIMEOUT)
    assert "not been trained" in w.status.text() and w.export_button.isEnabled()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.ssdn"]


def test_train_widget_exports_the_model_it_trained(viewer, qtbot, tmp_path, monkeypatch):
    """The Train widget's Export… writes the model just trained, with a crop of its
    training data as the package's example."""
    from _napari_helpers import tiny, train

    from napari_ssdn._napari.train._train_widget import TrainWidget

    viewer.add_image(noisy_image((64, 64)), name="noisy")
    w = TrainWidget(viewer)
    qtbot.addWidget(w)
    tiny(w, "3")
    train(qtbot, w)
    target = tmp_path / "trained.zip"
    monkeypatch.setattr(_export_button.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    w.export_button.click()
    qtbot.waitUntil(lambda: w.export_button.worker is None, timeout=TIMEOUT)
    assert target.is_file() and "Exported" in w.status.text(), w.status.text()
    with zipfile.ZipFile(target) as zf:
        assert "rdf.yaml" in zf.namelist() and np.load(zf.open("test_input.npy")).ndim == 4
