"""The optimisation loop of a prepared :class:`~.trainer.Trainer`: steps, validation, the best weights."""

from __future__ import annotations

import math
import time

import torch

from ..alloc import reuse_freed_memory
from .progress import TrainProgress, lr_factor

__all__ = ["TrainingLoop"]


def _masked_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


class TrainingLoop:
    """Train the model of a prepared trainer, step by step, and keep the state of the run.

    The trainer holds what the run works on (model, optimizer, crop sampler, plan, the
    loss :meth:`~.trainer.Trainer._pixel_losses` and :meth:`~.trainer.Trainer.validate`);
    it is read afresh at every step, so that what replaces one of them (a test's crop feed)
    takes effect. A distributed run subclasses the hooks :meth:`_clock`,
    :meth:`_all_finite`, :meth:`_train_step` and :meth:`_steps`.

    Parameters
    ----------
    trainer : Trainer

    Attributes
    ----------
    step : int
        Steps done in this run.
    elapsed : float
        Seconds of training in this run.
    best_val_loss : float
        Lowest validation loss of this run (inf before the first).
    best_step : int or None
        The step of ``best_val_loss``.
    final_val_loss : float or None
        Validation loss of the model as the run left it (None until the run ends).
    history : list of TrainProgress
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.step = 0
        self.elapsed = 0.0
        self.best_val_loss = math.inf
        self.best_step: int | None = None
        self._best_state: dict | None = None
        self._validated_step: int | None = None
        self._last_val_loss: float | None = None
        self.final_val_loss: float | None = None
        self.history: list[TrainProgress] = []

    def run(self, checkpoint=None, checkpoint_every: float = 300.0):
        """Train, yielding a :class:`TrainProgress` after every step (see :meth:`~.trainer.Trainer.run`)."""
        t = self.trainer
        t.model.train()
        # Learned noise parameters (log scale) move faster than the weights, so that minutes
        # refine the classical estimate.
        base_lrs = [t.plan.lr, t.tuning.noise_lr_factor * t.plan.lr, t.plan.lr]
        t0 = time.perf_counter()
        saved = t0
        with reuse_freed_memory():
            try:
                for rec in self._steps(t0, base_lrs):
                    if checkpoint is not None and not rec.done and time.perf_counter() - saved >= checkpoint_every:
                        t.save(checkpoint, checkpoint=True)
                        saved = time.perf_counter()
                    yield rec
            finally:
                if not (self.history and self.history[-1].done):
                    self._finish()  # closed, or an error: validate what we have, then keep the best
                t.model.eval()

    def _steps(self, t0: float, base_lrs: list[float]):
        t = self.trainer
        skipped = 0
        while True:
            elapsed = self._clock(t0)
            f = t.config.budget_fraction(self.step, elapsed)
            if self.step > 0 and (f >= 1.0 or t.stop_requested):
                # The budget ran out, or a stop came, between two steps: validate the last step.
                self.elapsed = elapsed
                self._finish()
                yield self._record(self.history[-1].loss, skipped, elapsed, f, validated=True, done=True)
                return
            loss, finite = self._train_step(f, elapsed, base_lrs)
            skipped += not finite
            self.step += 1
            self.elapsed = elapsed = self._clock(t0)
            f = t.config.budget_fraction(self.step, elapsed)
            last = f >= 1.0 or t.stop_requested
            validated = self.step % t.plan.val_every == 0 or last or self.step == 1
            if validated:
                self._score()
            if last:
                self._finish()
            yield self._record(loss, skipped, elapsed, f, validated, last)
            if last:
                return

    def _train_step(self, f: float, elapsed: float, base_lrs: list[float]) -> tuple[float, bool]:
        """One optimisation step at budget fraction ``f``; the loss and whether it was applied."""
        t = self.trainer
        factor = lr_factor(f + 0.5 / max(t.config.planned_steps(self.step, elapsed), 1), t.plan.warmup, t.plan.rampdown)
        for g, base in zip(t.optimizer.param_groups, base_lrs, strict=True):
            g["lr"] = base * factor
        frozen = t.model.config.noise in t.tuning.frozen_noise
        if frozen or (f < t.tuning.noise_freeze and not t.resumed):
            for g in t.optimizer.param_groups[1:]:
                g["lr"] = 0.0
        sampler = t.sampler
        crops = sampler.sample(t.plan.batch, *([t.targets] if t.targets is not None else []))
        y = torch.from_numpy(crops[0]).to(t.device)
        target = torch.from_numpy(crops[1]).to(t.device) if len(crops) > 1 else None
        kept = None if sampler.kept is None else torch.from_numpy(sampler.kept).to(t.device)
        losses, _ = t._pixel_losses(y, target, anchor=t._anchor(sampler.drawn))
        loss = _masked_mean(losses, kept)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for g in t.optimizer.param_groups for p in g["params"] if p.grad is not None]
        # One host-device sync for the whole check, not one per tensor: on a GPU each sync
        # waits for all queued work, and a small step is only milliseconds.
        norms = torch._foreach_norm(grads) if grads else []
        finite = self._all_finite([loss.detach().float(), *[n.float() for n in norms]])
        if finite:
            t.optimizer.step()
        return float(loss.detach()), finite

    # Hooks of a distributed run (core/training/distributed.py), where rank 0 decides and all agree.
    def _clock(self, t0: float) -> float:
        """Seconds since ``t0``: what the time budget and the learning-rate schedule follow."""
        return time.perf_counter() - t0

    def _all_finite(self, values: list[torch.Tensor]) -> bool:
        """Whether the loss and gradient norms ``values`` are all finite (one sync)."""
        return bool(torch.isfinite(torch.stack(values).sum()))

    def _score(self) -> float:
        """Validate the current weights and remember them if they are the best so far."""
        t = self.trainer
        val_loss = t.validate()
        self._validated_step, self._last_val_loss = self.step, val_loss
        if t.config.keep_best and val_loss < self.best_val_loss:  # NaN is never best
            self.best_val_loss, self.best_step = val_loss, self.step
            self._best_state = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
        return val_loss

    def _finish(self) -> None:
        """End of the run: score the last step if it was not, go back to the best weights."""
        if self.step == 0:
            return
        try:
            if self._validated_step != self.step:
                self._score()
            restored = self._restore_best()
            self.final_val_loss = self.trainer.validate() if restored else self._last_val_loss
        except Exception:  # noqa: BLE001 - ending on an error: keep the best weights we know of
            self._restore_best()

    def _record(
        self, loss: float, skipped: int, elapsed: float, f: float, validated: bool, done: bool
    ) -> TrainProgress:
        t = self.trainer
        rec = TrainProgress(
            step=self.step,
            total=t.config.planned_steps(self.step, elapsed),
            loss=loss,
            val_loss=(self.final_val_loss if done else self._last_val_loss) if validated else None,
            noise_params=t.model.noise_params_data(),
            lr=float(t.optimizer.param_groups[0]["lr"]),
            elapsed=elapsed,
            eta=max(0.0, elapsed * (1 - f) / max(f, 1e-9)),
            skipped=skipped,
            done=done,
            kept_step=self.kept_step if done else None,
        )
        self.history.append(rec)
        return rec

    @property
    def kept_step(self) -> int:
        """The step (of this run) whose weights the model holds at the end of the run."""
        return self.best_step if self.trainer.config.keep_best and self.best_step is not None else self.step

    def _restore_best(self) -> bool:
        """Go back to the weights of the lowest validation loss (``keep_best``); whether it did."""
        restore = self._best_state is not None and self.best_step != self.step and self.trainer.config.keep_best
        if restore:
            self.trainer.model.load_state_dict(self._best_state)
        # Restored once: a step taken afterwards (a resumed run) must not be undone.
        self._best_state = None
        return restore
