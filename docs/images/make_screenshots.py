"""Regenerate the screenshots of docs/napari.md (run: xvfb-run -a python docs/images/make_screenshots.py).

Opens a real napari window at 1366 x 768 (a small laptop screen) with both docks open,
trains a small model on the 2D sample with the Train widget, denoises with the Denoise
widget and saves the window as PNG next to this script.
"""

import logging
import time
from pathlib import Path

import napari
import torch
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_ssdn._napari.denoise._denoise_widget import DenoiseWidget
from napari_ssdn._napari.train._train_widget import TrainWidget

HERE = Path(__file__).resolve().parent
logging.basicConfig(level=logging.INFO)


def wait(worker, limit=300):
    done = []
    worker.finished.connect(lambda: done.append(True))
    t0 = time.time()
    while not done and time.time() - t0 < limit:
        QApplication.processEvents()
        time.sleep(0.02)


def grab(viewer, name, width=1366):
    for _ in range(50):  # let queued worker signals and repaints land
        QApplication.processEvents()
        time.sleep(0.01)
    pix = viewer.window._qt_window.grab()
    pix = pix.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
    pix.save(str(HERE / name), "PNG")
    from PIL import Image

    Image.open(HERE / name).convert("RGB").quantize(128).save(HERE / name, optimize=True)  # keep it small
    print(name, (HERE / name).stat().st_size // 1024, "KB")


def main():
    torch.set_num_threads(1)  # the docs machine shares its 2 cores with other jobs
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1366, 768)
    viewer.open_sample("napari-ssdn", "noisy_cells")
    train = TrainWidget(viewer)
    den = DenoiseWidget(viewer)
    docks = [
        viewer.window.add_dock_widget(train, name="Train denoiser", area="right"),
        viewer.window.add_dock_widget(den, name="Denoise", area="right"),
    ]
    viewer.window._qt_window.resizeDocks(docks, [430, 300], Qt.Orientation.Vertical)
    # Small settings so the screenshots regenerate in a minute on a laptop CPU.
    train.width_combo.setCurrentText("tiny")
    train.patch_edit.setText("48")
    train.budget_edit.setText("300")
    train.device_combo.setCurrentText("cpu")
    wait(train.start())
    viewer.layers.selection.active = viewer.layers["noisy_cells"]
    grab(viewer, "train_widget.png")

    wait(den.run())
    viewer.layers.remove("noisy_cells_ssdn_preview")
    viewer.grid.enabled = True
    viewer.reset_view()
    grab(viewer, "denoise_widget.png")
    viewer.close()


if __name__ == "__main__":
    main()
