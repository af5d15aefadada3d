"""Writers for single image layers: float32 MRC and TIFF with the layer's voxel size.

napari's own TIFF writer drops the scale; these keep it (ImageJ metadata for TIFF, the
header's voxel size in angstrom for MRC) and write atomically through
:func:`napari_ssdn.io.write_image`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...core.errors import SSDNError
from ...io import MRC_SUFFIXES, TIFF_SUFFIXES, write_image
from .._layers import META_KEY, layer_axes, voxel_from_layer

__all__ = ["write_mrc", "write_tiff", "write_layer", "with_extension"]

log = logging.getLogger(__name__)


def write_mrc(path: str, data, attributes: dict) -> list[str]:
    """Write one image layer as a float32 MRC file (2D image, stack or volume).

    A 3D layer is written as an image stack when its first axis is a stack of 2D images
    (axis label ``sample``/``t`` or a ``.mrcs`` extension), otherwise as a volume.
    """
    return _write(with_extension(path, MRC_SUFFIXES), data, attributes, mrc=True)


def write_tiff(path: str, data, attributes: dict) -> list[str]:
    """Write one image layer as a float32 TIFF with ImageJ voxel size and unit."""
    return _write(with_extension(path, TIFF_SUFFIXES), data, attributes, mrc=False)


def with_extension(path: str, suffixes: tuple[str, ...]) -> str:
    """``path``, with the writer's first extension added when it has none of ``suffixes``.

    napari's save dialog proposes the layer name without extension; picking one of our
    writers then hands us e.g. ``.../cells_ssdn``.
    """
    return str(path) if Path(str(path)).suffix.lower() in suffixes else f"{path}{suffixes[0]}"


def write_layer(path, layer) -> str:
    """Write the image ``layer`` to ``path`` with these writers (MRC by its extension, else
    TIFF, ``.tif`` added when missing), keeping its scale as voxel size; returns the path."""
    attributes = layer.as_layer_data_tuple()[1]
    mrc = Path(str(path)).suffix.lower() in MRC_SUFFIXES
    return (write_mrc if mrc else write_tiff)(str(path), layer.data, attributes)[0]


def _write(path: str, data, attributes: dict, mrc: bool) -> list[str]:
    attributes = attributes or {}
    if isinstance(data, list):  # multiscale: the full-resolution level
        data = data[0]
    data = np.asarray(data)
    rgb = bool(attributes.get("rgb", False))
    meta = (attributes.get("metadata") or {}).get(META_KEY) or {}
    axes = layer_axes(data.shape, attributes.get("axis_labels"), rgb, attributes.get("metadata"))
    if not axes:
        raise SSDNError(
            f"cannot tell the axes of a layer of shape {data.shape}; "
            "give it axis labels such as ('z', 'y', 'x') before saving"
        )
    if mrc and len(axes) == 3 and axes[0] in "ST" and Path(path).suffix.lower() != ".mrcs":
        # An unlabelled 3D layer with a physical spacing on its first axis is a volume.
        scale = attributes.get("scale")
        labelled = (
            axes[0] == "T" or (meta.get("axes") or "") == axes or "sample" in (attributes.get("axis_labels") or ())
        )
        if scale is not None and float(scale[0]) != 1.0 and not labelled:
            axes = "Z" + axes[1:]
    if mrc and Path(path).suffix.lower() == ".mrcs" and len(axes) == 3:
        axes = "S" + axes[1:]
    voxel, unit = voxel_from_layer(axes, attributes.get("scale"), attributes.get("units"))
    if unit is None and meta.get("unit"):
        unit = meta["unit"]
    if unit is None:
        # No physical unit: keep the numbers, but only when they are not napari's default 1.
        if all(v == 1.0 for v in voxel.values()):
            voxel = {}
    # The file axes use S for stacks; T (time) is a stack of 2D images too.
    file_axes = axes.replace("T", "S") if mrc else axes
    origin = meta.get("origin") if mrc else None
    start = meta.get("start") if mrc else None
    out = write_image(
        path, data, file_axes, voxel=voxel, unit=unit, origin=origin, label=_label(attributes), start=start
    )
    log.info("napari-ssdn wrote %s: axes %s, voxel %s %s", out, file_axes, voxel, unit)
    return [str(out)]


def _label(attributes: dict) -> str:
    name = attributes.get("name") or "layer"
    return f"napari-ssdn: {name}"[:80]
