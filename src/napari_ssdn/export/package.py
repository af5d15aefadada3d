"""Writing a bioimage.io model package (format 0.5) of a trained model: TorchScript and
ONNX weights of :class:`~napari_ssdn.export.wrapper.Denoiser`, test tensors, a cover, a
README and the model file itself as an attachment (so ``ssdn denoise -m`` reads it)."""

from __future__ import annotations

import copy
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..core.errors import SSDNError, library_failure
from ..core.nets.model import SSDNModel
from ..core.nets.receptive import receptive_margins
from . import describe
from .wrapper import ONNX_OPSET, Denoiser, onnx_compatible

__all__ = ["export_package", "ONNX_OPSET", "test_size"]

#: File name of the napari-ssdn model inside the package.
MODEL_ATTACHMENT = "napari_ssdn_model.ssdn"


def export_package(
    model: SSDNModel,
    info: dict,
    output,
    sample: np.ndarray | None = None,
    *,
    name: str = "model",
    author: str | None = None,
    onnx: bool = True,
) -> Path:
    """Write the package of ``model`` to ``output`` (a new ``.zip``, written atomically).

    Parameters
    ----------
    model : SSDNModel
        A trained model.
    info : dict
        Its metadata (:func:`~napari_ssdn.core.load_model`): ``training``, ``sample``.
    output : path-like
        The package to write; must end in ``.zip`` and not exist.
    sample : ndarray, optional
        ``(*spatial, C)`` example image in data units for the test tensors and the cover;
        default: the crop of the training data stored in the model file.
    name : str
        Name of the model (e.g. its file's stem), used in the package's name.
    author : str, optional
        Author named in the package (default: "napari-ssdn user").
    onnx : bool
        Add ONNX weights where the model allows (one channel) and ``onnx`` is installed.

    Returns
    -------
    pathlib.Path
    """
    output = check_output(output)
    check_trained(info, name)
    example = "the given example image"
    if sample is None:
        sample, example = info.get("sample"), "a crop of the training data"
        if sample is None:
            raise SSDNError(
                f"model {name!r} holds no crop of its training data (an older file); "
                "give an example image with --sample IMAGE (in napari: choose an image layer under Image)"
            )
    test_in, region = test_crop(np.asarray(sample, np.float32), model)
    model = copy.deepcopy(model).cpu().eval()  # the caller's model (a session's, maybe on a GPU) stays as it is
    noise = frozen_noise(model, test_in[region])
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ssdn-export-", dir=output.parent) as tmp:
        tmp = Path(tmp)
        with third_party(("torch", "onnx"), "to write the weights"):
            files, y = _write_weights(Denoiser(model, noise).eval(), test_in, tmp, onnx and onnx_compatible(model))
        describe.write_cover(tmp / "cover.png", test_in[region], y[region], model.config.ndim)
        text = describe.readme(
            model, info, noise_data(model, noise), name, test_in[region].shape, halos(model), example
        )
        (tmp / "README.md").write_text(text)
        from ..core import save_model

        save_model(model, tmp / MODEL_ATTACHMENT, train_state=info.get("training"), sample=info.get("sample"))
        from ._descr import build_description, save_package

        with third_party(("bioimageio.spec", "pydantic"), "to describe the package"):
            descr = build_description(model, info, tmp, files, name, author, halos(model), steps(model))
            save_package(descr, output)
    return output


