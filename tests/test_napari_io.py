"""napari readers, writers and sample data, exercised through npe2 and the manifest."""

import mrcfile
import npe2
import numpy as np
import pytest
import tifffile

from napari_ssdn._napari.io._reader import get_reader
from napari_ssdn.core.errors import SSDNError

PLUGIN = "napari-ssdn"


@pytest.fixture(scope="module", autouse=True)
def _discover():
    npe2.PluginManager.instance().discover()


def _mrc(path, data, voxel=(2.0, 3.0, 4.0), stack=False):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        if stack:
            m.set_image_stack()
        if voxel is not None:
            m.voxel_size = voxel
    return str(path)


def _read(path):
    layers = npe2.read([str(path)], plugin_name=PLUGIN, stack=False)
    assert len(layers) == 1
    data, kwargs, kind = layers[0]
    assert kind == "image"
    return np.asarray(data), kwargs


def _write(path, data, **attrs):
    from napari.layers import Image

    out = npe2.write(str(path), [Image(data, **attrs)], plugin_name=PLUGIN)
    assert out == [str(path)]
    return out[0]


@pytest.mark.parametrize(
    "mode,dtype",
    [(0, np.int8), (1, np.int16), (2, np.float32), (6, np.uint16), (12, np.float16)],
)
def test_mrc_modes_read_with_values_and_scale(tmp_path, mode, dtype):
    """MRC modes 0, 1, 2, 6 and 12 read with their values and a (z, y, x) scale in angstrom."""
    data = (np.arange(4 * 6 * 5) % 50).reshape(4, 6, 5).astype(dtype)
    path = _mrc(tmp_path / "vol.mrc", data, voxel=(2.0, 3.0, 4.0))
    with mrcfile.open(path, header_only=True) as m:
        assert int(m.header.mode) == mode
    got, kw = _read(path)
    np.testing.assert_array_equal(got.astype(np.float64), data.astype(np.float64))
    assert got.dtype == (np.float32 if mode == 12 else dtype)
    assert tuple(kw["scale"]) == (4.0, 3.0, 2.0)
    assert tuple(str(u) for u in kw["units"]) == ("angstrom",) * 3
    assert tuple(kw["axis_labels"]) == ("z", "y", "x")


def test_mrc_stack_keeps_non_spatial_first_axis(tmp_path):
    """An image stack (ispg 0 or .mrcs) has scale 1 and a 'sample' label on its first axis."""
    data = np.random.default_rng(0).random((3, 8, 9), dtype=np.float32)
    for name, flag in (("stack.mrc", True), ("parts.mrcs", False)):
        got, kw = _read(_mrc(tmp_path / name, data, voxel=(5.0, 5.0, 5.0), stack=flag))
        assert got.shape == (3, 8, 9)
        assert tuple(kw["scale"]) == (1.0, 5.0, 5.0)
        assert kw["axis_labels"][0] == "sample"
        assert str(kw["units"][0]) == "pixel"


def test_mrc_2d_and_unset_voxel(tmp_path):
    """A 2D MRC reads as YX; a voxel size of 0 (unset) gives scale 1 in pixels, and the
    layer written back to MRC keeps it unset rather than claiming 1 angstrom."""
    got, kw = _read(_mrc(tmp_path / "img.mrc", np.ones((7, 9), np.float32), voxel=(0.0, 0.0, 0.0)))
    assert got.shape == (7, 9)
    assert tuple(kw["scale"]) == (1.0, 1.0)
    assert {str(u) for u in kw["units"]} == {"pixel"}
    out = _write(tmp_path / "back.mrc", got, **kw)
    with mrcfile.open(out) as m:
        assert float(m.voxel_size.x) == 0.0


def test_ome_tiff_layer_is_named_without_ome(tmp_path):
    tifffile.imwrite(tmp_path / "cells.ome.tif", np.zeros((8, 8), np.uint16), ome=True)
    _, kw = _read(tmp_path / "cells.ome.tif")
    assert kw["name"] == "cells"


def test_get_reader_sniffs_without_loading(tmp_path):
    """get_reader never raises, claims only readable MRC/TIFF headers, and does not read the data."""
    path = _mrc(tmp_path / "big.mrc", np.zeros((4, 64, 64), np.float32))
    with open(path, "r+b") as f:  # keep the header, cut the data: only a data read would notice
        f.truncate(1024 + 100)
    reader = get_reader(path)
    assert callable(reader)
    with pytest.raises(SSDNError, match="big.mrc"):
        reader(path)
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"not an mrc file at all")
    assert get_reader(str(junk)) is None
    (tmp_path / "notes.txt").write_text("hello")
    for p in (str(tmp_path / "notes.txt"), str(tmp_path / "missing.mrc"), str(tmp_path), None, 3):
        assert get_reader(p) is None


def test_truncated_mrc_reports_clear_error(tmp_path):
    """A broken MRC file fails with an error that names the file and says what to check."""
    path = _mrc(tmp_path / "cut.rec", np.zeros((4, 32, 32), np.float32))
    with open(path, "r+b") as f:
        f.truncate(1024 + 10)
    with pytest.raises(SSDNError) as info:
        get_reader(path)(path)
    assert "cut.rec" in str(info.value) and "complete" in str(info.value)


