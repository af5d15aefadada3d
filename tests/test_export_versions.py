"""The bioimage.io export against the library versions installed: they are ones the ``bmz``
extra admits, and a break inside a library ends in one line naming it and its version."""

from importlib.metadata import requires, version

import pytest
from _export_helpers import make_model_file
from packaging.requirements import Requirement

from napari_ssdn.cli import main

pytest.importorskip("bioimageio.spec")


def test_installed_versions_are_the_ones_the_bmz_extra_admits():
    """pydantic 2.14 breaks bioimageio.spec 0.5.12 (which bioimageio.core 0.11 pins): the extra
    bounds it, and the environment the export tests run in must honour that bound."""
    extra = [Requirement(r) for r in requires("napari-ssdn") if 'extra == "bmz"' in r]
    bounded = {r.name: r for r in extra}
    assert "pydantic" in bounded and not bounded["pydantic"].specifier.contains("2.14.0")
    for r in extra:
        assert r.specifier.contains(version(r.name), prereleases=True), f"{r.name} {version(r.name)} is not {r}"


def test_a_library_failure_ends_in_one_line_with_its_versions(tmp_path, capsys, monkeypatch):
    """A multi-line pydantic validation error inside the description becomes one line that
    names bioimageio.spec and pydantic with their versions; nothing is written."""
    import pydantic

    from napari_ssdn.export import _descr

    def broken(*args, **kwargs):
        pydantic.TypeAdapter(int).validate_python("not a number")

    monkeypatch.setattr(_descr, "build_description", broken)
    model, _ = make_model_file(tmp_path / "m.ssdn")
    out = tmp_path / "m.zip"
    assert main(["export", str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert f"bioimageio.spec {version('bioimageio.spec')}" in line and f"pydantic {version('pydantic')}" in line
    assert "ValidationError" in line and "valid integer" in line and "pip install -U" in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.ssdn"]
