"""The bioimage.io description (format 0.5) of an exported model, and writing the package.
The only module that imports ``bioimageio.spec`` (the ``napari-ssdn[bmz]`` extra)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch

from ..core.errors import SSDNError
from ..core.nets.model import SSDNModel
from .describe import CITATIONS, channel_names, description_text

__all__ = ["build_description", "save_package"]

#: Where outputs may differ from the test output (data units, relative), as checked by
#: ``bioimageio test``: float32 rounding between TorchScript and ONNX on any machine.
TOLERANCE = {"relative_tolerance": 1e-4, "absolute_tolerance": 1e-4}


def _spec():
    try:
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise SSDNError(
            "exporting needs the bioimage.io packages; install them with: pip install 'napari-ssdn[bmz]' "
            "(in a source checkout: pip install -e '.[bmz]')"
        ) from None
    return v0_5


def build_description(
    model: SSDNModel, info: dict, folder: Path, files: dict, name: str, author: str | None, halos: tuple, steps: tuple
):
    """The ``ModelDescr`` of the package whose files lie in ``folder``.

    ``files`` maps weight formats (``torchscript``, ``onnx``) to their files; ``halos`` and
    ``steps`` give per spatial axis the halo and the size step of the input."""
    v = _spec()
    cfg = model.config
    names = ("z", "y", "x")[-cfg.ndim :]
    ins = [v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(c) for c in channel_names(cfg.channels)])]
    outs = list(ins)
    for axis, halo, step in zip(names, halos, steps, strict=True):
        # Tiles of any multiple of the step that leave data once the halo is cropped.
        ins.append(v.SpaceInputAxis(id=v.AxisId(axis), size=v.ParameterizedSize(min=2 * halo + step, step=step)))
        outs.append(
            v.SpaceOutputAxisWithHalo(
                id=v.AxisId(axis),
                halo=halo,
                size=v.SizeReference(tensor_id=v.TensorId("input"), axis_id=v.AxisId(axis)),
            )
        )
    inputs = [
        v.InputTensorDescr(
            id=v.TensorId("input"),
            axes=ins,
            description="noisy image, in the units of the training data",
            test_tensor=v.FileDescr(source=folder / "test_input.npy"),
            data=v.IntervalOrRatioDataDescr(type="float32"),
        )
    ]
    outputs = [
        v.OutputTensorDescr(
            id=v.TensorId("output"),
            axes=outs,
            description="posterior mean (denoised), same units",
            test_tensor=v.FileDescr(source=folder / "test_output.npy"),
            data=v.IntervalOrRatioDataDescr(type="float32"),
        )
    ]
    version = re.match(r"[0-9.]+", torch.__version__).group(0).rstrip(".")
    weights = {
        "torchscript": v.TorchscriptWeightsDescr(source=files["torchscript"], pytorch_version=v.Version(version))
    }
    if "onnx" in files:
        from .wrapper import ONNX_OPSET

        weights["onnx"] = v.OnnxWeightsDescr(source=files["onnx"], opset_version=ONNX_OPSET, parent="torchscript")
    from .. import __version__

    return v.ModelDescr(
        name=_name(name),
        description=description_text(model),
        authors=[v.Author(name=author or "napari-ssdn user")],
        cite=[
            v.CiteEntry(text=c["text"], doi=v.Doi(c["doi"]) if c.get("doi") else None, url=c.get("url"))
            for c in CITATIONS
        ],
        license=v.LicenseId("BSD-3-Clause"),
        documentation=v.FileDescr(source=folder / "README.md"),
        covers=[v.FileDescr(source=folder / "cover.png")],
        attachments=[v.FileDescr(source=folder / "napari_ssdn_model.ssdn")],
        tags=["denoising", "self-supervised", "blind-spot", "napari-ssdn", "pytorch", f"{cfg.ndim}d"],
        inputs=inputs,
        outputs=outputs,
        weights=v.WeightsDescr(**weights),
        config=v.Config(
            bioimageio=v.BioimageioConfig(reproducibility_tolerance=[v.ReproducibilityTolerance(**TOLERANCE)]),
            napari_ssdn={
                "version": __version__,
                "model": cfg.to_dict(),
                "training": _plain(info.get("training") or {}),
            },
        ),
    )


def save_package(descr, output: Path) -> None:
    """Write ``descr`` and its files as one zip at ``output``, atomically."""
    from bioimageio.spec import save_bioimageio_package

    tmp = atomic_target(output)
    try:
        save_bioimageio_package(descr, output_path=tmp)
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _name(stem: str) -> str:
    """A package name in the characters the format allows."""
    clean = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", stem)[:40]
    return f"napari-ssdn denoiser ({clean})"


def _plain(d):
    """JSON-like values only (the format's config takes YAML values)."""
    if isinstance(d, dict):
        return {str(k): _plain(x) for k, x in d.items() if x is not None}
    if isinstance(d, (list, tuple)):
        return [_plain(x) for x in d]
    return d


def atomic_target(output: Path) -> Path:
    """A temporary name beside ``output`` for writing it atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    return Path(tmp)
