"""``ssdn train`` on several ranks: starting them (``--distributed N``), joining them (under
torchrun), and wording how a run on several ranks ends early."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from ..core.errors import SSDNError, SSDNWarning
from .text import in_cli_terms


def is_rank() -> bool:
    """Whether this process is one rank started by torchrun or ``--distributed``."""
    from ..core.training.distributed import in_torchrun

    return in_torchrun()


def launch_ranks(args, out: Path) -> int:
    """``--distributed N``: run this same command as N ranks on this machine; the exit code."""
    from ..core.device import resolve_device
    from ..core.training.distributed import launch

    n = args.distributed
    dev = resolve_device(args.device)
    if dev.type == "cuda":
        import torch

        if n > torch.cuda.device_count():
            raise SSDNError(
                f"--distributed {n} asks for one rank per GPU but this machine shows {torch.cuda.device_count()}; "
                f"use --distributed {torch.cuda.device_count()} or fewer"
            )
    failures = launch(n, ["-m", "napari_ssdn.cli", *args.argv], timeout=args.dist_timeout)
    if not failures:
        return 0
    if failures.get(0) == 2:  # a user error, which rank 0 has printed
        return 2
    rank, code = next(iter(failures.items()))
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    kept = f"the last checkpoint is kept in {out}" if out.exists() else "no model file was written"
    print(f"ssdn: error: rank {rank} of {n} ended with {how} and the other ranks were stopped; {kept}", file=sys.stderr)
    return 1


def finish() -> None:
    """The end of a run that went well: every rank waits for the others (and rank 0's save)."""
    from ..core.training.distributed import finish as wait_for_all

    wait_for_all()


def leave(code: int) -> None:
    """End this rank's process now with ``code``, its output flushed, skipping the process
    group's and the interpreter's clean-up: gloo's threads could abort a rank at exit
    ("terminate called without an active exception", SIGABRT) after a run that went well.
    By now rank 0 has written the model file and every rank has passed the last barrier."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def join_ranks(args):
    """Join the run as one rank: only rank 0 reports progress and the errors every rank
    would repeat (bad input); returns the :class:`~napari_ssdn.core.training.distributed.Ranks`."""
    from ..core.training.distributed import close, exit_on_sigterm, init_ranks

    local_world = os.environ.get("LOCAL_WORLD_SIZE")
    if args.distributed and local_world is not None and int(local_world) != args.distributed:
        raise SSDNError(
            f"--distributed {args.distributed} under torchrun, which started {local_world} rank(s) here; "
            "drop --distributed (torchrun starts the ranks)"
        )
    ranks = init_ranks(args.device, args.dist_timeout)
    args.joined_ranks = True
    atexit.register(close)
    exit_on_sigterm()  # after close: its exit hook runs first
    if ranks.rank:
        args.quiet = args.quiet_errors = True
        logging.getLogger("napari_ssdn").setLevel(logging.WARNING)
        warnings.simplefilter("ignore", SSDNWarning)
    return ranks


def trainer_class(ranks):
    """The trainer of one rank: :class:`~napari_ssdn.core.training.distributed.DistributedTrainer`
    bound to ``ranks``."""
    from functools import partial

    from ..core.training.distributed import DistributedTrainer

    return partial(DistributedTrainer, ranks=ranks)


def ended_early(exc: Exception, trainer, out: Path) -> int:
    """A run on several ranks failed: print one line (the model file is not written again:
    the last checkpoint stays); the exit code."""
    from ..core.training.distributed import RankLost

    if not isinstance(exc, RankLost):
        raise exc
    if trainer.ranks.rank:
        kept = ""
    elif trainer.saved_steps is not None:
        kept = (
            f"; the last checkpoint (step {trainer.saved_steps}) is kept in {out} "
            f"(continue it with --resume {out} and a new -o)"
        )
    else:
        kept = "; no checkpoint had been written (--checkpoint-every)"
    print(f"ssdn: error: {in_cli_terms(exc)}{kept}", file=sys.stderr)
    return 1
