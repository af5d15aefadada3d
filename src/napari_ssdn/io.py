"""Reading and writing TIFF, MRC and PNG/JPEG images with their voxel size (no torch, no Qt).

Voxel sizes are kept per spatial axis (``{"Z": 1.0, "Y": 0.5, "X": 0.5}``) with a unit.
MRC stores angstrom; TIFF stores ImageJ metadata (``spacing``, ``unit``, resolution tags)
so Fiji reads them too, or tifffile's JSON description when the axes do not fit ImageJ.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._mrc import finish_mrc, read_mrc, write_mrc
from ._tiff import is_ome, read_tiff, tiff_options, to_angstrom
from ._tiff import write_tiff as _write_tiff  # module-level name: tests replace it
from .core.errors import SSDNError

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
            img = ImageData(*read_mrc(path, mmap))
        elif suffix in TIFF_SUFFIXES:
            img = ImageData(*read_tiff(path))
        elif suffix in PIL_SUFFIXES:
            img = _read_pil(path)
        else:
            raise SSDNError(
                f"input file {str(path)!r} has an unsupported extension {suffix!r}; use TIFF, MRC "
                f"({', '.join(MRC_SUFFIXES)}), PNG or JPEG"
            )
    except SSDNError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not a readable image"
        raise SSDNError(
            f"cannot read {str(path)!r} as an image ({type(exc).__name__}: {exc}); check that the file is complete"
        ) from None
    if img.data.size == 0:
        raise SSDNError(f"input file {str(path)!r} holds an empty image")
    if not np.issubdtype(img.data.dtype, np.number) or np.issubdtype(img.data.dtype, np.complexfloating):
        raise SSDNError(
            f"input file {str(path)!r} holds {img.data.dtype} data; only real-valued images can be denoised"
        )
    return img


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
            raise SSDNError(
                f"cannot write {str(self.path)!r}: {str(blocking)!r} is a file, not a folder; "
                "choose another output path"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        except OSError as exc:  # a parent that is a file, a read-only or missing mount, no permission
            raise SSDNError(
                f"cannot write {str(self.path)!r} ({exc.strerror or exc}); "
                "choose an output in a folder you can write to"
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
            write_mrc(tmp, data, axes, voxel, unit, origin, label, start)
    else:
        check_output_suffix(path)
        with atomic_path(path) as tmp:
            _write_tiff(tmp, data, axes, voxel, unit, label, is_ome(path))
    return path


def check_output_suffix(path) -> None:
    """Refuse an output whose extension is neither TIFF nor MRC, naming the remedy."""
    suffix = Path(path).suffix.lower()
    if suffix not in TIFF_SUFFIXES + MRC_SUFFIXES:
        raise SSDNError(
            f"output {str(path)!r} has extension {suffix!r}; "
            f"outputs are float32, so use .tif or an MRC extension ({', '.join(MRC_SUFFIXES)})"
        )


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
                raise SSDNError(
                    f"MRC holds 2D images, stacks and volumes, not data with axes {axes!r}; write a .tif instead"
                )
        else:
            check_output_suffix(path)

    def __enter__(self) -> np.ndarray:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            return self._open(tmp)
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            self._close(exc_type is None)
        finally:
            self._atomic.__exit__(exc_type, exc, tb)
        return False

    def _open(self, path: Path, reuse: bool = False) -> np.ndarray:
        """The float32 map of the file ``path``: created, or with ``reuse`` opened again."""
        if self.suffix in MRC_SUFFIXES:
            import mrcfile

            self._mrc = (
                mrcfile.mmap(path, mode="r+")
                if reuse
                else mrcfile.new_mmap(path, shape=self.shape, mrc_mode=2, overwrite=True)
            )
            return self._mrc.data
        import tifffile

        self._mrc = None
        if reuse:
            self._data = tifffile.memmap(path, mode="r+")
        else:
            opts = tiff_options(self.axes, self.voxel, self.unit, self.label, is_ome(self.path))
            self._data = tifffile.memmap(path, shape=self.shape, dtype=np.float32, **opts)
        return self._data

    def _close(self, complete: bool) -> None:
        """Flush and close the map; a complete MRC gets its header first."""
        if self._mrc is not None:
            if complete:
                finish_mrc(self._mrc, self.axes, self.voxel, self.unit, self.origin, self.label, self.start)
            self._mrc.close()
        else:
            self._data.flush()
            del self._data


def default_output_name(input_path: str | os.PathLike) -> str:
    """File name for the denoised version of ``input_path`` inside an output folder."""
    p = Path(input_path)
    return p.name if p.suffix.lower() in MRC_SUFFIXES + TIFF_SUFFIXES + (".zarr",) else p.stem + ".tif"
