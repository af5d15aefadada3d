"""Translation between napari layer attributes and the io/core vocabulary (axes letters,
voxel size, units). No Qt and no torch here, so readers and writers can use it."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.data import check_axes, guess_axes
from ..core.errors import SSDNError

#: Layer metadata key holding what the reader learned from the file.
META_KEY = "ssdn_io"
_LABELS = {"Z": "z", "Y": "y", "X": "x", "T": "t", "S": "sample", "C": "c", "Q": "q"}
_FROM_LABEL = {v: k for k, v in _LABELS.items()}
_FROM_LABEL.update({"s": "S", "stack": "S", "time": "T", "channel": "C", "channels": "C"})
#: Units napari uses for axes that have none.
_NO_UNIT = ("pixel", "px", "none", "dimensionless", "")


def axis_labels_for(axes: str) -> tuple[str, ...]:
    """napari axis labels for io axes letters (``"SYX"`` -> ``("sample", "y", "x")``)."""
    return tuple(_LABELS[a] for a in axes)


def axes_from_labels(labels: Sequence[str]) -> str | None:
    """Axes letters from napari axis labels, or None when the labels are napari's defaults."""
    out = []
    for lab in labels:
        a = _FROM_LABEL.get(str(lab).strip().lower())
        if a is None:
            return None
        out.append(a)
    res = "".join(out)
    return res if len(set(res)) == len(res) and "Y" in res and "X" in res else None


def layer_axes(shape: tuple[int, ...], labels: Sequence[str] | None, rgb: bool, metadata: dict | None = None) -> str:
    """Best guess of the axes of a layer's data, for the widgets' editable axes field.

    Uses, in order, the axes the reader recorded in the layer metadata, the layer's axis
    labels when they are letters, and :func:`~napari_ssdn.core.data.guess_axes`. A 3D
    layer without such hints is a stack of 2D samples (``SYX``); an RGB layer ends in ``C``.
    Returns an empty string when nothing fits (the user must type the axes).
    """
    meta = (metadata or {}).get(META_KEY) or {}
    cands = [meta.get("axes")]
    if labels is not None:
        ax = axes_from_labels(labels)
        cands.append(ax + "C" if ax is not None and rgb and "C" not in ax else ax)
    for ax in cands:
        if ax and len(ax) == len(shape):
            try:
                return check_axes(ax, shape)
            except SSDNError:
                pass
    try:
        return guess_axes(tuple(shape), rgb=rgb)
    except SSDNError:
        return ""


def unit_name(unit) -> str | None:
    """A pint unit or string as a plain unit name; None for pixels or no unit."""
    if unit is None:
        return None
    name = str(unit).strip()
    return None if name.lower() in _NO_UNIT else name


def voxel_from_layer(axes: str, scale: Sequence[float] | None, units: Sequence | None) -> tuple[dict, str | None]:
    """Voxel size per spatial axis and its unit from a layer's ``scale`` and ``units``.

    ``scale`` and ``units`` cover the layer's dimensions, which for an RGB layer lack the
    trailing ``C`` of ``axes``. The unit is the first spatial axis's (napari layers have
    one unit per axis; mixing units across spatial axes is not supported by TIFF or MRC).
    """
    dims = axes.replace("C", "") if scale is not None and len(scale) == len(axes) - axes.count("C") else axes
    voxel, unit = {}, None
    for i, a in enumerate(dims):
        if a not in "ZYX":
            continue
        if scale is not None and i < len(scale):
            voxel[a] = float(scale[i])
        if unit is None and units is not None and i < len(units):
            unit = unit_name(units[i])
    return voxel, unit


__all__ = ["META_KEY", "axis_labels_for", "axes_from_labels", "layer_axes", "unit_name", "voxel_from_layer"]
