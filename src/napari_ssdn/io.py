"""Reading and writing TIFF, MRC and PNG/JPEG images with their voxel size (no torch, no Qt).

Voxel sizes are kept per spatial axis (``{"Z": 1.0, "Y": 0.5, "X": 0.5}``) with a unit.
MRC stores angstrom; TIFF stores ImageJ metadata (``spacing``, ``unit``, resolution tags)
so Fiji reads them too, or tifffile's JSON description when the axes do not fit ImageJ.
"""

from __future__ import annotations


import logging
import os
import sys
import tempfile
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.errors import SSDNError

log = logging.getLogger(__name__)

__all__ = [
    "check_output_suffix",
    "ImageData",
    "read_image",
    "write_image",
    "MRC_SUFFIXES",
    "TIFF_SUFFIXES",
    "PIL_SUFFIXES",
    "to_angstrom",
    "atomic_path",
]

MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".rec", ".st", ".ali")
TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
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


@dataclass
class ImageData:
    """An image with its axes and voxel size.

    Attributes
    ----------
    data : ndarray
    axes : str
        One letter per dimension: Y, X, C (channels), Z (volume), S (stack of 2D images), T.
    voxel : dict
        Spacing of the spatial axes present (``Z``, ``Y``, ``X``) in ``unit``.
    unit : str or None
        ``angstrom`` for MRC, the file's unit for TIFF, None when unknown.
    origin : tuple or None
        MRC origin (x, y, z) in angstrom, carried over to MRC outputs.
    start : tuple or None
        MRC index of the first voxel (nxstart, nystart, nzstart), carried over to MRC outputs.
    """

    data: np.ndarray
    axes: str
    voxel: dict = field(default_factory=dict)
    unit: str | None = None
    origin: tuple | None = None
    start: tuple | None = None

    def scale(self) -> tuple[float, ...]:
        """napari ``scale``: voxel size per axis, 1 for non-spatial axes."""
        return tuple(float(self.voxel.get(a, 1.0)) if a in "ZYX" else 1.0 for a in self.axes)


def to_angstrom(value: float, unit: str | None) -> float:
    """Convert a length to angstrom; unknown or missing units are taken as angstrom."""
    if unit is None:
        return float(value)
    return float(value) * _UNIT_IN_ANGSTROM.get(str(unit).strip().lower(), 1.0)


