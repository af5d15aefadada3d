"""Training on one noisy data set, as a generator of progress records."""

from __future__ import annotations

import math
import threading
import time
import warnings
from dataclasses import replace

import numpy as np
import torch

from ..data import CropSampler, HoldoutPattern, Normalization, split_phases, training_crop
from ..device import device_name, network_precision, resolve_device
from ..errors import SSDNError, setting
from ..nets.model import WIDTHS, SSDNModel
from ..nets.warmstart import warm_start
from ..noise.bayes import marginal_variance, nll_loss, posterior, split_prior
from ..noise.stats import implausible_noise
from .auto import channels_as_images, choose_layout
from .building import model_config, new_model, new_optimizer
from .inputs import check_resumable, check_sizes, prepare_images
from .pairing import pair_setup, resumed_pair_method
from .progress import TrainProgress, lr_factor, run_record
from .settings import TrainConfig, TrainPlan, Tuning
from .validation import ValidationSet, square_plane

__all__ = ["TrainConfig", "TrainPlan", "Tuning", "TrainProgress", "Trainer"]


def _masked_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


class Trainer:
    """Train a model on one noisy data set.

    Parameters
    ----------
    images : ndarray or list of ndarray
        The noisy data; arrays may differ in size.
    axes : str or list of str, optional
        Axes of the arrays (e.g. ``"YX"``, ``"ZYX"``, ``"YXC"``); guessed when omitted.
    config : TrainConfig
    targets : list of ndarray, optional
        Clean images matching ``images`` (``mode="supervised"`` only).
    pair : ndarray or list of ndarray, optional
        A second observation of each image (the other half of even/odd halves, another
        frame), same shapes and axes: the noise is measured from the two, and the network
        learns from both (``config.pair_method``; :mod:`~.pairing`).
    resume : SSDNModel, optional
        Continue training this model (its normalisation and noise model are kept).
    resume_info : dict, optional
        The model file's metadata (optimizer state and steps done) from :func:`load_model`.
    nll : callable, optional
        Per-pixel negative log-likelihood ``nll(noise, y, mu, sx, params)``; default
        :func:`~napari_ssdn.core.noise.bayes.nll_loss` (another one is for ablations).

    Examples
    --------
    >>> trainer = Trainer(noisy, "YX", TrainConfig(iterations=500))
    >>> for record in trainer.run():
    ...     print(record.step, record.loss)
    >>> trainer.save("model.ssdn")
    """

    def __init__(
        self,
        images,
        axes=None,
        config: TrainConfig | None = None,
        targets=None,
        resume=None,
        resume_info=None,
        nll=None,
        pair=None,
    ):
        config = (config or TrainConfig()).validate()
        self.tuning: Tuning = config.tuning
        self.nll = nll or nll_loss
        raw = prepare_images(images, axes, config.ndim)
        #: The pair's noise measurement and method (None without a second observation).
        self.pair = None
        if pair is not None:
            other = prepare_images(pair, axes, config.ndim)
            # A resumed model keeps the way it learns from pairs.
            method = config.pair_method if resume is None else resumed_pair_method(resume)
            self.pair = pair_setup(raw, other, config.ndim, method)
            raw, targets = self.pair.inputs(raw, other)
            if resume is None:
                config = self.pair.config(config)
        self.device = resolve_device(config.device)
        self._stop = threading.Event()
        self.resumed = resume is not None
        if resume is not None:
            if resume.config.splits_channels(raw[0].shape[-1]):
                raw = channels_as_images(raw)
            check_resumable(resume, config, raw[0].shape[-1])
        self.subsample = resume.config.subsample if resume is not None else (config.subsample or 1)
        self.warnings: list = []  # SSDNWarning of this run, for front ends that show them their own way
        #: What ``auto`` settings became, and why (None when resuming: the model's are kept).
        self.choices = None
        if resume is None:
            raw, self.choices = choose_layout(config, raw, self.subsample)
            if self.pair is not None:
                self.choices = replace(self.choices, noise_why=self.pair.noise_why(), blind_why=self.pair.blind_why())
            config = replace(config, noise=self.choices.noise, blind=self.choices.blind_region)
        else:
            config = replace(config, noise=resume.config.noise, blind=resume.config.region)
        self.config = config
        arch = (
            resume.config
            if resume is not None
            else model_config(config, raw[0].shape[-1], self.device, self.subsample, self.choices)
        ).arch
        # Before the noise estimate and the normalisation, which fail obscurely on a sliver of an image.
        check_sizes(
            raw,
            arch.multiples,
            self.subsample,
            config.patch_for(self.device),
            arch.enc == WIDTHS["tiny"][0],
            arch.region if arch.blind else (),
        )
        norm = (
            Normalization(resume.config.offset, resume.config.scale)
            if resume is not None
            else Normalization.fit(raw, config.noise, self.choices.dark_level)
        )
        if resume is None and config.mode == "ssdn":
            message = implausible_noise(config.noise, config.known_noise_params, raw)
            if message:
                self.warnings.append(message)
                warnings.warn(message, stacklevel=2)
        gaps = self._load(raw, norm, targets, axes)
        init_source = (resume_info or {}).get("training", {}).get("init") if resume is not None else None
        if resume is None:
            self.model = self._new_model(gaps)
            init_source = warm_start(self.model, config.init)
        else:
            self.model = resume  # its original start keeps setting the default learning rate
        self.model.to(self.device)
        # A per-image estimator that cannot learn here (frozen noise) keeps its zero output:
        # leaving it out of the steps gives the same losses in less time.
        self.refine = not (config.noise in self.tuning.frozen_noise and self.model.estimator_idle())
        if not self.refine:
            self.model.estimator.requires_grad_(False)
        # Per-image models start every image from its own classical estimate.
        self.anchors = [self.model.image_anchor(s) for s in gaps] if self.model.estimator is not None else None
        del gaps
        self.plan = self._plan(init_source)
        self.optimizer = self._optimizer(resume_info)
        self.rng = np.random.default_rng(config.seed)
        self.sampler = CropSampler(
            self.samples, self.plan.patch, self.rng, augment=True, holdout=self.holdout, measured=self.measured
        )
        self.step = 0
        self.elapsed = 0.0
        #: Lowest validation loss of this run, its step and a copy of the model's state then.
        self.best_val_loss = math.inf
        self.best_step: int | None = None
        self._best_state: dict | None = None
        self._validated_step: int | None = None
        self._last_val_loss: float | None = None
        #: Validation loss of the model as the run left it (None until the run ends).
        self.final_val_loss: float | None = None
        self.history: list[TrainProgress] = []

    # -- construction -------------------------------------------------------------------
    def _load(self, raw: list[np.ndarray], norm: Normalization, targets, axes) -> list[np.ndarray]:
        """Normalised samples, masks of measured pixels and targets; returns the samples with
        missing pixels as NaN, which the noise statistics of construction skip."""
        self.sample_crop = training_crop(raw[0][0], self.config.ndim)  # kept in the model file
        # Sub-images first, so the noise estimate, crops and validation see what the network sees.
        raw = [split_phases(s, self.subsample, crop=True) for s in raw]
        self.norm = norm
        self.samples = [norm(np.nan_to_num(s, nan=norm.offset, posinf=norm.offset, neginf=norm.offset)) for s in raw]
        # Missing pixels (NaN or infinite in any channel) enter the network as zeros but stay
        # out of the loss, the validation and the noise estimate: a masked area is not a flat,
        # noise-free one. None when every pixel was measured.
        measured = [np.isfinite(s).all(-1) for s in raw]
        self.measured = None if all(m.all() for m in measured) else measured
        self.holdout = HoldoutPattern(self.config.ndim, self.config.holdout) if self.config.holdout > 0 else None
        self.targets = None
        if self.config.mode == "supervised":
            if targets is None:
                raise SSDNError(f"{setting('mode', 'supervised')} needs clean targets matching the images")
            self.targets = [
                norm(split_phases(t, self.subsample, crop=True))
                for t in (targets if self.pair is not None else prepare_images(targets, axes, self.config.ndim))
            ]
        if self.measured is None:
            return self.samples
        return [np.where(m[..., None], s, np.float32(np.nan)) for s, m in zip(self.samples, self.measured, strict=True)]

    def _new_model(self, gaps: list[np.ndarray]) -> SSDNModel:
        """A new model for the data, its learned noise parameters at their classical estimate."""
        base = model_config(self.config, self.samples[0].shape[-1], self.device, self.subsample, self.choices)
        return new_model(self.config, base, gaps, self.norm, self.tuning)

    def _plan(self, init_source: str | None) -> TrainPlan:
        """Resolve crop shape, batch, learning rate and validation cadence once for the run."""
        c = self.config
        mults = self.model.config.arch.multiples
        patch = [
            (min(c.patch_for(self.device), min(s.shape[1 + a] for s in self.samples)) // m) * m
            for a, m in enumerate(mults)
        ]
        patch = square_plane(patch)
        self.val = ValidationSet.build(
            self.samples,
            mults,
            c.val_side,
            self.tuning.val_pixels,
            self.targets,
            self.holdout,
            self.measured,
            self._anchor if self.anchors is not None else None,
        )
        batch = c.batch_for(self.device)
        pixels = sum(s.size // s.shape[-1] for s in self.samples)
        width = next(
            (k for k, v in WIDTHS.items() if v[:2] == (self.model.config.enc, self.model.config.dec)), "custom"
        )
        return TrainPlan(
            device=device_name(self.device),
            width=width,
            patch=patch,
            batch=batch,
            lr=c.lr_for(self.model.config.enc, warm=init_source is not None, pixels=pixels),
            val_every=c.val_interval(self.val.pixels, batch * math.prod(patch)),
            warmup=0.0 if self.resumed else c.warmup,  # Adam's state is restored: no ramp up again
            rampdown=c.rampdown,
            init=init_source,
        )

    def _optimizer(self, resume_info: dict | None) -> torch.optim.Optimizer:
        training = (resume_info or {}).get("training", {})
        self.steps_before = int(training.get("steps", 0))
        self.elapsed_before = float(training.get("elapsed", 0.0))
        return new_optimizer(self.model, self.plan.lr, resume_info)

    @property
    def init_source(self) -> str | None:
        """Where the starting weights came from (``generic``, a model file) or None."""
        return self.plan.init

    @property
    def patch_shape(self) -> tuple[int, ...]:
        return self.plan.patch

    @property
    def lr(self) -> float:
        return self.plan.lr

    # -- the loss -----------------------------------------------------------------------
    def _anchor(self, drawn: list[tuple[int, int]]) -> torch.Tensor | None:
        """Per-image models: the classical-estimate offsets of the images the crops came from."""
        if self.anchors is None:
            return None
        return torch.stack([self.anchors[i][k] for i, k in drawn])

    def _pixel_losses(
        self,
        y: torch.Tensor,
        target: torch.Tensor | None = None,
        weighted: bool = True,
        anchor: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple | None]:
        """The loss of every pixel ``(N, *spatial)`` and (``ssdn`` mode) the prior mean,
        prior covariance and noise parameters."""
        model = self.model
        cfg = model.config
        with network_precision(self.device, self.config.mixed_precision):
            out = model(y)
        if cfg.mode != "ssdn":
            ref = target if cfg.mode == "supervised" else y
            return (out.float() - ref).square().mean(1), None
        mu, sx = split_prior(out, cfg.channels)
        params = model.noise_params(y, anchor, self.refine)
        nll = self.nll(cfg.noise, y.movedim(1, -1), mu, sx, params)
        if weighted and self.tuning.nll_beta:
            nll = nll * marginal_variance(cfg.noise, mu, sx, params).detach() ** self.tuning.nll_beta
        return nll, (mu, sx, params)

    @torch.no_grad()
    def validate(self) -> float:
        """Loss on the fixed validation windows, over their held-out pixels (all pixels
        without hold-out), unweighted so that values compare across steps and with the
        paper; NaN when the prior or posterior is not finite."""
        was = self.model.training
        self.model.eval()
        total, count = 0.0, 0.0
        try:
            for y, target, anchor, held in self.val.batches(self.device, self.plan.batch * math.prod(self.plan.patch)):
                losses, prior = self._pixel_losses(y, target, weighted=False, anchor=anchor)
                weights = None if held is None else held.to(losses.dtype)
                total += float(losses.sum() if weights is None else (losses * weights).sum())
                count += losses.numel() if weights is None else float(weights.sum())
                if prior is not None:
                    mean, _ = posterior(self.model.config.noise, y.movedim(1, -1), *prior)
                    if not bool(torch.isfinite(mean).all()):
                        return float("nan")
        finally:
            self.model.train(was)
        return total / max(count, 1.0)

    # -- the loop -----------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask :meth:`run` to finish after the current step (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def run(self, checkpoint=None, checkpoint_every: float = 300.0):
        """Train, yielding a :class:`TrainProgress` after every step.

        Stops when the budget is spent or :meth:`request_stop` is called; closing the
        generator also stops it. However the run ends (budget, stop, closed generator,
        error), the weights it holds are validated before the best are chosen: with
        ``keep_best`` the model keeps the weights of the lowest validation loss (see
        :attr:`TrainProgress.kept_step`).

        Parameters
        ----------
        checkpoint : path-like, optional
            Model file written (atomically, with the optimizer state, so ``resume``
            continues it) every ``checkpoint_every`` seconds of training, so that a run
            killed by the system loses at most that much.
        checkpoint_every : float
            Seconds between checkpoints.
        """
        self.model.train()
        # Learned noise parameters (log scale) move faster than the weights, so that minutes
        # refine the classical estimate.
        base_lrs = [self.plan.lr, self.tuning.noise_lr_factor * self.plan.lr, self.plan.lr]
        t0 = time.perf_counter()
        saved = t0
        try:
            for rec in self._steps(t0, base_lrs):
                if checkpoint is not None and not rec.done and time.perf_counter() - saved >= checkpoint_every:
                    self.save(checkpoint, checkpoint=True)
                    saved = time.perf_counter()
                yield rec
        finally:
            if not (self.history and self.history[-1].done):
                self._finish()  # closed, or an error: validate what we have, then keep the best
            self.model.eval()

    def _steps(self, t0: float, base_lrs: list[float]):
        skipped = 0
        while True:
            elapsed = self._clock(t0)
            f = self.config.budget_fraction(self.step, elapsed)
            if self.step > 0 and (f >= 1.0 or self._stop.is_set()):
                # The budget ran out, or a stop came, between two steps: validate the last step.
                self.elapsed = elapsed
                self._finish()
                yield self._record(self.history[-1].loss, skipped, elapsed, f, validated=True, done=True)
                return
            loss, finite = self._train_step(f, elapsed, base_lrs)
            skipped += not finite
            self.step += 1
            self.elapsed = elapsed = self._clock(t0)
            f = self.config.budget_fraction(self.step, elapsed)
            last = f >= 1.0 or self._stop.is_set()
            validated = self.step % self.plan.val_every == 0 or last or self.step == 1
            if validated:
                self._score()
            if last:
                self._finish()
            yield self._record(loss, skipped, elapsed, f, validated, last)
            if last:
                return

    def _train_step(self, f: float, elapsed: float, base_lrs: list[float]) -> tuple[float, bool]:
        """One optimisation step at budget fraction ``f``; the loss and whether it was applied."""
        factor = lr_factor(
            f + 0.5 / max(self.config.planned_steps(self.step, elapsed), 1), self.plan.warmup, self.plan.rampdown
        )
        for g, base in zip(self.optimizer.param_groups, base_lrs, strict=True):
            g["lr"] = base * factor
        frozen = self.model.config.noise in self.tuning.frozen_noise
        if frozen or (f < self.tuning.noise_freeze and not self.resumed):
            for g in self.optimizer.param_groups[1:]:
                g["lr"] = 0.0
        crops = self.sampler.sample(self.plan.batch, *([self.targets] if self.targets is not None else []))
        y = torch.from_numpy(crops[0]).to(self.device)
        target = torch.from_numpy(crops[1]).to(self.device) if len(crops) > 1 else None
        kept = None if self.sampler.kept is None else torch.from_numpy(self.sampler.kept).to(self.device)
        losses, _ = self._pixel_losses(y, target, anchor=self._anchor(self.sampler.drawn))
        loss = _masked_mean(losses, kept)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        # One host-device sync for the whole check, not one per tensor: on a GPU each sync
        # waits for all queued work, and a small step is only milliseconds.
        norms = torch._foreach_norm(grads) if grads else []
        finite = self._all_finite([loss.detach().float(), *[n.float() for n in norms]])
        if finite:
            self.optimizer.step()
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
        val_loss = self.validate()
        self._validated_step, self._last_val_loss = self.step, val_loss
        if self.config.keep_best and val_loss < self.best_val_loss:  # NaN is never best
            self.best_val_loss, self.best_step = val_loss, self.step
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return val_loss

    def _finish(self) -> None:
        """End of the run: score the last step if it was not, go back to the best weights."""
        if self.step == 0:
            return
        try:
            if self._validated_step != self.step:
                self._score()
            restored = self._restore_best()
            self.final_val_loss = self.validate() if restored else self._last_val_loss
        except Exception:  # noqa: BLE001 - ending on an error: keep the best weights we know of
            self._restore_best()

    def _record(
        self, loss: float, skipped: int, elapsed: float, f: float, validated: bool, done: bool
    ) -> TrainProgress:
        rec = TrainProgress(
            step=self.step,
            total=self.config.planned_steps(self.step, elapsed),
            loss=loss,
            val_loss=(self.final_val_loss if done else self._last_val_loss) if validated else None,
            noise_params=self.model.noise_params_data(),
            lr=float(self.optimizer.param_groups[0]["lr"]),
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
        return self.best_step if self.config.keep_best and self.best_step is not None else self.step

    def _restore_best(self) -> bool:
        """Go back to the weights of the lowest validation loss (``keep_best``); whether it did."""
        restore = self._best_state is not None and self.best_step != self.step and self.config.keep_best
        if restore:
            self.model.load_state_dict(self._best_state)
        # Restored once: a step taken afterwards (a resumed run) must not be undone.
        self._best_state = None
        return restore

    # -- results ------------------------------------------------------------------------
    def train_state(self, checkpoint: bool = False) -> dict:
        """Plain values saved with the model (:func:`~.progress.run_record`); ``checkpoint``:
        a mid-run save, which holds the current weights (not the best)."""
        return run_record(self, checkpoint)

    def save(self, path, checkpoint: bool = False) -> None:
        """Write the model, optimizer and training state to ``path`` (atomic)."""
        from ..modelfile import save_model

        save_model(
            self.model,
            path,
            optimizer_state=self.optimizer.state_dict(),
            train_state=self.train_state(checkpoint),
            sample=self.sample_crop,
        )
