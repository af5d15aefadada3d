"""TIFF / MRC / PNG reading and writing with voxel size (napari_ssdn.io)."""

import mrcfile
import numpy as np
import pytest
import tifffile

from napari_ssdn.core.errors import SSDNError
from napari_ssdn.io import read_image, write_image


@pytest.mark.parametrize(
    "axes,shape",
    [
        ("YX", (20, 30)),
        ("ZYX", (4, 20, 30)),
        ("SYX", (3, 20, 30)),
        ("YXC", (20, 30, 3)),
        ("ZCYX", (4, 2, 20, 30)),
        ("TZYX", (2, 4, 20, 30)),
    ],
)
def test_tiff_round_trip_keeps_axes_and_voxel_size(tmp_path, axes, shape):
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    voxel = {a: v for a, v in {"Z": 0.8, "Y": 0.2, "X": 0.2}.items() if a in axes}
    path = write_image(tmp_path / "x.tif", data, axes, voxel, "micrometer")
    img = read_image(path)
    np.testing.assert_array_equal(img.data, data)
    assert img.axes in (axes, axes.replace("S", "T"))  # a stack of images reads back as ImageJ frames
    assert img.unit == "micrometer"
    for a, v in voxel.items():
        assert img.voxel[a] == pytest.approx(v, rel=1e-6)
    # Fiji reads ImageJ hyperstacks (axes in its TZCYX order); channels-last data is not one.
    with tifffile.TiffFile(path) as tf:
        assert tf.is_imagej == (axes != "YXC")


def test_imagej_tiff_from_another_program(tmp_path):
    """A Fiji-style ImageJ hyperstack: spacing, resolution and unit are read."""
    data = np.zeros((5, 16, 16), np.uint16)
    tifffile.imwrite(
        tmp_path / "ij.tif",
        data,
        imagej=True,
        resolution=(1 / 0.1, 1 / 0.1),
        metadata={"spacing": 0.5, "unit": "micron", "axes": "ZYX"},
    )
    img = read_image(tmp_path / "ij.tif")
    assert img.axes == "ZYX"
    assert img.voxel == pytest.approx({"Z": 0.5, "Y": 0.1, "X": 0.1})
    assert img.unit == "micrometer"


@pytest.mark.parametrize("dtype,mode", [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)])
def test_mrc_modes_and_voxel_size(tmp_path, dtype, mode):
    data = (np.arange(2 * 8 * 10) % 100).reshape(2, 8, 10).astype(dtype)
    path = tmp_path / "v.mrc"
    with mrcfile.new(path) as m:
        m.set_data(data)
        m.set_volume()
        m.voxel_size = (3.0, 2.0, 5.0)
        assert m.header.mode == mode
    img = read_image(path)
    assert img.axes == "ZYX" and img.unit == "angstrom"
    assert img.voxel == pytest.approx({"X": 3.0, "Y": 2.0, "Z": 5.0})
    np.testing.assert_array_equal(img.data.astype(np.float64), data.astype(np.float64))


def test_mrc_stack_versus_volume_and_write(tmp_path):
    data = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    write_image(tmp_path / "s.mrcs", data, "SYX", {"Y": 1.5, "X": 1.5}, "angstrom")
    write_image(tmp_path / "v.mrc", data, "ZYX", {"Z": 0.002, "Y": 0.001, "X": 0.001}, "micrometer")
    s, v = read_image(tmp_path / "s.mrcs"), read_image(tmp_path / "v.mrc")
    assert s.axes == "SYX" and v.axes == "ZYX"
    assert v.voxel == pytest.approx({"Z": 20.0, "Y": 10.0, "X": 10.0})  # micrometer -> angstrom


def test_broken_mrc_and_missing_files_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(SSDNError, match="bad.mrc"):
        read_image(bad)
    with pytest.raises(SSDNError, match="does not exist"):
        read_image(tmp_path / "none.tif")
    with pytest.raises(SSDNError, match="extension"):
        write_image(tmp_path / "x.png", np.zeros((4, 4)), "YX")


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(SSDNError):
        write_image(tmp_path / "x.mrc", np.zeros((2, 4, 4, 3)), "SYXC")
    assert list(tmp_path.iterdir()) == []


def test_ome_tiff_axes_with_their_own_units(tmp_path):
    """OME gives each axis a unit: a Z step of 300 nm beside X in µm reads as 0.3 µm."""
    tifffile.imwrite(
        tmp_path / "z.ome.tif",
        np.zeros((3, 16, 16), np.uint16),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.108,
            "PhysicalSizeY": 0.108,
            "PhysicalSizeZ": 300,
            "PhysicalSizeZUnit": "nm",
        },
    )
    img = read_image(tmp_path / "z.ome.tif")
    assert img.unit == "micrometer"
    assert img.voxel == pytest.approx({"Z": 0.3, "Y": 0.108, "X": 0.108})


