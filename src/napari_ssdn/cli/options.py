"""Options of ``ssdn`` that need more than argparse gives: ``-o`` of ``ssdn denoise`` and
``--threads`` of the commands that run torch."""

from __future__ import annotations

import argparse
import os

__all__ = ["DenoiseOutput", "add_threads", "use_threads"]


class DenoiseOutput(argparse.Action):
    """``ssdn denoise -o``: given once, and a path, not an output kind's name (``--output``
    once chose the kind: ``--output prior-mean`` silently wrote a file called prior-mean)."""

    def __call__(self, parser, namespace, value, option_string=None):
        from ..core.constants import OUTPUTS

        earlier = getattr(namespace, self.dest, None)
        if earlier is not None:
            parser.error(
                f"-o/--output is given twice ({earlier!r} and {value!r}); give one output file or folder with -o, "
                "and what to write with --kind"
            )
        kind = value.rstrip("/\\")
        if kind in OUTPUTS:
            parser.error(
                f"{option_string} {value} is an output kind, not a file or folder; choose what to write with "
                f"--kind {kind} and where with -o, e.g. -o {kind}.tif (./{kind} for a folder of that name)"
            )
        setattr(namespace, self.dest, value)


def add_threads(parser, positive_int) -> None:
    """Add ``--threads N`` (``positive_int`` parses N)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="CPU threads of torch (default: OMP_NUM_THREADS where set, else the cores free now: "
        "cores minus those other work keeps busy; with --distributed, per rank)",
    )


def use_threads(args) -> None:
    """Set torch's threads for train, denoise and demo (see core.device.choose_threads)."""
    if not hasattr(args, "threads"):
        return
    from .distributed import is_rank

    if getattr(args, "distributed", None) and not is_rank():  # the ranks inherit it
        if args.threads:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)
        return
    from ..core.device import use_threads as apply

    apply(args.threads)  # ssdn train's first line names the count and why (core.device.device_name)
