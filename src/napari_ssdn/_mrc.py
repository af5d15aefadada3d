"""MRC specifics: reading sections in (Z, Y, X) order with the voxel size, origin and start
index, and writing them back, whole or through a memory map (no torch, no Qt)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ._tiff import to_angstrom
from .core.errors import SSDNError

__all__ = ["read_mrc", "zyx_order", "set_mrc_geometry", "write_mrc", "finish_mrc"]

# The reader's name: permissive-reading notes keep appearing under napari_ssdn.io.
log = logging.getLogger(__package__ + ".io")


def read_mrc(path: Path, mmap: bool) -> tuple:
    """Data (Z, Y, X order), axes, voxel size, unit, origin and start index of an MRC file;
    with ``mmap`` the data stay a memory map."""
    import mrcfile

    opener = mrcfile.mmap if mmap else mrcfile.open
    with warnings.catch_warnings(record=True) as caught, opener(path, mode="r", permissive=True) as mrc:
        warnings.simplefilter("always")
        if mrc.data is None:
            raise SSDNError(f"{str(path)!r} is not a valid MRC file (no data could be read); check that it is complete")
        data = mrc.data if mmap else np.array(mrc.data)
        data = zyx_order(data, (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)))
        if data.dtype == np.float16:
            data = data.astype(np.float32)
        vs = mrc.voxel_size
        voxel = {"X": float(vs.x), "Y": float(vs.y), "Z": float(vs.z)}
        origin = (float(mrc.header.origin.x), float(mrc.header.origin.y), float(mrc.header.origin.z))
        start = (int(mrc.header.nxstart), int(mrc.header.nystart), int(mrc.header.nzstart))
        # Stack or volume: .mrcs/.st/.ali are stacks by convention; otherwise MRC2014 marks a
        # stack with space group 0 and mz = 1, while old IMOD tomograms have space group 0
        # with mz = nz and are volumes.
        suffix = path.suffix.lower()
        stack = data.ndim == 3 and (
            suffix in (".mrcs", ".st", ".ali") or (int(mrc.header.ispg) == 0 and int(mrc.header.mz) <= 1)
        )
    for w in caught:  # permissive reading of old or odd headers: worth a log line, not a failure
        log.debug("%s: %s", path, w.message)
    if data.ndim == 2:
        axes = "YX"
    elif data.ndim == 3:
        axes = "SYX" if stack else "ZYX"
    else:
        axes = "TZYX"[-data.ndim :]
    # A voxel size of 0 means unset: left out (scales fall back to 1), so that an output
    # does not claim a pixel size the input never had.
    voxel = {a: v for a, v in voxel.items() if a in axes and v > 0}
    return data, axes, voxel, "angstrom" if voxel else None, origin, start


def zyx_order(data: np.ndarray, maps: tuple[int, int, int]) -> np.ndarray:
    """MRC data in (Z, Y, X) order. The file stores sections, rows and columns, and
    mapc/mapr/maps say which of X (1), Y (2), Z (3) each is; nearly every file has 1, 2, 3."""
    if data.ndim != 3 or maps == (1, 2, 3) or sorted(maps) != [1, 2, 3]:
        return data
    axis_of = {maps[2]: 0, maps[1]: 1, maps[0]: 2}  # data axis 0 holds sections, 1 rows, 2 columns
    return data.transpose(axis_of[3], axis_of[2], axis_of[1])


def set_mrc_geometry(mrc, voxel, unit, origin, start) -> None:
    """Voxel size (only where known: 0 means unset in MRC), origin and start index."""
    if voxel:
        vx = to_angstrom(voxel.get("X", 1.0), unit)
        vy = to_angstrom(voxel.get("Y", vx), unit)
        vz = to_angstrom(voxel.get("Z", 1.0), unit) if "Z" in voxel else 1.0
        mrc.voxel_size = (vx, vy, vz)
    if origin is not None:
        mrc.header.origin = tuple(origin)
    if start is not None:
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = (int(v) for v in start)


def write_mrc(path, data, axes, voxel, unit, origin, label, start=None):
    """Write ``data`` as a 2D image, stack or volume with its geometry and a label."""
    import mrcfile

    if "C" in axes or data.ndim > 3:
        raise SSDNError(f"MRC holds 2D images, stacks and volumes, not data with axes {axes!r}; write a .tif instead")
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if data.ndim == 3:
            if axes[0] == "Z":
                mrc.set_volume()
            else:
                mrc.set_image_stack()
        set_mrc_geometry(mrc, voxel, unit, origin, start)
        mrc.update_header_stats()
        mrc.add_label(label[:80])


def finish_mrc(mrc, axes, voxel, unit, origin, label, start=None) -> None:
    """Complete the header of an MRC file written through a memory map: stack or volume,
    geometry, statistics and a label."""
    data = mrc.data
    if data.ndim == 3:
        if axes[0] == "Z":
            mrc.set_volume()
        else:
            mrc.set_image_stack()
    set_mrc_geometry(mrc, voxel, unit, origin, start)
    # Statistics slab by slab: update_header_stats would hold full-size temporaries.
    lo, hi, total, squares = np.inf, -np.inf, 0.0, 0.0
    for plane in data.reshape((-1,) + data.shape[-2:]):
        p = plane.astype(np.float64)
        lo, hi = min(lo, float(p.min())), max(hi, float(p.max()))
        total += float(p.sum())
        squares += float((p * p).sum())
    n = data.size
    mean = total / n
    mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = lo, hi, mean
    mrc.header.rms = float(np.sqrt(max(squares / n - mean * mean, 0.0)))
    mrc.add_label(label[:80])
    mrc.flush()
