"""TIFF specifics: voxel sizes from OME, ImageJ, tifffile's JSON or resolution tags, and the
writer options that Fiji and OME readers understand (no torch, no Qt)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["to_angstrom", "read_tiff", "is_ome", "tiff_options", "write_tiff"]

_UNIT_IN_ANGSTROM = {
    "angstrom": 1.0,
    "å": 1.0,
    "a": 1.0,
    "nm": 10.0,
    "nanometer": 10.0,
    "um": 1e4,
    "µm": 1e4,
    "\\u00b5m": 1e4,
    "micron": 1e4,
    "micrometer": 1e4,
    "mm": 1e7,
    "millimeter": 1e7,
    "pm": 0.01,
    "picometer": 0.01,
    "cm": 1e8,
    "m": 1e10,
}


def to_angstrom(value: float, unit: str | None) -> float:
    """Convert a length to angstrom; unknown or missing units are taken as angstrom."""
    if unit is None:
        return float(value)
    return float(value) * _UNIT_IN_ANGSTROM.get(str(unit).strip().lower(), 1.0)


def read_tiff(path: Path) -> tuple:
    """``(data, axes, voxel, unit)`` of a TIFF: OME, ImageJ, tifffile's JSON or resolution tags."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        data = series.asarray()
        axes = series.axes.upper()
        voxel, unit = {}, None
        page = tf.pages[0]
        ij = tf.imagej_metadata
        shaped = tf.shaped_metadata[0] if tf.shaped_metadata else None
        if shaped and "voxel" in shaped:
            voxel, unit = {k: float(v) for k, v in shaped["voxel"].items()}, shaped.get("unit")
            axes = shaped.get("axes", axes).upper()
        elif tf.is_ome and tf.ome_metadata:
            voxel, unit = _ome_voxel(tf.ome_metadata)
        else:
            xr = page.tags.get("XResolution")
            yr = page.tags.get("YResolution")
            if xr is not None and yr is not None:
                x = _res(xr.value)
                y = _res(yr.value)
                if x and y:
                    voxel.update({"X": x, "Y": y})
            if ij:
                unit = ij.get("unit")
                if "spacing" in ij:
                    voxel["Z"] = float(ij["spacing"])
            elif voxel:
                ru = page.tags.get("ResolutionUnit")
                unit = {2: "inch", 3: "cm"}.get(int(ru.value) if ru is not None else 0)
                if unit == "cm":
                    voxel, unit = {k: v * 1e4 for k, v in voxel.items()}, "micrometer"
                elif unit == "inch":
                    voxel, unit = {}, None  # a print resolution, not a physical pixel size
    axes = _canonical_axes(axes, data.shape)
    if unit in ("\\u00B5m", "\\u00b5m", "µm", "um", "micron"):
        unit = "micrometer"
    voxel = {a: v for a, v in voxel.items() if a in axes and v > 0}
    return data, axes, voxel, unit


def _res(value) -> float | None:
    num, den = value if isinstance(value, tuple) else (value, 1)
    return float(den) / float(num) if num else None


def _ome_voxel(xml: str) -> tuple[dict, str | None]:
    root = ET.fromstring(xml)
    for el in root.iter():
        if el.tag.endswith("Pixels"):
            # Each axis has its own unit (default µm); all are given in X's unit.
            unit = el.get("PhysicalSizeXUnit", "µm")
            voxel = {}
            for ax in "XYZ":
                v = el.get(f"PhysicalSize{ax}")
                if v is not None:
                    voxel[ax] = to_angstrom(float(v), el.get(f"PhysicalSize{ax}Unit", "µm")) / to_angstrom(1.0, unit)
            return voxel, {"µm": "micrometer", "nm": "nanometer", "Å": "angstrom"}.get(unit, unit)
    return {}, None


def _canonical_axes(axes: str, shape) -> str:
    """Map tifffile's axes letters to ours (S/I/Q -> S, sample-per-pixel S -> C)."""
    out = []
    for i, a in enumerate(axes):
        if a == "S" and i == len(axes) - 1 and shape[i] in (3, 4):
            out.append("C")  # RGB samples per pixel
        elif a in "IQS":
            out.append("S")
        elif a in "ZYXCT":
            out.append(a)
        else:
            out.append("S")
    res = "".join(out)
    if len(set(res)) != len(res):  # duplicated letters: fall back to a generic guess
        from .core.data import guess_axes

        res = guess_axes(tuple(shape), rgb=res.endswith("C"))
    return res


_OME_UNITS = {"micrometer": "µm", "nanometer": "nm", "angstrom": "Å", "millimeter": "mm"}


def is_ome(path) -> bool:
    return Path(path).name.lower().endswith((".ome.tif", ".ome.tiff"))


def tiff_options(axes, voxel, unit, label, ome=False) -> dict:
    """Keyword arguments of tifffile.imwrite/memmap: OME-TIFF for ``*.ome.tif`` names, else
    an ImageJ hyperstack when possible."""
    # A stack of 2D images is written as frames (T) so that it does not read back as a volume.
    ij_axes = axes.replace("S", "T") if "T" not in axes else axes
    if ome and not ij_axes.endswith("C") and len(set(ij_axes)) == len(ij_axes):
        meta = {"axes": ij_axes}
        for a, v in voxel.items():
            meta[f"PhysicalSize{a}"] = v
            if unit:
                meta[f"PhysicalSize{a}Unit"] = _OME_UNITS.get(unit, unit)
        return dict(ome=True, photometric="minisblack", metadata=meta)
    # ImageJ wants its axes in TZCYX order; only write ImageJ files when no reordering is
    # needed (channels last, as in RGB-like YXC, are not ImageJ's).
    imagej = len(set(ij_axes)) == len(ij_axes) and [a for a in "TZCYX" if a in ij_axes] == list(ij_axes)
    kwargs = {}
    if "X" in voxel and "Y" in voxel:
        kwargs["resolution"] = (1.0 / voxel["X"], 1.0 / voxel["Y"])
    if imagej:
        meta = {"axes": ij_axes}
        if unit:
            meta["unit"] = {"micrometer": "micron", "angstrom": "angstrom"}.get(unit, unit)
        if "Z" in voxel:
            meta["spacing"] = voxel["Z"]
        meta["Info"] = label
        meta = {k: v for k, v in meta.items() if v is not None}
        return dict(imagej=True, metadata=meta, **kwargs)
    meta = {"axes": axes, "voxel": voxel, "unit": unit, "software": label}
    return dict(photometric="minisblack", metadata=meta, **kwargs)


def write_tiff(path, data, axes, voxel, unit, label, ome=False):
    import tifffile

    tifffile.imwrite(path, data, **tiff_options(axes, voxel, unit, label, ome))
