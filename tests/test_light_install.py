"""The command line works with napari, Qt and magicgui out of reach (the light install).

A subprocess refuses every import of the GUI stack, then runs ``ssdn train``, ``denoise``,
``info``, ``export`` and a Dask ``denoise --workers 1`` through ``napari_ssdn.cli.main``.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_ssdn.io import read_image, write_image

GUI = ("napari", "qtpy", "PyQt6", "PyQt5", "PySide2", "PySide6", "magicgui", "superqt", "vispy", "npe2")

RUNNER = textwrap.dedent(
    """
    import sys

    GUI = {gui!r}

    class NoGui:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in GUI:
                raise ImportError(f"{{name}} is not part of the light install")

    sys.meta_path.insert(0, NoGui())
    from napari_ssdn.cli import main

    for args in {commands!r}:
        code = main(args)
        if code:
            sys.exit(f"ssdn {{args[0]}} failed with exit status {{code}}")
    print("GUI modules imported:", sorted({{m.split(".")[0] for m in sys.modules}} & set(GUI)))
    """
)


def run_without_gui(commands):
    code = RUNNER.format(gui=GUI, commands=[[str(a) for a in c] for c in commands])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_train_denoise_info_export_and_dask_without_napari_or_qt(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "noisy.tif", (rng.random((48, 48)) * 100).astype(np.float32), "YX", {"Y": 2, "X": 2}, "nm")
    model = tmp_path / "m.ssdn"
    fast = ["--width", "tiny", "--patch", "32", "--iterations", "3", "--device", "cpu", "--quiet"]
    commands = [
        ["train", tmp_path / "noisy.tif", "-o", model, *fast],
        ["denoise", tmp_path / "noisy.tif", "-m", model, "-o", tmp_path / "den.tif", "--quiet"],
        ["info", model, "--json"],
    ]
    has = {m: __import__("importlib.util").util.find_spec(m) is not None for m in ("bioimageio.spec", "distributed")}
    if has["bioimageio.spec"]:
        commands.append(["export", model, "-o", tmp_path / "m.zip", "-q"])
    if has["distributed"]:
        commands.append(
            ["denoise", tmp_path / "noisy.tif", "-m", model, "-o", f"{tmp_path / 'dask'}/", "--workers", "1", "-q"]
        )
    r = run_without_gui(commands)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "GUI modules imported: []" in r.stdout
    assert read_image(tmp_path / "den.tif").data.shape == (48, 48)
    if has["bioimageio.spec"]:
        assert (tmp_path / "m.zip").stat().st_size > 0
    if has["distributed"]:
        dask_out = read_image(tmp_path / "dask" / "noisy.tif").data
        np.testing.assert_allclose(dask_out, read_image(tmp_path / "den.tif").data, rtol=1e-5, atol=1e-5)


def test_the_blocker_does_refuse_napari():
    """The check above proves something only if the refusal really bites."""
    r = run_without_gui([])
    assert r.returncode == 0, r.stderr
    code = RUNNER.format(gui=GUI, commands=[]) + "\nimport napari\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not part of the light install" in r.stderr
    pytest.importorskip("napari")  # napari itself is present in the full test environment
