"""The concrete plan of one run (:class:`TrainPlan`), resolved once from the settings, the
device, the model and the data; printed by ``ssdn train`` and saved with the model."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..device import device_name
from ..nets.model import WIDTHS, ModelConfig
from .settings import TrainConfig
from .validation import square_plane

__all__ = ["TrainPlan", "plan_run"]


@dataclass(frozen=True)
class TrainPlan:
    """The concrete settings of one run, resolved once from a :class:`TrainConfig`, the
    device and the data; printed by ``ssdn train`` and saved with the model.

    Attributes
    ----------
    device : str
        Where the run trains (e.g. ``cpu``, ``cuda:0``).
    width : str
        Width preset of the network.
    patch : tuple of int
        Crop shape per spatial axis.
    batch : int
        Crops per step.
    lr : float
        Peak learning rate.
    val_every : int
        Steps between validations.
    warmup, rampdown : float
        Fractions of the budget for the learning rate's ramps (no warm-up when resuming).
    init : str or None
        Where the starting weights came from (``generic``, a model file) or None (random).
    """

    device: str
    width: str
    patch: tuple
    batch: int
    lr: float
    val_every: int
    warmup: float
    rampdown: float
    init: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["patch"] = list(self.patch)
        return d

    def describe(self) -> str:
        crops = " x ".join(str(p) for p in self.patch)
        return (
            f"{self.width} network, {self.batch} crops of {crops} per step, learning rate {self.lr:g}, "
            f"validation every {self.val_every} step{'s' if self.val_every != 1 else ''}"
        )


def plan_run(
    c: TrainConfig,
    model: ModelConfig,
    samples: list[np.ndarray],
    device: torch.device,
    val_pixels: int,
    init_source: str | None,
    resumed: bool,
) -> TrainPlan:
    """Resolve crop shape, batch, learning rate and validation cadence once for a run.

    Parameters
    ----------
    c : TrainConfig
        The run's settings, ``auto`` choices settled.
    model : ModelConfig
        The model's configuration (widths and the multiples of its input sizes).
    samples : list of ndarray
        The normalised training images, ``(S, *spatial, C)``.
    device : torch.device
    val_pixels : int
        Pixels of the validation windows.
    init_source : str or None
        Where the starting weights came from (a warm start learns more slowly).
    resumed : bool
        Continuing a model whose optimizer state is restored.

    Returns
    -------
    TrainPlan
    """
    patch = [
        (min(c.patch_for(device), min(s.shape[1 + a] for s in samples)) // m) * m
        for a, m in enumerate(model.arch.multiples)
    ]
    patch = square_plane(patch)
    batch = c.batch_for(device)
    pixels = sum(s.size // s.shape[-1] for s in samples)
    width = next((k for k, v in WIDTHS.items() if v[:2] == (model.enc, model.dec)), "custom")
    return TrainPlan(
        device=device_name(device),
        width=width,
        patch=patch,
        batch=batch,
        lr=c.lr_for(model.enc, warm=init_source is not None, pixels=pixels),
        val_every=c.val_interval(val_pixels, batch * math.prod(patch)),
        warmup=0.0 if resumed else c.warmup,  # Adam's state is restored: no ramp up again
        rampdown=c.rampdown,
        init=init_source,
    )
