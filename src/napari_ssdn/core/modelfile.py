"""Model files: tensors plus a plain JSON config, loaded without unpickling objects."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import ModelFileError
from .model import ModelConfig, SSDNModel

__all__ = ["save_model", "load_model", "FORMAT"]

FORMAT = "napari-ssdn-model"
FORMAT_VERSION = 1


def _version() -> str:
    from .. import __version__

    return __version__


def save_model(
    model: SSDNModel, path: str | os.PathLike, optimizer_state: dict | None = None, train_state: dict | None = None
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


def read_model_file(path: str | os.PathLike) -> dict:
    """Load the raw contents (``meta`` dict, ``state``, optional ``optimizer``) safely."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"model file {str(path)!r} is a folder; give the .ssdn file inside it")
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist; train one with 'ssdn train ... -o {path.name}'")
    try:
        # weights_only: tensors, numbers, strings and containers only - never arbitrary objects.
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
        if meta.get("format") != FORMAT:
            raise ValueError("not a napari-ssdn model")
        blob["meta"] = meta
        return blob
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a usable model
        raise ModelFileError(
            f"model file {str(path)!r} is not a readable napari-ssdn model (truncated, or another kind of file); "
            "pass a file written by 'ssdn train' or the Train widget"
        ) from None


def load_model(path: str | os.PathLike) -> tuple[SSDNModel, dict]:
    """Load a model file.

    Returns
    -------
    model : SSDNModel
        On the CPU, in eval mode.
    info : dict
        The file's metadata (``model``, ``training``, ``noise_params``, versions) plus
        ``optimizer`` (state dict or None).
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
    return model, meta
