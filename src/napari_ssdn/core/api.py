"""The one-call form of training: run a :class:`~napari_ssdn.core.training.trainer.Trainer` to the
end of its budget."""

from __future__ import annotations

from dataclasses import replace

from .nets.model import SSDNModel
from .training.settings import TrainConfig
from .training.trainer import Trainer

__all__ = ["train"]


def train(images, axes=None, config: TrainConfig | None = None, **kwargs) -> SSDNModel:
    """Train to the end of the budget and return the model (see :class:`Trainer`).

    Parameters
    ----------
    images : ndarray or list of ndarray
        The noisy data: one image, stack or volume, or several of the same channels.
    axes : str or list of str, optional
        Their axes; guessed from the shapes if omitted.
    config : TrainConfig, optional
        The settings (defaults: everything read from the data).
    **kwargs
        Keyword arguments not taken by :class:`Trainer` update ``config``, e.g.
        ``train(img, "YX", iterations=500, noise_params={"sigma": 25})``.

    Returns
    -------
    SSDNModel
        The model of the kept step (the lowest held-out validation loss).
    """
    trainer_kw = {k: kwargs.pop(k) for k in ("targets", "resume", "resume_info", "nll") if k in kwargs}
    config = replace(config or TrainConfig(), **kwargs)
    trainer = Trainer(images, axes, config, **trainer_kw)
    for _ in trainer.run():
        pass
    return trainer.model
