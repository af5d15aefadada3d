"""The light install trains, denoises and describes a model with no napari, Qt or magicgui.

Run by .ci/run in an environment that has only the package's own dependencies.
"""

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from napari_ssdn.io import read_image, write_image

for gui in ("napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "magicgui", "superqt"):
    if importlib.util.find_spec(gui) is not None:
        sys.exit(f"light install: {gui} is installed, so this check proves nothing")

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    rng = np.random.default_rng(0)
    write_image(tmp / "noisy.tif", (rng.random((64, 64)) * 100).astype(np.float32), "YX", {"Y": 0.5, "X": 0.5}, "nm")
    fast = ["--width", "tiny", "--patch", "32", "--iterations", "4", "--device", "cpu", "--quiet"]
    for args in (
        ["train", tmp / "noisy.tif", "-o", tmp / "m.ssdn", *fast],
        ["denoise", tmp / "noisy.tif", "-m", tmp / "m.ssdn", "-o", tmp / "den.tif", "--quiet"],
        ["info", tmp / "m.ssdn"],
    ):
        subprocess.run(["ssdn", *map(str, args)], check=True)
    out = read_image(tmp / "den.tif")
    assert out.data.shape == (64, 64) and np.isfinite(out.data).all(), out.data.shape
    assert out.voxel["X"] == 0.5, out.voxel
print("light install: ssdn train, denoise and info work without napari or Qt")
