"""OME-Zarr images (NGFF 0.4 written, 0.4 and 0.5 read): a volume read region by region,
and an output created empty with the block grid as its chunks, then filled block by block.

One resolution level, axes ``z, y, x`` with the voxel size and its unit, so napari and
ome-zarr-py read the result (with napari-ome-zarr or ome-zarr-py: with its scale).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..core.errors import SSDNError

__all__ = ["is_zarr", "read_zarr", "open_zarr_output", "NGFF_UNITS"]

#: Units as NGFF names them (UDUNITS-2), from how TIFF and MRC files name them.
NGFF_UNITS = {
    "angstrom": "angstrom",
    "\u00c5": "angstrom",
    "a": "angstrom",
    "nm": "nanometer",
    "nanometer": "nanometer",
    "um": "micrometer",
    "\u00b5m": "micrometer",
    "\u03bcm": "micrometer",
    "micron": "micrometer",
    "micrometer": "micrometer",
    "mm": "millimeter",
    "millimeter": "millimeter",
}


def is_zarr(path) -> bool:
    """Whether ``path`` names a Zarr store (``*.zarr``, e.g. ``volume.ome.zarr``)."""
    return str(path).rstrip("/" + os.sep).lower().endswith(".zarr")


def read_zarr(path):
    """``(array, axes, voxel, unit)`` of the first (full-resolution) level of an OME-Zarr
    image; ``array`` is a lazy zarr array read region by region.

    Raises
    ------
    SSDNError
        Not a Zarr store, or one without OME multiscales metadata.
    """
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as exc:  # noqa: BLE001 - any failure means "not a readable OME-Zarr"
        raise SSDNError(
            f"cannot read {str(path)!r} as OME-Zarr ({type(exc).__name__}: {exc}); check the path"
        ) from None
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        raise SSDNError(
            f"{str(path)!r} has no OME-Zarr multiscales metadata; write it as OME-Zarr (NGFF) or convert it to MRC"
        )
    meta = multiscales[0]
    level = meta["datasets"][0]
    array = group[level["path"]]
    names = [(a["name"] if isinstance(a, dict) else a).upper() for a in meta.get("axes", "zyx"[-array.ndim :])]
    axes = "".join({"Z": "Z", "Y": "Y", "X": "X", "C": "C", "T": "T"}.get(n, "S") for n in names)
    scale = next((t["scale"] for t in level.get("coordinateTransformations", []) if t.get("type") == "scale"), None)
    voxel, unit = {}, None
    for i, (name, a) in enumerate(zip(names, meta.get("axes", []), strict=False)):
        if name in "ZYX" and scale is not None:
            voxel[name] = float(scale[i])
        if name in "ZYX" and isinstance(a, dict) and a.get("unit"):
            unit = a["unit"]
    return array, axes, voxel, unit


class open_zarr_output:
    """Context manager yielding the path of an empty float32 OME-Zarr image in a hidden
    folder beside ``path``, renamed onto ``path`` when the block succeeds and removed if it
    raises.

    Parameters
    ----------
    path : path-like
        ``*.ome.zarr`` to write.
    shape, chunks : tuple of int
        Array shape (Z, Y, X) and chunk shape: the blocks of the run, so that every block
        writes whole chunks and no two blocks write to the same one.
    voxel, unit : dict, str
        Voxel size per axis and its unit.
    label : str
        Provenance, kept in the group's attributes.
    partial : path-like, optional
        A fixed hidden folder to write in, left in place if the block raises (its whole
        blocks are kept for a later run); ``reuse`` opens it again instead of creating it.
    """

    def __init__(self, path, shape, chunks, voxel=None, unit=None, label="napari-ssdn", partial=None, reuse=False):
        self.path = Path(path)
        self.partial, self.reuse = (Path(partial) if partial is not None else None), reuse
        self.shape, self.chunks = tuple(int(n) for n in shape), tuple(int(c) for c in chunks)
        self.voxel, self.unit, self.label = dict(voxel or {}), unit, label

    def __enter__(self) -> Path:
        import zarr

        self.tmp = self.partial or self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial"
        if self.reuse and self.tmp.is_dir():
            return self.tmp
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            group = zarr.open_group(str(self.tmp), mode="w", zarr_format=2)
            group.create_array("0", shape=self.shape, chunks=self.chunks, dtype="float32", fill_value=np.nan)
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise SSDNError(
                f"cannot write {str(self.path)!r} ({exc.strerror or exc}); "
                "choose an output in a folder you can write to"
            ) from None
        unit = NGFF_UNITS.get((self.unit or "").lower())
        axes = [{"name": a, "type": "space", **({"unit": unit} if unit else {})} for a in "zyx"]
        scale = [float(self.voxel.get(a, 1.0)) for a in "ZYX"]
        group.attrs["multiscales"] = [
            {
                "version": "0.4",
                "name": self.path.name.removesuffix(".zarr").removesuffix(".ome"),
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
            }
        ]
        group.attrs["napari-ssdn"] = {"label": self.label}
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            if self.partial is None:
                shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = None
        if self.path.exists():  # a folder cannot be renamed onto another: move the old one aside first
            old = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False
