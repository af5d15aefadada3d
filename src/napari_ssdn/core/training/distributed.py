"""Training one model on several processes (ranks) with torch.distributed.

Every rank reads the same data and builds the same :class:`~napari_ssdn.core.training.trainer.Trainer`
(the data-driven choices are deterministic); each then draws its own crops, and
DistributedDataParallel averages the gradients of the whole loss (prior network, learned
noise parameters, per-image estimator) so that the weights stay equal on every rank. What
decides the course of the run comes from rank 0: the clock of the time budget (hence the
learning-rate schedule and the last step), a stop request and the validation loss that
picks the weights to keep. Only rank 0 writes files.

The ranks are started by ``torchrun`` (which sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``) or by :func:`launch` on one machine. The gloo backend
serves CPUs, NCCL GPUs (rank ``r`` of a machine on ``cuda:r``).
"""

from __future__ import annotations

import atexit
import inspect
import os
import re
import signal
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..device import resolve_device
from ..errors import SSDNError, setting
from .loop import TrainingLoop
from .trainer import Trainer

__all__ = ["DEFAULT_TIMEOUT", "Ranks", "RankLost", "DistributedTrainer", "in_torchrun", "init_ranks", "close", "launch"]

#: Seconds a rank waits for the others in one collective before the run ends with an error.
DEFAULT_TIMEOUT = 300.0
_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class RankLost(SSDNError):
    """Another rank died, or did not answer within the process group's timeout."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of one run.

    Attributes
    ----------
    rank, world, local : int
        Global rank, number of ranks, rank on this machine.
    backend : str
        ``gloo`` (CPU) or ``nccl`` (CUDA).
    device : str
        This rank's device (``cpu`` or ``cuda:LOCAL_RANK``).
    timeout : float
        Seconds a collective waits for the other ranks.
    """

    rank: int
    world: int
    local: int
    backend: str
    device: str
    timeout: float


def in_torchrun() -> bool:
    """Whether this process is one rank started by ``torchrun`` (or :func:`launch`)."""
    return all(k in os.environ for k in _ENV)


def init_ranks(device: str = "auto", timeout: float = DEFAULT_TIMEOUT) -> Ranks:
    """Join the process group that torchrun's environment variables describe.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``cuda``: the kind of device; a CUDA rank takes
        ``cuda:LOCAL_RANK`` (choose the GPUs with ``CUDA_VISIBLE_DEVICES``).
    timeout : float
        Seconds a collective (and joining) waits for the other ranks.

    Returns
    -------
    Ranks
    """
    if not in_torchrun():
        missing = [k for k in _ENV if k not in os.environ]
        raise SSDNError(
            f"distributed training needs the environment of torchrun ({', '.join(missing)} not set); "
            "start it with 'torchrun --nproc_per_node N -m napari_ssdn.cli train ...' or 'ssdn train --distributed N'"
        )
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise SSDNError(
            f"{setting('dist_timeout', timeout)} must be a positive number of seconds, e.g. {DEFAULT_TIMEOUT:g}"
        )
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            raise SSDNError(
                f"{setting('device', device)}: each rank takes cuda:LOCAL_RANK; give {setting('device', 'cuda')} and "
                "choose the GPUs with CUDA_VISIBLE_DEVICES"
            )
        if local >= torch.cuda.device_count():
            raise SSDNError(
                f"rank {rank} has LOCAL_RANK {local} but this machine shows {torch.cuda.device_count()} GPU(s); "
                "start at most one rank per GPU (--nproc_per_node)"
            )
        torch.cuda.set_device(local)
        backend, name = "nccl", f"cuda:{local}"
    elif dev.type == "cpu":
        backend, name = "gloo", "cpu"
    else:
        raise SSDNError(
            f"{setting('device', device)}: distributed training runs on CUDA GPUs (NCCL) or CPUs (gloo), not "
            f"{dev.type}; use {setting('device', 'cpu')}"
        )
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
        except Exception as exc:  # noqa: BLE001 - any failure to join means the same to the user
            raise RankLost(
                f"rank {rank} could not join the other {world - 1} rank(s) at "
                f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({_first_line(exc)})"
            ) from None
    return Ranks(rank, world, local, backend, name, float(timeout))


def close() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def finish() -> None:
    """Wait for every rank at the end of a run that went well (rank 0 may still be writing
    the model file), so that no rank tears the group down under another's feet."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _first_line(exc: BaseException) -> str:
    """The gist of a backend's error: its first sentence, without the source file in brackets."""
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", str(exc).strip())
    return re.split(r"(?<=[.!?])\s|\n", text, maxsplit=1)[0].rstrip(".") or type(exc).__name__


class _StepLoss(nn.Module):
    """The per-pixel training loss as one module: DistributedDataParallel must see every
    parameter the loss uses, and the noise parameters are used outside the network."""

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.model = trainer.model
        self.losses = lambda *a, **k: Trainer._pixel_losses(trainer, *a, **k)

    def forward(self, *args, **kwargs):
        return self.losses(*args, **kwargs)