def test_tiff_roundtrip_keeps_voxel_size(tmp_path):
    """The TIFF writer stores scale and unit (ImageJ); the reader gives them back."""
    data = np.random.default_rng(1).random((5, 12, 10)).astype(np.float32)
    out = _write(tmp_path / "v.tif", data, scale=(2.0, 0.25, 0.25), units="micrometer", axis_labels=("z", "y", "x"))
    with tifffile.TiffFile(out) as tf:
        assert tf.imagej_metadata["spacing"] == pytest.approx(2.0)
        assert tf.series[0].asarray().dtype == np.float32
    got, kw = _read(out)
    np.testing.assert_allclose(got, data)
    np.testing.assert_allclose(kw["scale"], (2.0, 0.25, 0.25), rtol=1e-5)
    assert str(kw["units"][-1]) == "micrometer"


def test_tiff_stack_stays_a_stack(tmp_path):
    """A stack of 2D images written as TIFF reads back as a stack, not a volume."""
    data = np.zeros((4, 8, 8), np.float32)
    out = _write(tmp_path / "s.tiff", data, scale=(1.0, 0.5, 0.5), units="micrometer", axis_labels=("t", "y", "x"))
    got, kw = _read(out)
    assert kw["axis_labels"][0] in ("t", "sample")
    assert kw["scale"][0] == 1.0
    np.testing.assert_allclose(kw["scale"][1:], (0.5, 0.5))


def test_mrc_writer_converts_units_to_angstrom(tmp_path):
    """A layer in nanometres is written as float32 MRC with its voxel size in angstrom."""
    data = np.arange(3 * 4 * 5, dtype=np.float64).reshape(3, 4, 5)
    out = _write(tmp_path / "v.mrc", data, scale=(2.0, 1.5, 1.0), units="nm", axis_labels=("z", "y", "x"))
    with mrcfile.open(out) as m:
        assert m.data.dtype == np.float32
        assert (float(m.voxel_size.x), float(m.voxel_size.y), float(m.voxel_size.z)) == pytest.approx(
            (10.0, 15.0, 20.0)
        )
        assert int(m.header.ispg) != 0
    got, kw = _read(out)
    np.testing.assert_allclose(kw["scale"], (20.0, 15.0, 10.0))
    np.testing.assert_array_equal(got, data.astype(np.float32))


def test_mrc_roundtrip_stack_and_origin(tmp_path):
    """MRC -> layer -> MRC keeps stack-ness, voxel size, origin and start index."""
    src = _mrc(tmp_path / "in.mrcs", np.ones((2, 6, 6), np.float32), voxel=(7.0, 7.0, 7.0))
    with mrcfile.open(src, mode="r+") as m:
        m.header.origin = (10.0, 20.0, 30.0)
        m.header.nxstart, m.header.nystart = -3, -2
    data, kw = _read(src)
    out = _write(tmp_path / "out.mrc", data, **kw)
    with mrcfile.open(out) as m:
        assert int(m.header.ispg) == 0  # still an image stack
        assert float(m.voxel_size.x) == pytest.approx(7.0)
        assert tuple(float(v) for v in (m.header.origin.x, m.header.origin.y, m.header.origin.z)) == (10.0, 20.0, 30.0)
        assert (int(m.header.nxstart), int(m.header.nystart)) == (-3, -2)


def test_mrc_writer_refuses_rgb(tmp_path):
    """Colour layers cannot go to MRC; the error says to write a TIFF."""
    from napari.layers import Image

    layer = Image(np.zeros((8, 8, 3), np.float32), rgb=True)
    with pytest.raises(Exception, match="tif"):
        npe2.write(str(tmp_path / "c.mrc"), [layer], plugin_name=PLUGIN)


def test_writer_is_atomic(tmp_path, monkeypatch):
    """A failing write leaves no partial file behind."""
    import napari_ssdn.io as io

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io, "_write_tiff", boom)
    with pytest.raises(Exception, match="disk full"):
        _write(tmp_path / "x.tif", np.zeros((4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "key,shape", [("noisy_cells", (256, 256)), ("noisy_cells_stack", (8, 128, 128)), ("noisy_volume", (48, 128, 128))]
)
def test_sample_data(key, shape):
    """Every sample opens through the manifest with its known noise level."""
    pm = npe2.PluginManager.instance()
    contrib = next(s for s in pm.get_manifest(PLUGIN).contributions.sample_data if s.key == key)
    data, kwargs, kind = contrib.open()[0]
    assert data.shape == shape and kind == "image"
    assert kwargs["metadata"]["sigma"] > 0


@pytest.mark.parametrize("command,ext", [("napari-ssdn.write_tiff", ".tif"), ("napari-ssdn.write_mrc", ".mrc")])
def test_save_dialog_name_without_extension(tmp_path, command, ext):
    """napari's save dialog proposes the layer name without extension; with our writer
    picked, the file gets the writer's extension and keeps the voxel size."""
    from napari.components import ViewerModel

    from napari_ssdn.io import read_image

    viewer = ViewerModel()
    viewer.add_image(
        np.zeros((3, 8, 8), np.float32),
        name="cells_ssdn",
        scale=(2.0, 0.5, 0.5),
        units="nm",
        axis_labels=("z", "y", "x"),
    )
    writer = next(
        w for w in npe2.PluginManager.instance().get_manifest(PLUGIN).contributions.writers if w.command == command
    )
    saved = viewer.layers.save(str(tmp_path / "cells_ssdn"), _writer=writer)
    assert saved == [str(tmp_path / f"cells_ssdn{ext}")]
    img = read_image(saved[0])
    factor = 10.0 if ext == ".mrc" else 1.0  # MRC stores angstrom
    np.testing.assert_allclose(img.scale(), (2.0 * factor, 0.5 * factor, 0.5 * factor), rtol=1e-5)