# --- reading ------------------------------------------------------------------------------
def read_image(path: str | os.PathLike, mmap: bool = False) -> ImageData:
    """Read a TIFF, MRC, PNG or JPEG file.

    Parameters
    ----------
    path : path-like
    mmap : bool
        Memory-map MRC data instead of loading it (large tomograms).

    Raises
    ------
    SSDNError
        Missing, unreadable or unsupported file, with what to do about it.
    """
    path = Path(path)
    if not path.exists():
        raise SSDNError(f"input file {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise SSDNError(f"input {str(path)!r} is a folder; pass image files (e.g. {path}/*.tif)")
    suffix = path.suffix.lower()
    try:
        if suffix in MRC_SUFFIXES:
            img = _read_mrc(path, mmap)
        elif suffix in TIFF_SUFFIXES:
            img = _read_tiff(path)
        elif suffix in PIL_SUFFIXES:
            img = _read_pil(path)
        else:
            raise SSDNError(
                f"input file {str(path)!r} has an unsupported extension {suffix!r}; use TIFF, MRC ({', '.join(MRC_SUFFIXES)}), PNG or JPEG"
            )
    except SSDNError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not a readable image"
        raise SSDNError(f"cannot read {str(path)!r} as an image ({type(exc).__name__}: {exc}); check that the file is complete") from None
    if img.data.size == 0:
        raise SSDNError(f"input file {str(path)!r} holds an empty image")
    if not np.issubdtype(img.data.dtype, np.number) or np.issubdtype(img.data.dtype, np.complexfloating):
        raise SSDNError(f"input file {str(path)!r} holds {img.data.dtype} data; only real-valued images can be denoised")
    return img


def _read_mrc(path: Path, mmap: bool) -> ImageData:
    import mrcfile

    opener = mrcfile.mmap if mmap else mrcfile.open
    with warnings.catch_warnings(record=True) as caught, opener(path, mode="r", permissive=True) as mrc:
        warnings.simplefilter("always")
        if mrc.data is None:
            raise SSDNError(f"{str(path)!r} is not a valid MRC file (no data could be read); check that it is complete")
        data = mrc.data if mmap else np.array(mrc.data)
        data = _zyx_order(data, (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)))
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
    return ImageData(data, axes, voxel, "angstrom" if voxel else None, origin, start)


def _zyx_order(data: np.ndarray, maps: tuple[int, int, int]) -> np.ndarray:
    """MRC data in (Z, Y, X) order. The file stores sections, rows and columns, and
    mapc/mapr/maps say which of X (1), Y (2), Z (3) each is; nearly every file has 1, 2, 3."""
    if data.ndim != 3 or maps == (1, 2, 3) or sorted(maps) != [1, 2, 3]:
        return data
    axis_of = {maps[2]: 0, maps[1]: 1, maps[0]: 2}  # data axis 0 holds sections, 1 rows, 2 columns
    return data.transpose(axis_of[3], axis_of[2], axis_of[1])


def _read_tiff(path: Path) -> ImageData:
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
    return ImageData(data, axes, voxel, unit)


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


def _read_pil(path: Path) -> ImageData:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I"):
            data = np.array(im)
        elif im.mode in ("L", "P", "1"):
            data = np.array(im.convert("L"))
        else:
            data = np.array(im.convert("RGB"))
    return ImageData(data, "YX" if data.ndim == 2 else "YXC")


# --- writing ------------------------------------------------------------------------------
def _umask_permissions(path: Path) -> None:
    """Give a temporary file (created 0600) the permissions a normal new file would get."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


class atomic_path:
    """Context manager yielding a temporary path beside ``path``, renamed onto it on success."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        blocking = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise SSDNError(f"cannot write {str(self.path)!r}: {str(blocking)!r} is a file, not a folder; choose another output path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        except OSError as exc:  # a parent that is a file, a read-only or missing mount, no permission
            raise SSDNError(
                f"cannot write {str(self.path)!r} ({exc.strerror or exc}); choose an output in a folder you can write to"
            ) from None
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            _umask_permissions(self.tmp)
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def write_image(
    path: str | os.PathLike,
    data: np.ndarray,
    axes: str,
    voxel: dict | None = None,
    unit: str | None = None,
    origin: tuple | None = None,
    label: str = "napari-ssdn",
    start: tuple | None = None,
) -> Path:
    """Write float32 ``data`` as TIFF or MRC (by extension), atomically, keeping the voxel size.

    Parameters
    ----------
    path : path-like
        ``*.tif``/``*.tiff`` or an MRC extension.
    data : ndarray
    axes : str
        Axes of ``data`` (see :class:`ImageData`).
    voxel : dict, optional
        Voxel size per spatial axis, in ``unit``.
    unit : str, optional
        Unit of ``voxel``; MRC files store angstrom and are converted.
    origin : tuple, optional
        MRC origin (x, y, z) in angstrom.
    label : str
        Provenance written into the MRC labels / TIFF description.
    start : tuple, optional
        MRC index of the first voxel (nxstart, nystart, nzstart).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    data = np.asarray(data, dtype=np.float32)
    voxel = {k: float(v) for k, v in (voxel or {}).items() if k in axes}
    if suffix in MRC_SUFFIXES:
        with atomic_path(path) as tmp:
            _write_mrc(tmp, data, axes, voxel, unit, origin, label, start)
    else:
        check_output_suffix(path)
        with atomic_path(path) as tmp:
            _write_tiff(tmp, data, axes, voxel, unit, label, _is_ome(path))
    return path


def check_output_suffix(path) -> None:
    """Refuse an output whose extension is neither TIFF nor MRC, naming the remedy."""
    suffix = Path(path).suffix.lower()
    if suffix not in TIFF_SUFFIXES + MRC_SUFFIXES:
        raise SSDNError(
            f"output {str(path)!r} has extension {suffix!r}; outputs are float32, so use .tif or an MRC extension ({', '.join(MRC_SUFFIXES)})"
        )


def _set_mrc_geometry(mrc, voxel, unit, origin, start) -> None:
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


def _write_mrc(path, data, axes, voxel, unit, origin, label, start=None):
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
        _set_mrc_geometry(mrc, voxel, unit, origin, start)
        mrc.update_header_stats()
        mrc.add_label(label[:80])


_OME_UNITS = {"micrometer": "µm", "nanometer": "nm", "angstrom": "Å", "millimeter": "mm"}


def _is_ome(path) -> bool:
    return Path(path).name.lower().endswith((".ome.tif", ".ome.tiff"))


def _tiff_options(axes, voxel, unit, label, ome=False) -> dict:
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


def _write_tiff(path, data, axes, voxel, unit, label, ome=False):
    import tifffile

    tifffile.imwrite(path, data, **_tiff_options(axes, voxel, unit, label, ome))


class open_output:
    """Context manager yielding a float32 memory map that becomes the output file on success.

    Large results (volumes) are written tile by tile into the map instead of being held
    in memory; the file appears under its name only when complete (atomic rename), and
    is removed if the block raises.

    Parameters
    ----------
    path, axes, voxel, unit, origin, label, start
        As in :func:`write_image`.
    shape : tuple of int
        Shape of the output.

    Examples
    --------
    >>> with open_output("out.mrc", vol.shape, "ZYX", {"X": 1.2, "Y": 1.2, "Z": 1.2}, "angstrom") as out:
    ...     denoise(model, vol, "ZYX", out=out)
    """

    def __init__(self, path, shape, axes, voxel=None, unit=None, origin=None, label="napari-ssdn", start=None):
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.axes = axes
        self.voxel = {k: float(v) for k, v in (voxel or {}).items() if k in axes}
        self.unit, self.origin, self.label, self.start = unit, origin, label, start
        self.suffix = self.path.suffix.lower()
        if self.suffix in MRC_SUFFIXES:
            if "C" in axes or len(self.shape) > 3:
                raise SSDNError(f"MRC holds 2D images, stacks and volumes, not data with axes {axes!r}; write a .tif instead")
        else:
            check_output_suffix(path)

    def __enter__(self) -> np.ndarray:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            if self.suffix in MRC_SUFFIXES:
                import mrcfile

                self._mrc = mrcfile.new_mmap(tmp, shape=self.shape, mrc_mode=2, overwrite=True)
                return self._mrc.data
            import tifffile

            self._mrc = None
            return tifffile.memmap(tmp, shape=self.shape, dtype=np.float32, **_tiff_options(self.axes, self.voxel, self.unit, self.label, _is_ome(self.path)))
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._mrc is not None:
                if exc_type is None:
                    self._finish_mrc()
                self._mrc.close()
        finally:
            self._atomic.__exit__(exc_type, exc, tb)
        return False

    def _finish_mrc(self):
        mrc, data = self._mrc, self._mrc.data
        if data.ndim == 3:
            if self.axes[0] == "Z":
                mrc.set_volume()
            else:
                mrc.set_image_stack()
        _set_mrc_geometry(mrc, self.voxel, self.unit, self.origin, self.start)
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
        mrc.add_label(self.label[:80])
        mrc.flush()


def default_output_name(input_path: str | os.PathLike) -> str:
    """File name for the denoised version of ``input_path`` inside an output folder."""
    p = Path(input_path)
    return p.name if p.suffix.lower() in MRC_SUFFIXES + TIFF_SUFFIXES else p.stem + ".tif"
