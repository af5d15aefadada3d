"""Validation of the Train widget's fields, as a pure function (no Qt, no torch).

The fields' text is read here; the settings it gives are checked by the core
(:meth:`~napari_ssdn.core.training.settings.TrainConfig.problems`, the rules of the settings
table), and each problem is worded against its field. Every message names the field, the
value and what to do, and is shown as the field's tooltip and under the form; Start stays
disabled while any message remains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...core.data import check_axes
from ...core.errors import SSDNError
from ...core.sizes import spatial_sides
from .._jobs import TrainRequest
from .._options import NOISE_PARAMS, PER_IMAGE_CHOICES
from .._words import in_widget_terms

__all__ = ["TrainFields", "validate_train"]


@dataclass
class TrainFields:
    """The raw values of the Train widget's fields (strings as typed).

    ``params`` maps each parameter of ``noise`` to ``(learn, text)``.
    """

    shape: tuple | None = None
    axes: str = ""
    noise: str = "auto"
    params: dict = field(default_factory=dict)
    budget: str = "300"
    budget_unit: str = "iterations"
    patch: str = "auto"
    batch: str = "auto"
    width: str = "auto"
    lr: str = "auto"
    seed: str = "0"
    device: str = "auto"
    threads: str = "auto"
    dims: str = "2D"
    anisotropy: float = 1.0
    subsample: str = "1"
    blind: str = "auto"
    per_image: str = "auto"


def _is_auto(text: str) -> bool:
    return str(text).strip().lower() in ("", "auto")


def _positive_int(name: str, text: str, minimum: int = 1) -> tuple[int | None, str | None]:
    try:
        v = int(str(text).strip())
    except ValueError:
        return (
            None,
            f"{name} {text!r} is not a whole number; type e.g. "
            f"{max(minimum, 4)}{' or auto' if name in ('patch', 'batch') else ''}",
        )
    if v < minimum:
        return None, f"{name} {v} is too small; use {minimum} or more"
    return v, None


def _whole(name: str, text: str, example: int) -> tuple[int | None, str | None]:
    """The number in ``text`` (its range is the core's to check), or why it is none."""
    try:
        return int(str(text).strip()), None
    except ValueError:
        auto = " or auto" if name in ("patch", "batch") else ""
        return None, f"{name} {text!r} is not a whole number; type e.g. {example}{auto}"


def _number(name: str, text: str) -> tuple[float | None, str | None]:
    try:
        return float(str(text).strip()), None
    except ValueError:
        return None, f"{name} {text!r} is not a number; type a positive number such as 0.001"


#: The widget's field for each core setting whose key differs from the setting's name.
_FIELD_OF = {"iterations": "budget", "time_limit": "budget", "ndim": "dims", "noise_params": "noise"}


def _worded(problems: dict[str, SSDNError], noise_params: dict) -> dict[str, str]:
    """The core's problems keyed and worded as the widget's fields."""
    out = {}
    for name, exc in problems.items():
        if name in noise_params:
            out[f"param:{name}"] = in_widget_terms(exc) + " (or tick 'learn')"
        else:
            out.setdefault(_FIELD_OF.get(name, name), in_widget_terms(exc))
    return out


def _patch(f: TrainFields, axes: str, axes_ok: bool) -> tuple[int | None, str | None]:
    """The patch side (None: auto), or why it is wrong: a larger crop than the image's
    largest side cannot be cut from it (the core checks the rest)."""
    if _is_auto(f.patch):
        return None, None
    v, err = _whole("patch", f.patch, 64)
    if err is None and axes_ok and v >= 1:
        sides = spatial_sides(f.shape, axes, 3 if f.dims == "3D" and "Z" in axes else 2)
        if v > max(sides):
            size = " x ".join(map(str, sides))
            return None, f"patch {v} is larger than the image ({size} pixels); use at most {max(sides)}, or auto"
    return v, err


def _noise_params(f: TrainFields, errors: dict) -> dict:
    """The noise parameters typed (not learned); an empty or non-numeric one goes to ``errors``."""
    params = {}
    for name in NOISE_PARAMS.get(f.noise, ()):
        learn, text = f.params.get(name, (True, ""))
        if learn:
            continue
        if not str(text).strip():
            errors[f"param:{name}"] = f"{name} is empty; type its value or tick 'learn' to learn it from the data"
            continue
        v, err = _number(name, text)
        if err:
            errors[f"param:{name}"] = err + " (or tick 'learn')"
        else:
            params[name] = v
    return params


def _layer_and_axes(f: TrainFields, errors: dict) -> str:
    """The axes checked against the layer; a missing layer or bad axes go to ``errors``."""
    axes = f.axes.strip().upper()
    if f.shape is None:
        errors["layer"] = (
            "no image layer: open an image (File > Open) or a sample (File > Open Sample > SSDN denoising)"
        )
    else:
        try:
            axes = check_axes(axes, tuple(f.shape), name="axes")
        except SSDNError as exc:
            errors["axes"] = in_widget_terms(exc)
    if f.dims not in ("2D", "3D"):
        errors["dims"] = f"network {f.dims!r} is unknown; pick 2D or 3D"
    elif f.dims == "3D" and "axes" not in errors and "layer" not in errors and "Z" not in axes:
        errors["dims"] = f"a 3D network needs a Z axis but the axes are {axes!r}; set the axes (e.g. ZYX) or pick 2D"
    return axes


def _read(f: TrainFields, axes: str, errors: dict) -> dict:
    """The settings the fields give (those that read as text of the right kind); a field that
    does not read goes to ``errors``."""
    config: dict = {"noise": f.noise, "per_image": PER_IMAGE_CHOICES.get(f.per_image, "auto")}
    config["noise_params"] = _noise_params(f, errors) if f.noise in NOISE_PARAMS else {}
    if f.dims == "3D":
        config["ndim"] = 3
        config["anisotropy"] = float(f.anisotropy) if f.anisotropy and f.anisotropy > 0 else 1.0
    if f.budget_unit == "minutes":
        v, err = _number("budget (minutes)", f.budget)
        if err is None and not (math.isfinite(v) and v > 0):
            err = f"budget (minutes) {v:g} must be a positive number"
        config["time_limit"] = None if err else v * 60.0
    else:
        v, err = _whole("budget (iterations)", f.budget, 300)
        config["iterations"] = v
    readers = {
        "budget": (err, None),
        # auto: the core's default for the device and dimensions (GPU crops are larger).
        "patch": _patch(f, axes, f.shape is not None and "axes" not in errors),
        "batch": (None, None) if _is_auto(f.batch) else _whole("batch", f.batch, 4),
        "lr": (None, None) if _is_auto(f.lr) else _number("learning rate", f.lr),
        "seed": _whole("seed", f.seed, 0),
        "subsample": _whole("subsample", f.subsample, 2),
    }
    for key, (v, err) in readers.items():
        if err:
            errors[key] = err
        elif key != "budget":
            config[key] = v
    # 1 stays unset, so that resuming keeps the factor the model was trained with.
    config["subsample"] = config.get("subsample") if config.get("subsample") != 1 else None
    config["width"] = None if f.width == "auto" else f.width
    config["blind"] = "auto" if _is_auto(f.blind) else str(f.blind).strip()
    config["device"] = f.device.strip().lower()
    return config


def validate_train(f: TrainFields) -> tuple[TrainRequest | None, dict[str, str]]:
    """Check ``f``; return ``(request, {})`` or ``(None, {field: message})``.

    Field keys: ``layer``, ``axes``, ``noise``, ``param:<name>``, ``budget``, ``patch``,
    ``batch``, ``width``, ``lr``, ``seed``, ``device``, ``threads``, ``dims``, ``subsample``,
    ``blind``.
    """
    from ...core.training.settings import TrainConfig  # torch-free

    errors: dict[str, str] = {}
    axes = _layer_and_axes(f, errors)
    config = _read(f, axes, errors)
    settings = TrainConfig(**config)
    for key, message in _worded(settings.problems(), config["noise_params"]).items():
        errors.setdefault(key, message)
    threads, err = (None, None) if _is_auto(f.threads) else _positive_int("threads", f.threads)
    errors.update({"threads": err} if err else {})
    if errors:
        return None, errors
    # The blind region as one k per spatial axis, as the core read it.
    config["blind"] = settings.blind_region_given() or "auto"
    return TrainRequest(axes=axes, config=config, threads=threads), {}