class _RankLoop(TrainingLoop):
    """The loop of one rank: rank 0's clock and stop request, the ranks' mean loss, and a
    failed collective ending the run as :class:`RankLost`."""

    def __init__(self, trainer: DistributedTrainer):
        super().__init__(trainer)
        self._mean_loss = float("nan")

    def _clock(self, t0: float) -> float:
        t = self.trainer
        state = t._collective(
            torch.tensor([super()._clock(t0), float(t.stop_requested)], dtype=torch.float64), "broadcast"
        )
        if state[1] > 0:
            t.request_stop()
        return float(state[0])

    def _all_finite(self, values: list[torch.Tensor]) -> bool:
        both = self.trainer._collective(torch.stack([values[0], torch.stack(values).sum()]), "all_reduce")
        self._mean_loss = float(both[0]) / self.trainer.ranks.world
        return bool(torch.isfinite(both).all())

    def _train_step(self, *args):
        try:
            _, finite = super()._train_step(*args)
        except RankLost:
            raise
        except RuntimeError as exc:
            if not isinstance(exc, dist.DistError) and "gloo" not in str(exc).lower():
                raise
            raise self.trainer._lost(exc) from None
        return self._mean_loss, finite

    def _steps(self, t0, base_lrs):
        try:
            yield from super()._steps(t0, base_lrs)
        except BaseException:
            self.trainer._broken = True  # the others may be gone: the clean-up of run() stays local
            raise


class DistributedTrainer(Trainer):
    """One rank of a distributed run: a :class:`Trainer` whose ranks train one model.

    The process group must be joined first (:func:`init_ranks`). Each rank takes
    ``config.batch`` crops per step (rank 0 the crops a single process would draw, the
    others their own stream), so a step sees ``world`` times the batch; gradients are
    averaged, i.e. each rank's masked mean loss weighs the same. The progress records carry
    the mean loss of the ranks. :meth:`validate` and the end of the budget follow rank 0,
    and only rank 0 writes files (:meth:`save`). A collective that fails (a rank died, or
    did not answer within ``ranks.timeout``) raises :class:`RankLost`; the run then ends
    without another collective.

    Parameters
    ----------
    images, axes, config
        As for :class:`Trainer`; the same on every rank (``config.device`` should be
        ``ranks.device``).
    ranks : Ranks
    **kwargs
        The other arguments of :class:`Trainer`.
    """

    loop_class = _RankLoop

    def __init__(self, images, axes=None, config=None, *, ranks: Ranks, **kwargs):
        super().__init__(images, axes, config, **kwargs)
        self.ranks = ranks
        self._broken = False
        #: Steps (all runs) of the last file rank 0 wrote; None before the first.
        self.saved_steps: int | None = None
        if ranks.rank:
            self.rng = self.sampler.rng = np.random.default_rng([self.config.seed, ranks.rank])
        for p in self.model.parameters():
            if p.numel() == 0:  # no learned noise parameter: nothing to wait for in the reduction
                p.requires_grad_(False)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # The buffers (noise starting values) are equal on every rank: no broadcast per step.
        quiet = {
            "forward_sync_buffers"
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else "broadcast_buffers": False
        }
        self.ddp = DistributedDataParallel(_StepLoss(self), device_ids=ids, **quiet)

    # -- hooks of Trainer ---------------------------------------------------------------
    def _pixel_losses(self, *args, **kwargs):
        if self.model.training:  # a training step: through DDP, which averages the gradients
            return self.ddp(*args, **kwargs)
        return super()._pixel_losses(*args, **kwargs)

    def validate(self) -> float:
        """Rank 0's validation loss, on every rank (they hold the same weights)."""
        return float(self._collective(torch.tensor([super().validate()], dtype=torch.float64), "broadcast")[0])

    def save(self, path, checkpoint: bool = False) -> None:
        """Write the model file: rank 0 only (the others hold the same weights)."""
        if self.ranks.rank == 0:
            super().save(path, checkpoint)
            self.saved_steps = self.steps_before + self.step

    def train_state(self, checkpoint: bool = False) -> dict:
        return {**super().train_state(checkpoint), "ranks": self.ranks.world, "backend": self.ranks.backend}

    # -- collectives --------------------------------------------------------------------
    def _collective(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        if self._broken:
            raise RankLost(f"rank {self.ranks.rank}: the process group failed earlier")
        t = tensor.detach().to(self.device)
        try:
            dist.broadcast(t, src=0) if op == "broadcast" else dist.all_reduce(t)
        except Exception as exc:  # noqa: BLE001 - gloo and NCCL raise RuntimeErrors of several kinds
            raise self._lost(exc) from None
        return t.cpu()

    def _lost(self, exc: BaseException) -> RankLost:
        self._broken = True
        return RankLost(
            f"rank {self.ranks.rank} lost the other ranks at step {self.step + 1} (one ended, or did not answer "
            f"within {setting('dist_timeout', f'{self.ranks.timeout:g}')} seconds): {_first_line(exc)}"
        )


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Turn SIGTERM (a launcher stopping the ranks, a cluster's time limit) into SystemExit,
    so that clean-up runs: a file being written is removed, not left half-written."""
    signal.signal(signal.SIGTERM, _terminate)
    atexit.register(signal.signal, signal.SIGTERM, signal.SIG_DFL)  # not while the interpreter shuts down


def launch(nprocs: int, args: list[str], timeout: float = DEFAULT_TIMEOUT) -> dict[int, int]:
    """Start ``nprocs`` ranks of ``python ARGS...`` on this machine (torchrun's elastic
    agent, loopback rendezvous, no restarts) and wait for them.

    When a rank fails, the agent stops the others. CPU ranks share the cores: each gets
    ``OMP_NUM_THREADS`` = cores / ranks unless set.

    Returns
    -------
    dict
        Exit code (negative: signal) of each failed rank; empty when all succeeded.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # the caller words the failure
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nprocs,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        local_addr="127.0.0.1",
        rdzv_timeout=int(timeout),
    )
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads or str(max(1, (os.cpu_count() or 1) // nprocs))  # the ranks inherit it
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as exc:  # the first failure first
        return {r: f.exitcode for r, f in sorted(exc.failures.items(), key=lambda item: item[1].timestamp)}
    finally:
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
    return {}