@pytest.mark.parametrize("streamed", [False, True])
def test_ome_tiff_output_for_ome_names(tmp_path, streamed):
    """An output named *.ome.tif is an OME-TIFF with the axes, voxel size and unit."""
    from napari_ssdn.io import open_output

    data = np.random.default_rng(0).random((4, 2, 20, 30)).astype(np.float32)
    voxel = {"Z": 0.8, "Y": 0.2, "X": 0.2}
    path = tmp_path / "out.ome.tif"
    if streamed:
        with open_output(path, data.shape, "ZCYX", voxel, "micrometer") as out:
            out[...] = data
    else:
        write_image(path, data, "ZCYX", voxel, "micrometer")
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome
    img = read_image(path)
    np.testing.assert_array_equal(img.data, data)
    assert img.axes == "ZCYX" and img.unit == "micrometer" and img.voxel == pytest.approx(voxel)


def test_mrc_start_and_unset_voxel_size_are_carried_over(tmp_path):
    """A voxel size of 0 (unset) stays unset in the output, and nxstart/nystart/nzstart are kept."""
    with mrcfile.new(tmp_path / "sub.mrc") as m:
        m.set_data(np.zeros((4, 8, 8), np.float32))
        m.header.nxstart, m.header.nystart, m.header.nzstart = -48, -40, -4
    img = read_image(tmp_path / "sub.mrc")
    assert img.voxel == {} and img.unit is None and img.scale() == (1.0, 1.0, 1.0)
    out = write_image(tmp_path / "out.mrc", img.data, img.axes, img.voxel, img.unit, img.origin, start=img.start)
    with mrcfile.open(out) as m:
        assert tuple(float(v) for v in m.voxel_size.tolist()) == (0.0, 0.0, 0.0)
        assert (int(m.header.nxstart), int(m.header.nystart), int(m.header.nzstart)) == (-48, -40, -4)


@pytest.mark.parametrize("mmap", [False, True])
def test_mrc_with_permuted_axes_reads_as_zyx(tmp_path, mmap):
    """mapc/mapr/maps = 3/2/1 (columns are Z, sections X): the data comes back in Z, Y, X order."""
    zyx = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    with mrcfile.new(tmp_path / "perm.mrc") as m:
        m.set_data(np.ascontiguousarray(zyx.transpose(2, 1, 0)))  # stored as sections X, rows Y, columns Z
        m.set_volume()
        m.header.mapc, m.header.mapr, m.header.maps = 3, 2, 1
    img = read_image(tmp_path / "perm.mrc", mmap=mmap)
    assert img.axes == "ZYX"
    np.testing.assert_array_equal(np.asarray(img.data), zyx)


def test_output_that_cannot_be_written_is_a_clear_error(tmp_path):
    """A path under a file, or in a folder that cannot be created, fails with SSDNError naming it."""
    (tmp_path / "a.tif").write_bytes(b"x")
    with pytest.raises(SSDNError, match="a.tif' is a file, not a folder"):
        write_image(tmp_path / "a.tif" / "out.mrc", np.zeros((4, 4), np.float32), "YX")
    with pytest.raises(SSDNError, match="cannot write .*choose an output in a folder you can write to"):
        write_image("/proc/no_such_dir/out.tif", np.zeros((4, 4), np.float32), "YX")


def test_old_imod_tomogram_header_is_a_volume(tmp_path):
    """Space group 0 with mz = nz (old IMOD headers) is a volume; mz = 1 is a stack."""
    data = np.zeros((6, 8, 8), np.float32)
    with mrcfile.new(tmp_path / "tomo.rec") as m:
        m.set_data(data)
        m.header.ispg = 0
        m.header.mz = 6
        m.voxel_size = 10.0
    assert read_image(tmp_path / "tomo.rec").axes == "ZYX"
    assert read_image(tmp_path / "tomo.rec").scale() == (10.0, 10.0, 10.0)
    with mrcfile.new(tmp_path / "tilts.st") as m:
        m.set_data(data)
        m.set_volume()
    assert read_image(tmp_path / "tilts.st").axes == "SYX"


def test_written_files_get_normal_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result is readable by others."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = write_image(tmp_path / "x.tif", np.zeros((4, 4), np.float32), "YX")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
