"""Denoising several layers or a folder of files from the Denoise widget, in a real napari
window: one progress bar, a file that fails reported by name while the others finish,
voxel sizes kept, inputs never overwritten, Cancel (run under Xvfb: xvfb-run -a pytest)."""

import hashlib
import threading

import numpy as np
import pytest

pytest.importorskip("qtpy")
pytest.importorskip("pytestqt")

from _napari_helpers import TIMEOUT  # noqa: E402

from napari_ssdn._napari._model_registry import SessionModel, session_models  # noqa: E402
from napari_ssdn._napari.denoise._batch_jobs import BatchProgress, FileItem, ItemDone, batch_denoise_job  # noqa: E402
from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget  # noqa: E402
from napari_ssdn.io import read_image, write_image  # noqa: E402
from napari_ssdn.samples import noisy_cells, noisy_cells_stack  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_registry", "one_torch_thread")]


@pytest.fixture
def bars(monkeypatch):
    """Every napari progress bar the widgets open, with the largest position it reached."""
    import napari.utils

    opened = []

    class Bar(napari.utils.progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.most = 0
            opened.append(self)

        def update(self, n=1):
            super().update(n)
            self.most = max(self.most, self.n)

    monkeypatch.setattr(napari.utils, "progress", Bar)
    return opened


def _wait(qtbot, w):
    qtbot.waitUntil(lambda: w.batch.worker is None, timeout=TIMEOUT)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_denoise_several_layers_with_one_progress_bar(viewer, qtbot, tiny_model, bars):
    """The selected layers are denoised one after the other into <name>_ssdn with their
    geometry; a layer the model cannot take (3 channels) is named at the end and the
    others are done; one progress bar runs over all of them."""
    session_models().add(SessionModel("tiny", tiny_model))
    a, _ = noisy_cells(48)
    stack, _ = noisy_cells_stack(n=2, size=48)
    viewer.add_image(a, name="a", scale=(0.5, 0.5), units="um")
    viewer.add_image(stack, name="b", scale=(2.0, 0.5, 0.5), axis_labels=("z", "y", "x"))
    viewer.add_image((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8), name="rgb", rgb=True)
    viewer.add_image(a, name="not chosen")
    w = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(w, name="Denoise", area="right")
    rows = [(w.layer_list.item(i, 0).text(), w.layer_list.item(i, 1).text()) for i in range(w.layer_list.rowCount())]
    assert rows == [("a", "YX"), ("b", "ZYX"), ("rgb", "YXC"), ("not chosen", "YX")]
    w.batch.select_layers(["a", "b", "rgb"])
    assert w.denoise_layers() is not None
    assert not w.run_button.isEnabled() and w.cancel_button.isEnabled()
    _wait(qtbot, w)
    assert "a_ssdn" in viewer.layers and "b_ssdn" in viewer.layers and "not chosen_ssdn" not in viewer.layers
    assert "rgb_ssdn" not in viewer.layers
    assert viewer.layers["b_ssdn"].data.shape == stack.shape and tuple(viewer.layers["b_ssdn"].scale) == (2.0, 0.5, 0.5)
    assert tuple(viewer.layers["a_ssdn"].scale) == (0.5, 0.5)
    assert viewer.layers["a_ssdn"].metadata["ssdn"] == {"output": "posterior-mean", "model": "tiny"}
    s = w.batch.summary
    assert s.done == ["a", "b"] and [n for n, _ in s.failed] == ["rgb"] and not s.cancelled
    assert (
        "2 of 3 layers" in w.batch.status.text()
        and "'rgb'" in w.batch.status.text()
        and "channel" in w.batch.status.text()
    )
    batch_bars = [b for b in bars if "3 layers" in b.desc]
    assert len(batch_bars) == 1 and batch_bars[0].total == 300 and batch_bars[0].most >= 200
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()
    # "All" selects every image layer.
    w.batch.all_button.click()
    assert set(w.batch.selected_layers()) == {lay.name for lay in viewer.layers}


def test_denoise_folder_keeps_voxel_size_reports_bad_files_and_never_overwrites(
    viewer, qtbot, tiny_model, tmp_path, bars
):
    """Every TIFF and MRC file of the folder is denoised into the output folder under its
    own name with its voxel size; an unreadable file is named at the end while the others
    finish; the inputs are unchanged; the input folder cannot be the output folder."""
    session_models().add(SessionModel("tiny", tiny_model))
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    a, _ = noisy_cells(48)
    stack, _ = noisy_cells_stack(n=2, size=48)
    write_image(src / "a.tif", a, "YX", {"Y": 0.5, "X": 0.25}, "um")
    write_image(src / "vol.mrc", stack, "ZYX", {"Z": 4.0, "Y": 2.0, "X": 2.0}, "angstrom")
    (src / "broken.tif").write_bytes(b"not a tiff at all")
    (src / "notes.txt").write_text("not an image")
    before = {p.name: _digest(p) for p in src.iterdir()}
    w = DenoiseWidget(viewer)
    assert w.denoise_folder(src, src) is None
    assert "replace the inputs" in w.batch.status.text()
    assert w.denoise_folder(src, dst) is not None
    _wait(qtbot, w)
    assert sorted(p.name for p in dst.iterdir()) == ["a.tif", "vol.mrc"]  # no temporary files left
    img = read_image(dst / "a.tif")
    assert (
        img.data.dtype == np.float32 and img.data.shape == a.shape and img.unit in ("um", "µm", "micron", "micrometer")
    )
    assert img.voxel["Y"] == pytest.approx(0.5) and img.voxel["X"] == pytest.approx(0.25)
    vol = read_image(dst / "vol.mrc")
    assert (
        vol.data.shape == stack.shape and vol.voxel["Z"] == pytest.approx(4.0) and vol.voxel["X"] == pytest.approx(2.0)
    )
    assert np.abs(img.data - a).mean() > 0
    s = w.batch.summary
    assert sorted(s.done) == ["a.tif", "vol.mrc"] and [n for n, _ in s.failed] == ["broken.tif"]
    text = w.batch.status.text()
    assert "2 of 3 files" in text and "'broken.tif'" in text and str(dst) in text
    assert {p.name: _digest(p) for p in src.iterdir()} == before
    assert len([b for b in bars if "3 files" in b.desc]) == 1


def test_cancel_keeps_finished_files_and_leaves_no_partial_output(viewer, qtbot, tiny_model, tmp_path):
    """Cancel stops after the current tile: the files finished stay, the one in progress
    is not written (nor its temporary file), the rest are not started."""
    session_models().add(SessionModel("tiny", tiny_model))
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(4):
        write_image(src / f"img{i}.tif", noisy_cells(48, seed=i)[0], "YX")
    w = DenoiseWidget(viewer)
    assert w.denoise_folder(src, dst) is not None
    w.batch.cancel()
    _wait(qtbot, w)
    s = w.batch.summary
    assert s.cancelled and len(s.done) < 4 and "Cancelled" in w.batch.status.text()
    written = sorted(p.name for p in dst.iterdir()) if dst.exists() else []
    assert written == sorted(s.done)


def test_batch_job_cancel_mid_file_removes_its_output(tiny_model, tmp_path):
    """The job itself: a stop after a tile of the second file keeps the first file, removes
    the second's unfinished output and never starts the third."""
    src = tmp_path / "in"
    src.mkdir()
    items = []
    for i in range(3):
        write_image(src / f"img{i}.tif", noisy_cells(48, seed=i)[0], "YX")
        items.append(FileItem(src / f"img{i}.tif", tmp_path / "out" / f"img{i}.tif"))
    stop = threading.Event()
    gen = batch_denoise_job(tiny_model, items, "posterior-mean", "cpu", stop)
    seen = []
    try:
        while True:
            rec = next(gen)
            seen.append(rec)
            if isinstance(rec, BatchProgress) and rec.index == 1:
                stop.set()
    except StopIteration as end:
        summary = end.value
    assert summary.cancelled and summary.done == ["img0.tif"] and not summary.failed
    assert [r.name for r in seen if isinstance(r, ItemDone)] == ["img0.tif"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.tif"]


def test_each_layer_is_denoised_with_the_axes_of_its_row(viewer, qtbot, tiny_model, bars):
    """Axes typed in a layer's row are the ones it is denoised with: axes that do not fit
    it fail that layer alone, by name, and the others follow their own rows."""
    session_models().add(SessionModel("tiny", tiny_model))
    stack, _ = noisy_cells_stack(n=2, size=48)
    viewer.add_image(stack, name="frames")
    viewer.add_image(stack, name="wrong")
    w = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(w, name="Denoise", area="right")
    w.batch.set_layer_axes("wrong", "YX")  # two letters for three dimensions
    w.batch.set_layer_axes("frames", "tyx")
    w.batch.refresh()  # typed axes survive a refresh of the list
    assert w.layer_list.item(1, 1).text() == "YX" and w.layer_list.item(0, 1).text() == "TYX"
    w.batch.select_layers(["frames", "wrong"])
    assert w.denoise_layers() is not None
    _wait(qtbot, w)
    s = w.batch.summary
    assert s.done == ["frames"] and [n for n, _ in s.failed] == ["wrong"]
    assert "Axes 'YX' has 2 letters" in w.batch.status.text(), w.batch.status.text()
    assert viewer.layers["frames_ssdn"].data.shape == stack.shape
