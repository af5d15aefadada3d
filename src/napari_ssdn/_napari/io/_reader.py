"""Readers: MRC family (mrc, mrcs, map, rec, st, ali) and TIFF, keeping the voxel size.

``get_reader`` only sniffs (file header); the returned function reads the data through
:func:`napari_ssdn.io.read_image`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ...io import MRC_SUFFIXES, TIFF_SUFFIXES, read_image
from .._layers import META_KEY, axis_labels_for

__all__ = ["get_reader", "read_layers"]

log = logging.getLogger(__name__)


def get_reader(path):
    """Return :func:`read_layers` when ``path`` is an MRC or TIFF file this plugin can read.

    Never raises and never loads the data: MRC files are checked by reading their header
    only, TIFF files by opening their first page.
    """
    try:
        if isinstance(path, (list, tuple)):
            if not path or not all(_sniff(p) for p in path):
                return None
        elif not _sniff(path):
            return None
        return read_layers
    except Exception:  # noqa: BLE001 - napari asks every reader; a failed sniff means "not ours"
        log.debug("napari-ssdn: cannot sniff %r", path, exc_info=True)
        return None


def _sniff(path) -> bool:
    if not isinstance(path, (str, os.PathLike)):
        return False
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        return False
    if suffix in MRC_SUFFIXES:
        import mrcfile

        try:
            with mrcfile.open(p, mode="r", permissive=True, header_only=True) as mrc:
                return mrc.header is not None
        except Exception:  # noqa: BLE001
            return False
    if suffix in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(p) as tf:
                return len(tf.pages) > 0
        except Exception:  # noqa: BLE001
            return False
    return False


def read_layers(path) -> list[tuple]:
    """Read one or several files as image layers with ``scale``, ``units`` and ``axis_labels``.

    MRC voxel sizes are in angstrom; napari's scale is in (z, y, x) order. An image stack
    (MRC space group 0, or a ``.mrcs`` file) keeps a non-spatial first axis of scale 1.

    Raises
    ------
    SSDNError
        The file is broken or not an image, with what to do about it.
    """
    paths = path if isinstance(path, (list, tuple)) else [path]
    return [_read_one(p) for p in paths]


def _layer_name(path) -> str:
    """The file name without its extension; ``cells.ome.tif`` gives ``cells``."""
    stem = Path(path).stem
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def _read_one(path) -> tuple:
    img = read_image(path)
    data, axes = img.data, img.axes
    rgb = axes.endswith("C") and data.shape[-1] in (3, 4)
    dims = axes[:-1] if rgb else axes
    unit = img.unit or "pixel"
    units = tuple(unit if a in "ZYX" else "pixel" for a in dims)
    scale = tuple(s for a, s in zip(axes, img.scale(), strict=True) if not (rgb and a == "C"))
    meta = {
        META_KEY: {
            "axes": axes,
            "unit": img.unit,
            "origin": img.origin,
            "start": img.start,
            "voxel": dict(img.voxel),
            "source": str(path),
        }
    }
    kwargs = {
        "name": _layer_name(path),
        "scale": scale,
        "units": units,
        "axis_labels": axis_labels_for(dims),
        "metadata": meta,
        "rgb": rgb,
    }
    log.info("napari-ssdn read %s: shape %s, axes %s, scale %s %s", path, data.shape, axes, scale, img.unit)
    return data, kwargs, "image"
