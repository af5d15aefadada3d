"""Denoising image files: the path that ``ssdn denoise`` and the Denoise widget's folder
run share (no Qt; torch only once a file is denoised).

Each file is read memory-mapped and denoised tile by tile straight into a memory-mapped
output that appears under its name only when complete (:class:`~napari_ssdn.io.open_output`),
with the input's voxel size, MRC origin and start. No input is ever written to.
"""

from __future__ import annotations

import os
from pathlib import Path

from .core.errors import SSDNError, template_of
from .io import MRC_SUFFIXES, TIFF_SUFFIXES, default_output_name, open_output, read_image

__all__ = ["FOLDER_SUFFIXES", "folder_plan", "denoise_file"]

#: Files a folder run denoises (what ``open_output`` can write back in the same format).
FOLDER_SUFFIXES = TIFF_SUFFIXES + MRC_SUFFIXES


def folder_plan(input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs for the TIFF and MRC files of ``input_dir`` (not its
    subfolders; hidden files, such as unfinished outputs, left out), each written under its
    own name into ``output_dir``.

    Raises
    ------
    SSDNError
        The input folder is missing or holds no such file, or the output folder is the
        input folder (the outputs would replace the inputs).
    """
    src, dst = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise SSDNError(
            f"input folder {str(src)!r} does not exist or is not a folder; choose a folder of TIFF or MRC files"
        )
    if dst.exists() and not dst.is_dir():
        raise SSDNError(f"output {str(dst)!r} is a file; choose a folder for the outputs")
    if dst.exists() and dst.resolve() == src.resolve():
        raise SSDNError(
            "the output folder is the input folder, so the outputs would replace the inputs; "
            "choose another output folder"
        )
    inputs = sorted(
        p for p in src.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FOLDER_SUFFIXES
    )
    if not inputs:
        raise SSDNError(
            f"{str(src)!r} holds no TIFF or MRC files ({', '.join(FOLDER_SUFFIXES)}); choose another input folder"
        )
    return [(p, dst / default_output_name(p)) for p in inputs]


def volume_axes(axes: str) -> str:
    """Axes of a file read for a volume model: a three-dimensional array without Z or
    channels (a plain TIFF's unnamed first axis reads as a stack) has one reading, ZYX."""
    return "ZYX" if len(axes) == 3 and axes.endswith("YX") and axes[0] in "SQT" else axes


def denoise_file(
    model,
    path,
    target,
    output: str = "posterior-mean",
    axes: str | None = None,
    model_name: str = "the model",
    axes_option: str | None = "--axes",
    **options,
):
    """Denoise the file ``path`` into ``target`` (TIFF or MRC, float32, atomically),
    yielding a warning (a str) where the data's values are far from the model's training
    data, then :class:`~napari_ssdn.core.DenoiseProgress` per tile; returns ``target``.

    Parameters
    ----------
    model : SSDNModel
    path, target : path-like
        Input and output files; ``target`` must not be ``path``.
    output : str
        Output kind (see :func:`~napari_ssdn.core.denoise_iter`).
    axes : str, optional
        Axes of the data; default: the file's.
    model_name, axes_option : str
        How messages name the model and the way to give the axes (None: there is none).
    **options
        Passed to :func:`~napari_ssdn.core.denoise_iter` (``device``, ``tile``,
        ``noise_params``, ``tta``, ``compile_network``, ``mixed_precision``).

    Raises
    ------
    SSDNError
        Naming the file: unreadable, wrong axes, axes the output format cannot hold, a
        volume model without a Z axis, or a failure while denoising (no output is left).
    """
    from .core import denoise_iter, scale_mismatch
    from .core.data import check_axes

    path, target = Path(path), Path(target)
    if target.exists() and path.exists() and target.resolve() == path.resolve():
        raise SSDNError(
            f"output {str(target)!r} is the input file; choose another output path so the input is not overwritten"
        )
    img = read_image(path, mmap=True)
    if axes is None and model.config.ndim == 3:
        img.axes = volume_axes(img.axes)
    try:  # before any output is opened: wrong axes must not reach the file writer
        axes = check_axes(axes or img.axes, img.data.shape, "axes" if axes else "the file's axes")
    except SSDNError as exc:
        raise SSDNError(f"{str(path)!r}: {template_of(exc)}") from None
    if target.suffix.lower() in MRC_SUFFIXES and ("C" in axes or img.data.ndim > 3):
        raise SSDNError(f"{str(path)!r} has axes {axes!r} that MRC cannot hold; write a .tif output instead")
    if model.config.ndim == 3 and "Z" not in axes.upper():
        # Only data with a third axis can be read as a volume by naming its axes.
        remedy = (
            f"if its first axis is Z, say so with {axes_option} (e.g. ZYX), or use a 2D model"
            if img.data.ndim >= 3 and axes_option
            else "use a 2D model"
        )
        raise SSDNError(f"{model_name} is a 3D (volume) model but {str(path)!r} has axes {axes!r}; {remedy}")
    mismatch = scale_mismatch(model, img.data, axes)
    if mismatch:
        yield f"{str(path)!r}: {mismatch}"
    # The result goes straight into a memory-mapped output file, tile by tile: a volume
    # larger than memory is denoised without holding input or output in RAM.
    with open_output(
        target, img.data.shape, axes, img.voxel, img.unit, img.origin, label=f"napari-ssdn {output}", start=img.start
    ) as result:
        try:
            yield from denoise_iter(model, img.data, axes, output, out=result, **options)
        except SSDNError as exc:  # name the file: several may be denoised in one run
            raise SSDNError(f"{str(path)!r}: {template_of(exc)}") from None
    return target
