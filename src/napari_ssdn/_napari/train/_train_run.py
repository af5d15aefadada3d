"""One training run, kept apart from the widget that started it.

The run owns its stop flag, its worker and its result. Closing the Train widget (or
napari removing its dock) calls :meth:`TrainRun.shutdown`: stop at the next step, wait
for the worker to end, and register the model where the Denoise widget finds it, as a
finished run's model is.
"""

from __future__ import annotations

import logging
import threading

from .._common import channels_of
from .._jobs import TrainResult, train_job
from .._model_registry import ModelRegistry, SessionModel
from .._workers import SHUTDOWN_WAIT, make_worker  # SHUTDOWN_WAIT: how long closing waits for a step

__all__ = ["TrainRun", "SHUTDOWN_WAIT", "resume_problem", "ending", "EARLY_STOP", "FULL_RUN"]

log = logging.getLogger(__name__)

#: A model with fewer steps than this share of its run's plan is called undertrained: the
#: learning rate never ramped down, and such weights denoise visibly worse.
EARLY_STOP = 0.25
#: The plan a short run is measured against: the Budget field's default of 300 steps, so
#: that a run that finished its budget in a few steps (0.6 minutes on a busy CPU: 4 steps)
#: is undertrained by the same share as one stopped early.
FULL_RUN = 300


class TrainRun:
    """Train on a layer's data in a worker thread (see :func:`~napari_ssdn._napari._jobs.train_job`).

    Parameters
    ----------
    source_name : str
        Name of the layer trained on.
    registry : ModelRegistry
        Where the model goes, as ``"run <n> (<source_name>)"`` (``n`` counts this session's
        runs), or ``"run <n> (<source_name>, continues run <m>)"`` for a resumed model.
    resumes : str, optional
        Name of the model the run continues.
    """

    def __init__(self, source_name: str, registry: ModelRegistry, resumes: str | None = None):
        self.source_name = source_name
        self.registry = registry
        self.resumes = resumes
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.result: TrainResult | None = None
        self.entry: SessionModel | None = None
        self.worker = None

    def model_name(self, number: int) -> str:
        """The name the run's model is kept under: each run its own."""
        given = f", continues {self.resumes.split(' (')[0]}" if self.resumes else ""
        return f"run {number} ({self.source_name}{given})"

    def make_worker(self, data, request, crop=None, resume=None, resume_info=None, pair=None):
        """A superqt worker (not started) running the job (``pair``: a second observation of
        ``data``)."""
        self.worker = make_worker(self._job, data, request, crop, resume, resume_info, pair)
        return self.worker

    def _job(self, data, request, crop, resume, resume_info, pair):
        try:
            self.result = yield from train_job(data, request, self.stop, crop, resume, resume_info, pair)
            return self.result
        finally:
            self.ended.set()

    def keep(self) -> SessionModel | None:
        """Register the run's model (once); None while it has none."""
        if self.entry is None and self.result is not None:
            r = self.result
            name = self.model_name(self.registry.next_run())
            self.entry = self.registry.add(SessionModel(name, r.model, r.info, "trained"))
        return self.entry

    def shutdown(self, wait: float = SHUTDOWN_WAIT) -> bool:
        """Stop after the current step, wait up to ``wait`` seconds for the worker to end and
        keep the model. Returns whether it ended in time (if not, the model is kept when it does)."""
        self.stop.set()
        if self.worker is None:
            return True
        if self.ended.wait(wait):
            self.keep()
            return True
        log.warning(
            "napari-ssdn: training still busy %.0f s after the widget closed; its model is kept when it ends", wait
        )
        self.worker.returned.connect(lambda *_: self.keep())
        return False


def resume_problem(entry: SessionModel, layer_name: str, shape: tuple, axes: str) -> str | None:
    """Why ``entry`` cannot resume on a layer of ``shape`` and ``axes`` (None when it can)."""
    have = channels_of(shape, axes)
    if entry.model.config.accepts_channels(have):
        return None
    return (
        f"the model {entry.name!r} has {entry.channels} channel(s) but layer {layer_name!r} has {have} "
        f"(axes {axes!r}); resume on data of the same kind or press Start to train a new model"
    )


def ending(result: TrainResult, planned: int) -> tuple[str, bool]:
    """The status line for a run that ended with ``result`` after planning ``planned`` steps,
    and whether it warns: a model with fewer steps than :data:`EARLY_STOP` of the larger of
    its plan and :data:`FULL_RUN` is undertrained, however the run ended."""
    total = int(result.info.get("training", {}).get("steps", result.steps) or 0)
    done, how = result.steps, "stopped" if result.stopped else "finished"
    remedy = (
        "Resume continues it; for a useful model give a longer budget, fewer threads on a busy CPU "
        "(Advanced settings: Threads) or the GPU (Device). Denoising with it now gives a rough result."
    )
    if result.stopped and planned and done < EARLY_STOP * planned:
        return (
            f"Training stopped at step {done} of about {planned} planned ({100 * done / planned:.0f} %): the model "
            f"is undertrained. {remedy}",
            True,
        )
    if total < EARLY_STOP * max(planned, FULL_RUN):
        return (
            f"Training {how} after only {total} step{'s' if total != 1 else ''} (under {EARLY_STOP * FULL_RUN:.0f}, "
            f"a quarter of a {FULL_RUN}-step run): the model is undertrained. {remedy}",
            True,
        )
    return f"Training {how}. Save the model, resume, or denoise with it.", False
