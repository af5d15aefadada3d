"""What a training run reports after each step, and its learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TrainProgress", "lr_factor", "run_record"]


@dataclass(frozen=True)
class TrainProgress:
    """One step of training, small enough to send across threads.

    Attributes
    ----------
    step, total : int
        Steps done in this run (total: planned, or estimated from the time limit).
    loss : float
        Training loss of this step.
    val_loss : float or None
        Loss on the fixed validation windows (the same every time), when measured this step.
    noise_params : dict
        Current noise parameters in data units.
    lr : float
    elapsed, eta : float
        Seconds since the start and estimated seconds left.
    skipped : int
        Steps skipped so far because the gradient was not finite.
    done : bool
        Last record of the run.
    kept_step : int or None
        Last record: the step whose weights the model keeps (``keep_best``: the lowest
        validation loss; else the last step).
    """

    step: int
    total: int
    loss: float
    val_loss: float | None
    noise_params: dict
    lr: float
    elapsed: float
    eta: float
    skipped: int = 0
    done: bool = False
    kept_step: int | None = None


def lr_factor(f: float, warmup: float, rampdown: float) -> float:
    """Half-cosine ramp up over the first ``warmup`` and down over the last ``rampdown`` of the budget."""
    f = min(max(f, 0.0), 1.0)
    if warmup > 0 and f < warmup:
        return 0.5 - 0.5 * math.cos(math.pi * f / warmup)
    if rampdown > 0 and f > 1 - rampdown:
        return 0.5 + 0.5 * math.cos(math.pi * (f - (1 - rampdown)) / rampdown)
    return 1.0


def run_record(trainer, checkpoint: bool = False) -> dict:
    """Plain values saved with a :class:`~.trainer.Trainer`'s model: steps, time, losses,
    the kept step, the plan and the ``auto`` choices.

    Parameters
    ----------
    trainer : Trainer
    checkpoint : bool
        A mid-run save, which holds the current weights (not the best).
    """
    t = trainer
    last = t.history[-1] if t.history else None
    return {
        "steps": t.steps_before + t.step,
        "elapsed": t.elapsed_before + t.elapsed,
        "last_loss": None if last is None else last.loss,
        "last_val_loss": next((r.val_loss for r in reversed(t.history) if r.val_loss is not None), None),
        # The weights saved: the lowest validation loss's with keep_best.
        "kept_step": t.steps_before + (t.step if checkpoint else t.kept_step),
        "checkpoint": checkpoint,
        "val_loss": t.final_val_loss,
        "holdout": t.config.holdout,
        "seed": t.config.seed,
        "plan": t.plan.to_dict(),
        "auto": t.choices.to_dict() if t.choices is not None else None,
        # Trained on pairs: how, and the noise measured from them.
        "pair": t.pair.to_dict() if getattr(t, "pair", None) is not None else None,
        # Flat copies of the plan, as earlier model files had them.
        "device": t.plan.device,
        "patch": list(t.plan.patch),
        "batch": t.plan.batch,
        "lr": t.plan.lr,
        "init": t.plan.init,
    }
