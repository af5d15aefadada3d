"""``ssdn denoise`` on a Dask cluster (or, for OME-Zarr files, block by block here): plan
on the client, run files and volume blocks as tasks, report by file name at the end."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from ..cli.text import Progress, in_cli_terms
from ..core.errors import SSDNError, template_of
from . import requested
from .tasks import on_worker, run_task
from .volumes import plan_volume

__all__ = ["denoise_many"]


def _local_map(fn, specs, retries=0):
    """Tasks in this process, one after the other (no cluster)."""
    for i, spec in enumerate(specs):
        try:
            yield i, fn(spec), None
        except Exception as exc:  # noqa: BLE001 - reported by file name at the end
            yield i, None, exc


@contextlib.contextmanager
def _executor(args):
    if not requested(args):
        yield _local_map
        return
    try:
        from .cluster import connect, map_tasks
    except ImportError as exc:
        raise SSDNError(
            f"--workers, --scheduler and --scheduler-file need Dask ({exc}); "
            "install it with: pip install 'napari-ssdn[distributed]' "
            "(in a source checkout: pip install -e '.[distributed]')"
        ) from None

    with connect(args, args.quiet) as client:
        yield lambda fn, specs, retries: map_tasks(client, functools.partial(on_worker, fn), specs, retries)


def _plan(args, model, pairs, given, scratch):
    """File tasks and volume jobs; files that fail while being planned go to ``failed``."""
    options = {
        "tile": args.tile,
        "noise_params": given,
        "tta": args.tta,
        "compile_network": args.compile,
        "mixed_precision": False if args.float32 else None,
    }
    model_path = os.path.abspath(args.model)
    specs, owners, jobs, failed = [], [], [], {}
    for path, target in pairs:
        try:
            job = plan_volume(
                model,
                path,
                target,
                args.output_kind,
                {**options, "device": args.device},
                args.axes,
                args.model,
                model_path=model_path,
                resume=args.resume,
            )
        except SSDNError as exc:
            failed[path] = template_of(exc)
            continue
        if job is None:
            folder = scratch(target)
            specs.append(
                {
                    "task": "file",
                    "input": os.path.abspath(path),
                    "target": os.path.abspath(target),
                    "scratch": os.path.abspath(folder),
                    "model": model_path,
                    "model_name": args.model,
                    "output": args.output_kind,
                    "axes": args.axes,
                    "device": args.device,
                    "options": options,
                }
            )
            owners.append(path)
            continue
        jobs.append(job)
        for spec in job.specs:
            spec.update(model=model_path, device=args.device)
            specs.append(spec)
            owners.append(job)
    return specs, owners, jobs, failed


def denoise_many(args, model, inputs: list[Path], targets: list[Path], given: dict) -> int:
    """Denoise ``inputs`` into ``targets`` on the cluster the options name; returns the
    exit code: 0, or 1 when some files failed (each named on stderr; the others are written)."""
    from .zarrio import is_zarr

    cfg = model.config
    zarr_file = next((p for p in list(inputs) + list(targets) if is_zarr(p)), None)
    if zarr_file is not None and (cfg.ndim != 3 or cfg.channels != 1 or cfg.subsample != 1):
        raise SSDNError(
            f"{str(zarr_file)!r}: OME-Zarr files are denoised as volumes, with a one-channel 3D model "
            f"(trained with --3d) but {args.model} is not one; write a .tif or .mrc output, or use a 3D model"
        )
    pairs = list(zip(inputs, targets, strict=True))
    if args.resume:
        complete = [t for _, t in pairs if t.exists()]
        pairs = [(i, t) for i, t in pairs if not t.exists()]
        if complete and not args.quiet:
            print(f"skipped {len(complete)} input(s) whose output exists (--resume)", file=sys.stderr)
    if not pairs:
        return 0
    folders = {}  # output folder -> this run's scratch folder in it (same file system: renames are atomic)

    def scratch(target):
        parent = Path(target).parent
        if parent not in folders:
            folders[parent] = parent / f".ssdn-run-{uuid.uuid4().hex[:8]}"
            folders[parent].mkdir(parents=True, exist_ok=True)
        return folders[parent]

    jobs = []
    try:
        specs, owners, jobs, failed = _plan(args, model, pairs, given, scratch)
        for job in jobs:
            for w in job.warnings:
                print(f"ssdn: warning: {w}", file=sys.stderr)
            if job.resumed and not args.quiet:
                print(
                    f"resuming {str(job.target)!r}: {job.resumed} of {job.blocks} blocks written by an earlier run",
                    file=sys.stderr,
                )
        with _executor(args) as run:
            _run(args, run, specs, owners, jobs, failed)
    except BaseException as exc:
        for job in jobs:
            if job.output is not None and not job.done:
                job.finish(exc)
                _say_kept(job)
        raise
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
    written = len(pairs) - len(failed)
    if not args.quiet:
        print(f"wrote {written} of {len(pairs)} output(s)", file=sys.stderr)
    for path, message in failed.items():
        message = in_cli_terms(message)
        named = message if str(path) in message else f"{str(path)!r}: {message}"
        print(f"ssdn: error: {named}", file=sys.stderr)
    for job in jobs:
        if job.input in failed:
            _say_kept(job)
    return 1 if failed else 0


def _say_kept(job) -> None:
    """Tell where the whole blocks of a volume that did not finish are kept."""
    if job.kept:
        print(
            f"ssdn: {str(job.target)!r}: {job.kept} of {job.blocks} blocks are kept; the same command with "
            "--resume writes the others",
            file=sys.stderr,
        )


def _run(args, run, specs, owners, jobs, failed) -> None:
    left = {id(job): len(job.specs) for job in jobs}
    bar = Progress(args.quiet, "denoise")
    t0 = time.perf_counter()
    for done, (i, result, exc) in enumerate(run(run_task, specs, args.retries), start=1):
        owner = owners[i]
        job = owner if not isinstance(owner, Path) else None
        path = job.input if job is not None else owner
        if exc is not None:
            failed.setdefault(path, f"{type(exc).__name__}: {exc}")
        elif "error" in result:
            failed.setdefault(path, result["error"])
        for w in (result or {}).get("warnings", []):
            print(f"ssdn: warning: {w}", file=sys.stderr)
        if job is not None:
            if exc is None and "error" not in result:
                job.record.mark(specs[i]["block"])
            left[id(job)] -= 1
            if left[id(job)] == 0:  # the volume's last block: its output becomes final, or goes
                job.done = True
                job.finish(None if path not in failed else SSDNError(failed[path]))
        el = time.perf_counter() - t0
        bar.update(done, len(specs), el / done * (len(specs) - done), final=done == len(specs))