@contextmanager
def third_party(libraries: tuple[str, ...], doing: str):
    """Re-raise what breaks inside ``libraries`` as one :class:`SSDNError` line that names
    them with their versions (a release that breaks another is the usual cause)."""
    try:
        yield
    except (SSDNError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - worded for the user; the cause stays chained
        remedy = "install versions that work together with: pip install -U 'napari-ssdn[bmz]'"
        raise library_failure(exc, libraries, doing, remedy) from exc


def _write_weights(denoiser: Denoiser, test_in: np.ndarray, folder: Path, onnx: bool) -> tuple[dict, np.ndarray]:
    """Trace ``denoiser`` to TorchScript (and export it to ONNX) in ``folder``, with the
    test tensors; returns the weight files by format and the test output ``(*spatial, C)``."""
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(test_in, -1, 0)))[None]
    files = {"torchscript": folder / "weights_torchscript.pt"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic, which is traced as intended
        traced = torch.jit.trace(denoiser, x, check_trace=False)
        traced.save(str(files["torchscript"]))
        y = traced(x)
        if onnx and _has_onnx():
            files["onnx"] = folder / "weights.onnx"
            _export_onnx(denoiser, x, files["onnx"], denoiser.ndim)
    np.save(folder / "test_input.npy", x.numpy())
    np.save(folder / "test_output.npy", y.numpy())
    return files, y[0].movedim(0, -1).numpy()


def check_output(output) -> Path:
    """``output`` as a Path, or :class:`SSDNError` where it cannot be a new package."""
    output = Path(output)
    if output.suffix.lower() != ".zip":
        raise SSDNError(f"output {str(output)!r} must end in .zip (a bioimage.io model package), e.g. model.zip")
    if output.exists():
        raise SSDNError(f"output {str(output)!r} exists; choose another name or delete it first")
    return output


def check_trained(info: dict, name: str) -> None:
    """:class:`SSDNError` for a model that was never trained (no step taken)."""
    if not (info.get("training") or {}).get("steps"):
        raise SSDNError(
            f"model {name!r} has not been trained (0 steps); train it first with 'ssdn train' or the Train widget"
        )


def steps(model: SSDNModel) -> tuple[int, ...]:
    """Input size steps per spatial axis: the network's multiple (times the subsampling)."""
    f = model.config.subsample
    return tuple(m * f for m in model.config.arch.multiples)


def halos(model: SSDNModel) -> tuple[int, ...]:
    """Halo per spatial axis: the receptive field in input pixels (core.nets.receptive)."""
    f = model.config.subsample
    return tuple(m * f for m in receptive_margins(model.config.arch))


#: Largest test image side (when the sample is larger), unless the package needs more.
TEST_SIDE = {2: 256, 3: 64}


def test_size(model: SSDNModel, shape) -> tuple[int, ...]:
    """Test-tensor size for a sample of ``shape`` (spatial): the least size the package
    allows (twice the halo plus one step) or more, up to :data:`TEST_SIDE`, in steps."""
    out = []
    for n, step, halo in zip(shape, steps(model), halos(model), strict=True):
        least = 2 * halo + step
        out.append(least + max(0, (min(n, TEST_SIDE[model.config.ndim]) - least) // step * step))
    return tuple(out)


def test_crop(sample: np.ndarray, model: SSDNModel) -> tuple[np.ndarray, tuple]:
    """A ``(*spatial, C)`` sample cut to :func:`test_size` (centred), mirrored at its edges
    where it is smaller; returns it and the region of it that holds the sample itself."""
    cfg = model.config
    if sample.ndim != cfg.ndim + 1 or sample.shape[-1] != cfg.channels:
        raise SSDNError(
            f"the sample has shape {sample.shape} but the model takes {cfg.ndim}D images with "
            f"{cfg.channels} channel(s); give an image of the kind the model was trained on"
        )
    size = test_size(model, sample.shape[:-1])
    cut = tuple(
        slice(max(0, (n - s) // 2), max(0, (n - s) // 2) + s) for n, s in zip(sample.shape[:-1], size, strict=True)
    )
    part = np.asarray(sample[cut], dtype=np.float32)
    pads = [((s - n) // 2, s - n - (s - n) // 2) for n, s in zip(part.shape[:-1], size, strict=True)]
    out = np.pad(part, pads + [(0, 0)], mode="symmetric")
    region = tuple(slice(b, b + n) for (b, _), n in zip(pads, part.shape[:-1], strict=True))
    return np.ascontiguousarray(out), region


def frozen_noise(model: SSDNModel, sample: np.ndarray) -> dict:
    """Noise parameters (normalised units, floats) frozen into the package; per-image
    models: those estimated for ``sample``."""
    from ..core.data import Normalization
    from ..core.infer.outputs import sample_noise_params

    if model.config.mode != "ssdn" or model.config.noise == "curve":
        return {}  # a curve model's noise is its measured table, which the package keeps whole
    norm = Normalization(model.config.offset, model.config.scale)
    with torch.no_grad():
        p = sample_noise_params(model, sample, lambda a: norm(np.nan_to_num(a, nan=norm.offset)), torch.device("cpu"))
    return {k: float(torch.as_tensor(v).mean()) for k, v in p.items()}


def noise_data(model: SSDNModel, noise: dict) -> dict:
    """Frozen noise parameters in data units."""
    from ..core.nets.model import params_to_data

    return params_to_data(model.config.noise, noise, model.config.offset, model.config.scale) if noise else {}


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def _export_onnx(denoiser: Denoiser, x: torch.Tensor, path: Path, ndim: int) -> None:
    axes = {0: "batch", 2: "y", 3: "x"} if ndim == 2 else {0: "batch", 2: "z", 3: "y", 4: "x"}
    torch.onnx.export(
        denoiser,
        (x,),
        str(path),
        dynamo=False,
        opset_version=ONNX_OPSET,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": axes, "output": axes},
    )
