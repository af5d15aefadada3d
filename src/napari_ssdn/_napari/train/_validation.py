"""Validation of the Train widget's fields, as a pure function (no Qt, no torch).

Every message names the field, the value and what to do, and is shown as the field's
tooltip and under the form; Start stays disabled while any message remains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...core.data import check_axes
from ...core.errors import SSDNError
from ...core.sizes import spatial_sides
from .._jobs import TrainRequest
from .._options import DEVICES, NOISE_CHOICES, NOISE_PARAMS, PER_IMAGE_CHOICES, WIDTHS
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


def _positive_float(name: str, text: str) -> tuple[float | None, str | None]:
    try:
        v = float(str(text).strip())
    except ValueError:
        return None, f"{name} {text!r} is not a number; type a positive number such as 0.001"
    if not (math.isfinite(v) and v > 0):
        return None, f"{name} {v:g} must be a positive number"
    return v, None


def _blind_region(text: str, ndim: int) -> tuple[object, str | None]:
    """``"auto"`` or one k per spatial axis, by the core's rule; or the error naming the field."""
    from ...core.training.settings import TrainConfig  # torch-free

    if _is_auto(text):
        return "auto", None
    try:
        return TrainConfig(blind=str(text).strip(), ndim=ndim).blind_region_given(), None
    except SSDNError as exc:
        return None, in_widget_terms(exc)


def _patch(f: TrainFields, axes: str, axes_ok: bool) -> tuple[int | None, str | None]:
    """The patch side (None: auto), or why it is wrong: at least 8, at most the image's
    largest side (a larger crop cannot be cut from it)."""
    if _is_auto(f.patch):
        return None, None
    v, err = _positive_int("patch", f.patch, minimum=8)
    if err is None and axes_ok:
        sides = spatial_sides(f.shape, axes, 3 if f.dims == "3D" and "Z" in axes else 2)
        if v > max(sides):
            size = " x ".join(map(str, sides))
            return None, f"patch {v} is larger than the image ({size} pixels); use at most {max(sides)}, or auto"
    return v, err


def validate_train(f: TrainFields) -> tuple[TrainRequest | None, dict[str, str]]:
    """Check ``f``; return ``(request, {})`` or ``(None, {field: message})``.

    Field keys: ``layer``, ``axes``, ``param:<name>``, ``budget``, ``patch``, ``batch``,
    ``width``, ``lr``, ``seed``, ``device``, ``threads``, ``dims``, ``subsample``, ``blind``.
    """
    errors: dict[str, str] = {}
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
    params = {}
    if f.noise not in NOISE_CHOICES:
        errors["noise"] = f"noise model {f.noise!r} is unknown; pick one of {', '.join(NOISE_CHOICES)}"
    else:
        # auto: no parameter fields; the model is read from the data and its parameters learned.
        for name in NOISE_PARAMS.get(f.noise, ()):
            learn, text = f.params.get(name, (True, ""))
            if learn:
                continue
            if not str(text).strip():
                errors[f"param:{name}"] = f"{name} is empty; type its value or tick 'learn' to learn it from the data"
                continue
            v, err = _positive_float(name, text)
            if err is None and name == "alpha" and v >= 1:
                err = f"alpha {v:g} must be below 1 (the fraction of corrupted pixels), e.g. 0.1"
            if err:
                errors[f"param:{name}"] = err + " (or tick 'learn')"
            else:
                params[name] = v
    config: dict = {"noise": f.noise, "noise_params": params, "per_image": PER_IMAGE_CHOICES.get(f.per_image, "auto")}
    if f.dims == "3D":
        config["ndim"] = 3
        config["anisotropy"] = float(f.anisotropy) if f.anisotropy and f.anisotropy > 0 else 1.0
    if f.budget_unit == "minutes":
        v, err = _positive_float("budget (minutes)", f.budget)
        if err:
            errors["budget"] = err
        else:
            config["time_limit"] = v * 60.0
    else:
        v, err = _positive_int("budget (iterations)", f.budget)
        if err:
            errors["budget"] = err
        else:
            config["iterations"] = v
    # auto: the core's default for the device and dimensions (GPU crops are larger).
    v, err = _patch(f, axes, f.shape is not None and "axes" not in errors)
    errors.update({"patch": err} if err else {})
    config["patch"] = v
    v, err = (None, None) if _is_auto(f.batch) else _positive_int("batch", f.batch)
    errors.update({"batch": err} if err else {})
    config["batch"] = v
    if f.width not in WIDTHS:
        errors["width"] = f"width {f.width!r} is not a preset; pick one of {', '.join(WIDTHS)}"
    config["width"] = None if f.width == "auto" else f.width
    if _is_auto(f.lr):
        v, err = None, None  # the core's default for the width
    else:
        v, err = _positive_float("learning rate", f.lr)
        if err is None and v > 0.1:
            err = f"learning rate {v:g} is too large; use about 1e-3 (at most 0.1), or auto"
    errors.update({"lr": err} if err else {})
    config["lr"] = v
    v, err = _positive_int("seed", f.seed, minimum=0)
    errors.update({"seed": err} if err else {})
    config["seed"] = v
    v, err = _positive_int("subsample", f.subsample)
    if err is None and v > 4:
        err = f"subsample {v} is too large; use 1 (off), or 2 for noise correlated between neighbouring pixels"
    elif err is None and v > 1 and f.dims == "3D":
        err = f"subsample {v} is for 2D networks; use 1 with a 3D network"
    errors.update({"subsample": err} if err else {})
    # 1 stays unset, so that resuming keeps the factor the model was trained with.
    config["subsample"] = v if v and v > 1 else None
    blind, err = _blind_region(f.blind, 3 if f.dims == "3D" else 2)
    errors.update({"blind": err} if err else {})
    config["blind"] = blind
    dev = f.device.strip().lower()
    if dev not in DEVICES and not (dev.startswith("cuda:") and dev[5:].isdigit()):
        errors["device"] = f"device {f.device!r} is unknown; use {', '.join(DEVICES)} or cuda:N"
    config["device"] = dev
    threads, err = (None, None) if _is_auto(f.threads) else _positive_int("threads", f.threads)
    errors.update({"threads": err} if err else {})
    if errors:
        return None, errors
    return TrainRequest(axes=axes, config=config, threads=threads), {}
