"""The napari manifest: valid, complete, and every module it names imports without torch."""

import subprocess
import sys
from pathlib import Path

import npe2
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifest():
    return npe2.PluginManifest.from_file(ROOT / "napari.yaml")


def test_npe2_validate_passes():
    """`npe2 validate napari-ssdn` accepts the installed manifest."""
    res = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-ssdn"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_installed_manifest_is_the_repo_one(manifest):
    """The package exposes the repository's napari.yaml (no second, drifting copy)."""
    installed = npe2.PluginManifest.from_distribution("napari-ssdn")
    assert installed.model_dump() == manifest.model_dump()


def test_contributions(manifest):
    """Widgets (also in the Layers > Filter menu), readers, writers and samples are contributed."""
    c = manifest.contributions
    assert manifest.categories == ["Image Processing", "IO"]
    widgets = {w.command for w in c.widgets}
    assert widgets == {"napari-ssdn.train_widget", "napari-ssdn.denoise_widget"}
    in_menus = {item.command for items in c.menus.values() for item in items if hasattr(item, "command")}
    assert widgets <= in_menus
    assert any(item.submenu == "napari-ssdn.filter" for item in c.menus["napari/layers/filter"])
    patterns = set(c.readers[0].filename_patterns)
    assert {"*.mrc", "*.mrcs", "*.map", "*.rec", "*.st", "*.ali", "*.tif"} <= patterns
    exts = {w.command: w.filename_extensions for w in c.writers}
    assert exts["napari-ssdn.write_mrc"][0] == ".mrc" and exts["napari-ssdn.write_tiff"][0] == ".tif"
    assert {s.key for s in c.sample_data} == {"noisy_cells", "noisy_cells_stack", "noisy_volume"}


def test_manifest_modules_import_without_torch(manifest):
    """Importing the package and every python_name module of the manifest loads no torch."""
    targets = sorted({cmd.python_name for cmd in manifest.contributions.commands})
    code = "\n".join(
        ["import importlib, sys", "import napari_ssdn, napari_ssdn.core"]
        + [f"getattr(importlib.import_module({t.split(':')[0]!r}), {t.split(':')[1]!r})" for t in targets]
        + [
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]",
            "print('TORCH' if bad else 'CLEAN')",
        ]
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("CLEAN"), res.stdout
    assert len(targets) >= 7


def test_every_command_resolves_and_every_contribution_names_a_command(manifest):
    """Each command's python_name imports to a callable, and every widget, reader, writer,
    sample and menu item refers to a command the manifest declares."""
    import importlib

    c = manifest.contributions
    ids = {cmd.id for cmd in c.commands}
    assert len(ids) == len(c.commands), "a command id is declared twice"
    for cmd in c.commands:
        module, _, name = cmd.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), cmd.python_name
    used = [w.command for w in c.widgets] + [r.command for r in c.readers] + [w.command for w in c.writers]
    used += [s.command for s in c.sample_data]
    used += [item.command for items in c.menus.values() for item in items if hasattr(item, "command")]
    assert set(used) <= ids, set(used) - ids
    assert ids <= set(used), f"commands no contribution uses: {ids - set(used)}"


def test_widget_choices_cover_the_core():
    """Every noise parameter has a tooltip and every output a layer name."""
    from napari_ssdn._napari import _options
    from napari_ssdn._napari.train._train_help import param_help
    from napari_ssdn.core import NOISE_PARAMS, OUTPUTS

    assert all(param_help(p) for ps in NOISE_PARAMS.values() for p in ps)
    assert set(_options.OUTPUT_SUFFIX) == set(OUTPUTS)
    from napari_ssdn.core import WIDTHS

    # "auto" (the core's choice for the device) first, then every preset once, smallest first.
    assert _options.WIDTHS[0] == "auto" and sorted(_options.WIDTHS[1:]) == sorted(WIDTHS)
    encoders = [WIDTHS[name][0] for name in _options.WIDTHS[1:]]
    assert encoders == sorted(set(encoders))
    assert _options.WIDTHS[1] == "tiny" and _options.WIDTHS[-1] == "paper"
