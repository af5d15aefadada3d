"""Model files: tensors plus a plain JSON config, loaded without unpickling objects."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import ModelFileError
from .nets.model import ModelConfig, SSDNModel

__all__ = ["save_model", "load_model", "FORMAT"]

FORMAT = "napari-ssdn-model"
FORMAT_VERSION = 1


def _version() -> str:
    from .. import __version__

    return __version__


def save_model(
    model: SSDNModel,
    path: str | os.PathLike,
    optimizer_state: dict | None = None,
    train_state: dict | None = None,
    sample: np.ndarray | None = None,
) -> Path:
    """Write ``model`` (and optionally optimizer and training state) to ``path`` atomically.

    Parameters
    ----------
    model : SSDNModel
    path : path-like
        Destination, conventionally ``*.ssdn``; written through a temporary file and renamed,
        so a crash never leaves half a file.
    optimizer_state : dict, optional
        ``optimizer.state_dict()`` to resume training.
    train_state : dict, optional
        Plain values (steps done, elapsed seconds, losses) stored in the config.
    sample : ndarray, optional
        A small crop of the training data, ``(*spatial, C)`` in data units, kept as the
        example image of an exported package (``ssdn export``).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": _version(),
        "model": model.config.to_dict(),
        "training": train_state or {},
        "noise_params": model.noise_params_data(),
    }
    blob = {
        "meta": json.dumps(meta),
        "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if optimizer_state is not None:
        blob["optimizer"] = optimizer_state
    if sample is not None:
        blob["sample"] = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(blob, tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp creates 0600; a model file is shared like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: Names of the description file of a bioimage.io model package (a zip archive).
PACKAGE_DESCRIPTIONS = ("rdf.yaml", "bioimageio.yaml")


def _packaged_model(path: Path):
    """The napari-ssdn model file inside a bioimage.io package written by ``ssdn export``
    (as a file object), or None when ``path`` is not such a package."""
    if path.suffix.lower() != ".zip" or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if not any(n in PACKAGE_DESCRIPTIONS for n in names):
            return None
        inner = [n for n in names if n.lower().endswith(".ssdn")]
        if len(inner) != 1:
            raise ModelFileError(
                f"model file {str(path)!r} is a bioimage.io package without a napari-ssdn model inside; "
                "use one written by 'ssdn export', or run other packages with bioimage.io tools"
            )
        return io.BytesIO(zf.read(inner[0]))


def read_model_file(path: str | os.PathLike) -> dict:
    """Load the raw contents (``meta`` dict, ``state``, optional ``optimizer`` and
    ``sample``) safely, from a ``.ssdn`` file or a package written by ``ssdn export``."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"model file {str(path)!r} is a folder; give the .ssdn file inside it")
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist; train one with 'ssdn train ... -o {path.name}'")
    try:
        source = _packaged_model(path) or path
        # weights_only: tensors, numbers, strings and containers only - never arbitrary objects.
        blob = torch.load(source, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
        if meta.get("format") != FORMAT:
            raise ValueError("not a napari-ssdn model")
        blob["meta"] = meta
        return blob
    except ModelFileError:
        raise
    except Exception:  # noqa: BLE001 - any failure means the file is not a usable model
        raise ModelFileError(
            f"model file {str(path)!r} is not a readable napari-ssdn model (truncated, or another kind of file); "
            "pass a file written by 'ssdn train' or the Train widget"
        ) from None


def load_model(path: str | os.PathLike) -> tuple[SSDNModel, dict]:
    """Load a model file.

    Parameters
    ----------
    path : str or path-like
        A ``.ssdn`` file, or a bioimage.io package (``.zip``) written by ``ssdn export``.
        Read without unpickling arbitrary objects.

    Returns
    -------
    model : SSDNModel
        On the CPU, in eval mode.
    info : dict
        The file's metadata (``model``, ``training``, ``noise_params``, versions) plus
        ``optimizer`` (state dict or None) and ``sample`` (the stored crop of the training
        data as an ndarray, or None).
    """
    blob = read_model_file(path)
    meta = blob["meta"]
    try:
        model = SSDNModel(ModelConfig.from_dict(meta["model"]))
        model.load_state_dict(blob["state"])
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(
            f"model file {str(path)!r} does not match this version of napari-ssdn ({exc}); retrain the model"
        ) from None
    model.eval()
    meta["optimizer"] = blob.get("optimizer")
    sample = blob.get("sample")
    meta["sample"] = sample.numpy() if isinstance(sample, torch.Tensor) else None
    return model, meta
