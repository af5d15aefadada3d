"""Training on one noisy data set, as a generator of progress records."""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import replace

import numpy as np
import torch

from ..data import CropSampler, HoldoutPattern, Normalization, split_phases, training_crop
from ..device import network_precision, resolve_device
from ..errors import SSDNError, setting
from ..nets.model import WIDTHS, SSDNModel
from ..nets.warmstart import warm_start
from ..noise.bayes import marginal_variance, nll_loss, posterior, split_prior
from ..noise.stats import implausible_noise
from .auto import channels_as_images, choose_layout
from .building import model_config, new_model, new_optimizer
from .inputs import check_resumable, check_sizes, prepare_images
from .loop import TrainingLoop
from .pairing import pair_setup, resumed_pair_method
from .plan import TrainPlan, plan_run
from .progress import TrainProgress, run_record
from .settings import TrainConfig, Tuning
from .validation import ValidationSet

__all__ = ["TrainConfig", "TrainPlan", "Tuning", "TrainProgress", "Trainer"]


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

    #: The loop that :meth:`run` drives (a distributed run's ranks agree on its course).
    loop_class = TrainingLoop

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
        self._stop = threading.Event()
        self.resumed = resume is not None
        self.warnings: list = []  # SSDNWarning of this run, for front ends that show them their own way
        raw, targets, config = self._pair_up(images, pair, axes, config, targets, resume)
        self.device = resolve_device(config.device)
        raw = self._settle(raw, config, resume)
        norm = self._normalization(raw, resume)
        gaps = self._load(raw, norm, targets, axes)
        init_source = self._start_model(gaps, resume, resume_info)
        del gaps
        self.val = self._validation_set()
        #: Crop shape, batch, learning rate and validation cadence, resolved once for the run.
        self.plan = plan_run(
            self.config, self.model.config, self.samples, self.device, self.val.pixels, init_source, self.resumed
        )
        self.optimizer = self._optimizer(resume_info)
        self.rng = np.random.default_rng(self.config.seed)
        self.sampler = CropSampler(
            self.samples, self.plan.patch, self.rng, augment=True, holdout=self.holdout, measured=self.measured
        )
        self.loop = self.loop_class(self)

    # -- construction -------------------------------------------------------------------
    def _pair_up(self, images, pair, axes, config: TrainConfig, targets, resume):
        """The images as arrays; with a second observation, what the network learns from
        and the settings the pair implies. Returns the images, targets and settings."""
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
        return raw, targets, config

    def _settle(self, raw: list[np.ndarray], config: TrainConfig, resume) -> list[np.ndarray]:
        """Settle the subsampling, the ``auto`` choices and :attr:`config` (a resumed model
        keeps its own); returns the images laid out as the network takes them."""
        if resume is not None:
            if resume.config.splits_channels(raw[0].shape[-1]):
                raw = channels_as_images(raw)
            check_resumable(resume, config, raw[0].shape[-1])
        self.subsample = resume.config.subsample if resume is not None else (config.subsample or 1)
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
        return raw

    def _normalization(self, raw: list[np.ndarray], resume) -> Normalization:
        """Check the image sizes, then fit (or, resuming, take the model's) normalisation."""
        config = self.config
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
                warnings.warn(message, stacklevel=3)  # the caller of Trainer(...)
        return norm

    def _start_model(self, gaps: list[np.ndarray], resume, resume_info: dict | None) -> str | None:
        """The model on its device (new, warm-started or resumed); returns where its
        starting weights came from."""
        init_source = (resume_info or {}).get("training", {}).get("init") if resume is not None else None
        if resume is None:
            self.model = self._new_model(gaps)
            init_source = warm_start(self.model, self.config.init)
        else:
            self.model = resume  # its original start keeps setting the default learning rate
        self.model.to(self.device)
        # A per-image estimator that cannot learn here (frozen noise) keeps its zero output:
        # leaving it out of the steps gives the same losses in less time.
        self.refine = not (self.config.noise in self.tuning.frozen_noise and self.model.estimator_idle())
        if not self.refine:
            self.model.estimator.requires_grad_(False)
        # Per-image models start every image from its own classical estimate.
        self.anchors = [self.model.image_anchor(s) for s in gaps] if self.model.estimator is not None else None
        return init_source

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

    def _validation_set(self) -> ValidationSet:
        """The fixed windows that every validation scores."""
        return ValidationSet.build(
            self.samples,
            self.model.config.arch.multiples,
            self.config.val_side,
            self.tuning.val_pixels,
            self.targets,
            self.holdout,
            self.measured,
            self._anchor if self.anchors is not None else None,
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
        return self.loop.run(checkpoint, checkpoint_every)

    # The state of the run, kept by the loop.
    @property
    def step(self) -> int:
        """Steps done in this run."""
        return self.loop.step

    @property
    def elapsed(self) -> float:
        """Seconds of training in this run."""
        return self.loop.elapsed

    @property
    def history(self) -> list[TrainProgress]:
        """The progress records of this run."""
        return self.loop.history

    @property
    def best_val_loss(self) -> float:
        """Lowest validation loss of this run (inf before the first)."""
        return self.loop.best_val_loss

    @property
    def best_step(self) -> int | None:
        """The step of :attr:`best_val_loss`."""
        return self.loop.best_step

    @property
    def final_val_loss(self) -> float | None:
        """Validation loss of the model as the run left it (None until the run ends)."""
        return self.loop.final_val_loss

    @property
    def kept_step(self) -> int:
        """The step (of this run) whose weights the model holds at the end of the run."""
        return self.loop.kept_step

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
