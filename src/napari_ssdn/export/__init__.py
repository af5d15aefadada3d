"""Export a trained model as a bioimage.io model package (format 0.5).

The package's weights (TorchScript, and ONNX for one-channel models) are the whole
denoiser as ``ssdn denoise --no-tta`` runs it (:mod:`.wrapper`), loadable with torch
alone; the model file rides along as an attachment, so ``ssdn denoise -m package.zip``
works too. Needs the ``napari-ssdn[bmz]`` extra (bioimageio.spec, onnx), imported only here.

    from napari_ssdn.export import export_model
    export_model("model.ssdn", "model.zip", sample="noisy.tif")
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["export_model", "read_sample"]


def export_model(
    model,
    output: str | os.PathLike,
    sample=None,
    *,
    axes: str | None = None,
    info: dict | None = None,
    name: str | None = None,
    author: str | None = None,
    onnx: bool = True,
) -> Path:
    """Write a bioimage.io package of a trained model.

    Parameters
    ----------
    model : path-like or SSDNModel
        A model file (``.ssdn``, or a package written here) or a loaded model (then give
        ``info``, its metadata from :func:`~napari_ssdn.core.load_model` or the Train widget).
    output : path-like
        The ``.zip`` to write; must not exist. Nothing is written on error.
    sample : path-like or ndarray, optional
        Example image for the test tensors and the cover: an image file, or an array with
        ``axes``. Default: the crop of the training data stored in the model file.
    axes : str, optional
        Axes of ``sample`` (default: the file's, or guessed for an array).
    info : dict, optional
        Metadata of a loaded ``model``.
    name : str, optional
        Name of the model in the package (default: the model file's stem).
    author : str, optional
        Author named in the package.
    onnx : bool
        Also write ONNX weights where the model allows it (one channel).

    Returns
    -------
    pathlib.Path
        ``output``.

    Raises
    ------
    SSDNError
        An untrained or unreadable model, an existing output, a sample of the wrong kind,
        or the bioimage.io packages missing.
    """
    from .package import check_output, export_package

    check_output(output)  # before any slow work
    if isinstance(model, (str, os.PathLike)):
        from ..core import load_model

        name = name or Path(model).stem
        model, info = load_model(model)
    from ._descr import _spec

    _spec()  # the extra is installed, before tracing
    arr = None if sample is None else read_sample(sample, model.config, axes)
    return export_package(model, info or {}, output, arr, name=name or "model", author=author, onnx=onnx)


def read_sample(sample, config, axes: str | None = None):
    """First image (or volume) of ``sample`` (a file or an array) as ``(*spatial, C)``,
    checked against the model's channels and dimensions."""
    import numpy as np

    from ..core.data import check_axes, guess_axes, to_samples
    from ..core.errors import SSDNError, setting, template_of

    where = "--sample"
    if isinstance(sample, (str, os.PathLike)):
        from ..batch import volume_axes
        from ..io import read_image

        where = f"--sample {str(sample)!r}"
        img = read_image(sample)
        data, axes = img.data, axes or (volume_axes(img.axes) if config.ndim == 3 else img.axes)
    else:
        data = np.asarray(sample)
        axes = axes or guess_axes(
            data.shape, rgb=config.channels in (3, 4) and data.shape[-1] == config.channels, ndim=config.ndim
        )
    try:
        axes = check_axes(axes, data.shape, "axes")
        if config.ndim == 3 and "Z" not in axes.upper():
            raise SSDNError(
                f"the model is a 3D (volume) model but the sample has axes {axes!r}; "
                f"give a volume ({setting('axes', 'ZYX')})"
            )
        samples = to_samples(data, axes, config.ndim)
    except SSDNError as exc:
        raise SSDNError(f"{where}: {template_of(exc)}") from None
    if samples.shape[-1] != config.channels:
        raise SSDNError(
            f"{where} has {samples.shape[-1]} channel(s) (axes {axes!r}) but the model was trained on "
            f"{config.channels}; give an image of the kind the model was trained on"
        )
    return np.asarray(samples[0], np.float32)
