"""What the widgets run in worker threads: plain data in, small records out.

Nothing here touches Qt, napari layers or the viewer. torch is imported inside the job
functions only, so building a widget stays torch-free.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrainRequest", "TrainUpdate", "TrainResult", "train_job", "denoise_job", "device_label_job"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRequest:
    """A frozen snapshot of the Train widget's settings (keyword arguments of ``TrainConfig``).

    Attributes
    ----------
    axes : str
        Axes of the data (e.g. ``"YX"``, ``"TYX"``, ``"YXC"``).
    config : dict
        Keyword arguments of :class:`napari_ssdn.core.TrainConfig`.
    preview_every : float
        Seconds between preview refreshes.
    threads : int, optional
        CPU threads of torch; None: the cores free when the run starts
        (:func:`~napari_ssdn.core.device.choose_threads`).
    """

    axes: str
    config: dict
    preview_every: float = 3.0
    threads: int | None = None


@dataclass(frozen=True)
class TrainUpdate:
    """One message from the training worker.

    Attributes
    ----------
    progress : TrainProgress or None
        The step just done.
    preview : ndarray or None
        Posterior mean of the preview crop ``(Y, X, C)``, when refreshed.
    preview_plane : dict or None
        The plane the preview was computed on (index per non-spatial axis).
    device : str or None
        Name of the device in use (first message only).
    steps_before : int
        Steps done before this run (resumed training).
    choices : dict or None
        What the run uses for the noise model and the blind region, and why
        (:meth:`DataChoices.to_dict <napari_ssdn.core.training.auto.DataChoices.to_dict>`; first message only).
    warnings : tuple of SSDNWarning
        What the user should check about the settings, e.g. a given noise level larger
        than the data's range (first message only).
    """

    progress: object = None
    preview: np.ndarray | None = None
    preview_plane: dict | None = None
    device: str | None = None
    steps_before: int = 0
    choices: dict | None = None
    warnings: tuple = ()


@dataclass
class TrainResult:
    """What a training run leaves: the model and its model-file style metadata."""

    model: object
    info: dict = field(default_factory=dict)
    stopped: bool = False
    steps: int = 0


def train_job(
    data: np.ndarray,
    request: TrainRequest,
    stop: threading.Event,
    crop: np.ndarray | None = None,
    resume=None,
    resume_info: dict | None = None,
    pair: np.ndarray | None = None,
):
    """Train on ``data``, yielding :class:`TrainUpdate` records; return a :class:`TrainResult`.

    Parameters
    ----------
    data : ndarray
        The noisy data, read-only.
    request : TrainRequest
    stop : threading.Event
        Set from the main thread to stop after the current step; the model is kept.
    crop : ndarray or PreviewSource, optional
        A ``(Y, X, C)`` crop of ``data`` whose posterior mean is sent every
        ``request.preview_every`` seconds and at the end; or a
        :class:`~napari_ssdn._napari.train._preview.PreviewSource`, read before each preview,
        whose target the main thread moves to the plane the viewer shows.
    resume : SSDNModel, optional
        Continue training a copy of this model.
    resume_info : dict, optional
        Its metadata (``training`` state, ``optimizer`` state).
    pair : ndarray, optional
        A second observation of ``data`` (the other even/odd half, another frame), read-only.
    """
    from ..core.device import threads_for_run

    with threads_for_run(request.threads):  # this worker's count, torch's own again after the run
        return (yield from _guard(_train(data, request, stop, crop, resume, resume_info, pair), "training"))


def _guard(gen, what: str):
    """Re-raise unexpected failures as SSDNError with a remedy (napari shows it as a notification)."""
    from ..core.errors import SSDNError, setting

    try:
        return (yield from gen)
    except SSDNError:
        raise
    except MemoryError:
        raise SSDNError(f"{what} ran out of memory; use a smaller patch, batch or width, or a smaller image") from None
    except Exception as exc:  # noqa: BLE001 - anything else: say what happened and what to try
        log.exception("napari-ssdn %s failed", what)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "out of memory" in msg.lower():
            raise SSDNError(
                f"{what} ran out of GPU memory ({msg}); use a smaller patch/batch/width or {setting('device', 'cpu')}"
            ) from exc
        raise SSDNError(
            f"{what} failed ({type(exc).__name__}: {msg}); "
            f"check the axes and settings, or try {setting('device', 'cpu')}"
        ) from exc


def _train(data, request, stop, crop, resume, resume_info, pair=None):
    import copy

    from ..core import TrainConfig, Trainer
    from ..core.device import device_name, use_threads

    threads = use_threads(request.threads)  # in this thread, the one that runs the steps
    config = TrainConfig(**request.config)
    if resume is not None:
        resume = copy.deepcopy(resume)  # the session's copy stays usable while this one trains
    trainer = Trainer(data, request.axes, config, resume=resume, resume_info=resume_info, pair=pair)
    if stop.is_set():
        trainer.request_stop()
    yield TrainUpdate(
        device=device_name(trainer.device, threads),
        steps_before=trainer.steps_before,
        choices=_choices(trainer),
        warnings=tuple(trainer.warnings),
    )
    last_preview = time.perf_counter()
    steps = trainer.run()
    while True:
        # Forward a stop before asking for the next step, so no step starts after Stop.
        if stop.is_set():
            trainer.request_stop()
        try:
            rec = next(steps)
        except StopIteration:
            break
        preview = None
        now = time.perf_counter()
        plane = None
        if crop is not None and (rec.done or now - last_preview >= request.preview_every):
            preview, plane = _preview(trainer, crop)
            last_preview = time.perf_counter()
        yield TrainUpdate(progress=rec, preview=preview, preview_plane=plane, steps_before=trainer.steps_before)
    if crop is not None and not (trainer.history and trainer.history[-1].done):
        preview, plane = _preview(trainer, crop)
        yield TrainUpdate(preview=preview, preview_plane=plane, steps_before=trainer.steps_before)
    info = {
        "training": trainer.train_state(),
        "optimizer": trainer.optimizer.state_dict(),
        "noise_params": trainer.model.noise_params_data(),
        "sample": trainer.sample_crop,
    }
    return TrainResult(trainer.model, info, stopped=trainer.stop_requested, steps=trainer.step)


def _choices(trainer) -> dict:
    """What the run uses for the noise model and the blind region, and why: the data's
    choices for a new model, the model's own settings when resuming."""
    if trainer.choices is not None:
        return trainer.choices.to_dict()
    config = trainer.model.config
    return {
        "noise": config.noise,
        "noise_why": "kept from the resumed model",
        "blind_region": list(config.region),
        "blind_why": "kept from the resumed model",
        "correlation": None,
    }


