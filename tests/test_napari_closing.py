"""Closing the widgets or the viewer while their background workers run: the workers are
stopped or awaited and nothing reaches a deleted widget (run under Xvfb: xvfb-run -a pytest)."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from napari_ssdn._napari.train._train_widget import TrainWidget  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]

# A viewer with both docks, closed at once: the Device lines are still being resolved (their
# worker imports torch), and with "measure" a noise measurement runs too.
SCRIPT = """
import sys
import numpy as np
import napari

viewer = napari.Viewer(show=True)
viewer.add_image(np.random.default_rng(0).random((512, 512)).astype(np.float32), name="img")
_, train = viewer.window.add_plugin_dock_widget("napari-ssdn", "Train denoiser")
viewer.window.add_plugin_dock_widget("napari-ssdn", "Denoise")
if sys.argv[1] == "measure":
    assert train.noise_panel.measure() is not None
viewer.close()
print("closed")
"""


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X display (xvfb-run sets DISPLAY)")
@pytest.mark.parametrize("busy", ["device lines", "measure"])
def test_closing_the_viewer_at_once_ends_the_process_cleanly(tmp_path, busy):
    """The process exits with status 0: no worker emits into signals deleted with the window
    (that aborted it with SIGABRT)."""
    env = {**os.environ, "NAPARI_CONFIG": str(tmp_path / "settings.yaml")}  # the user's settings stay untouched
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, busy], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("closed")
    assert "has been deleted" not in res.stderr


def test_removing_the_train_dock_stops_its_noise_measurement(viewer, qtbot):
    """A measurement running when the dock is removed is awaited and disconnected: nothing
    it returns is shown afterwards."""
    viewer.add_image(np.random.default_rng(0).random((512, 512)).astype(np.float32), name="img")
    w = TrainWidget(viewer)
    dock = viewer.window.add_dock_widget(w, name="Train denoiser", area="right")
    assert w.noise_panel.measure() is not None
    viewer.window.remove_dock_widget(dock)
    assert w.noise_panel.workers.running() == 0 and w.header.workers.running() == 0
    qtbot.wait(300)  # queued results of the ended measurement change nothing
    assert w.noise_plot.measured is None and "Measuring" in w.noise_panel.label.text()
