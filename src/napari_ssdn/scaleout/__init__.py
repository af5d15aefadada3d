"""Scale-out denoising: many files and big volumes on a Dask cluster, OME-Zarr in and out.

``ssdn denoise ... --workers N`` (a local cluster), ``--scheduler`` or ``--scheduler-file``
(any running Dask cluster). Dask is imported only when one of these is given; OME-Zarr
files without them are denoised block by block in this process. Needs the ``distributed``
extra (``pip install napari-ssdn[distributed]``).
"""

from __future__ import annotations

__all__ = ["add_options", "requested", "wanted"]


def add_options(parser, positive) -> None:
    """Add the scale-out options to the ``ssdn denoise`` parser (``positive``: the
    command's parser of positive numbers)."""
    g = parser.add_argument_group("scale-out (Dask; docs/scale-out.md)")
    g.add_argument(
        "--workers",
        type=positive(int),
        metavar="N",
        help="start a local Dask cluster of N worker processes on this machine (threads per worker: "
        "cores / N) and denoise files and volume blocks on it",
    )
    g.add_argument(
        "--scheduler", metavar="tcp://HOST:PORT", help="use the running Dask cluster of this scheduler instead"
    )
    g.add_argument("--scheduler-file", metavar="FILE", help="use the running Dask cluster whose scheduler wrote FILE")
    g.add_argument(
        "--devices",
        metavar="LIST",
        help="local cluster: one worker per device, each pinned to it, e.g. cuda:0,cuda:1 (default: --device)",
    )
    g.add_argument(
        "--retries",
        type=positive(int, zero=True),
        default=2,
        metavar="N",
        help="times a task that failed unexpectedly is tried again (default 2; a worker that died "
        "is replaced and its task rerun in any case)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs whose output exists (outputs appear only when complete) and "
        "continue unfinished volumes from the blocks they kept",
    )


def requested(args) -> bool:
    """Whether the command asked for a Dask cluster."""
    return any(getattr(args, name, None) for name in ("workers", "scheduler", "scheduler_file", "devices"))


def wanted(args, inputs, targets) -> bool:
    """Whether ``ssdn denoise`` runs through the scale-out path: a cluster was asked for,
    or a file is OME-Zarr (block by block, in this process without a cluster)."""
    from .zarrio import is_zarr

    return requested(args) or any(is_zarr(p) for p in list(inputs) + list(targets))