def _preview(trainer, crop) -> tuple[np.ndarray, dict | None]:
    """Posterior mean of ``crop`` (an array, or a source's current target) with the model
    as trained so far, and the plane it shows (None for a plain array)."""
    from ..core import denoise

    plane, index = None, None
    if hasattr(crop, "get"):
        target = crop.get()
        crop, plane, index = target.crop, dict(target.plane), target.index
    model = trainer.model
    was = model.training
    try:
        if crop.ndim == 4:  # a volume block: show the slice of the plane shown (default: its middle)
            index = crop.shape[0] // 2 if index is None else index
            return denoise(model, crop, "ZYXC", device=str(trainer.device), tta=False)[index], plane
        return denoise(model, crop, "YXC", device=str(trainer.device), tta=False), plane
    finally:
        model.train(was)


def denoise_job(
    model, data: np.ndarray, axes: str, output: str, device: str = "auto", stop: threading.Event | None = None
):
    """Denoise ``data``, yielding ``DenoiseProgress`` per tile; return the float32 result,
    or None when ``stop`` was set (checked between tiles).

    First yields a warning (a str) when the data's values are far from the model's
    training data (``scale_mismatch``)."""
    from ..core import denoise_iter, scale_mismatch
    from ..core.device import threads_for_run

    def run():
        mismatch = scale_mismatch(model, data, axes)
        if mismatch:
            yield mismatch
        tiles = denoise_iter(model, data, axes, output, device=device)
        while True:
            if stop is not None and stop.is_set():
                tiles.close()
                return None
            try:
                yield next(tiles)
            except StopIteration as end:
                return end.value

    with threads_for_run():  # the cores free now, in the thread that runs the tiles
        return (yield from _guard(run(), "denoising"))


def device_label_job(device: str, threads: int | None = None) -> tuple[bool, str]:
    """``(ok, text)``: the name of the device ``device`` resolves to, with the CPU threads a
    run would take now (``threads``: as set; None: the cores free), or why it cannot be used."""
    from ..core.errors import SSDNError, template_of

    try:
        from ..core.device import choose_threads, device_name, resolve_device

        return True, device_name(resolve_device(device), choose_threads(threads))
    except SSDNError as exc:
        return False, template_of(exc)
