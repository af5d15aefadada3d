"""Connecting to Dask: a local cluster for the run, or a running one; tasks mapped with
retries and their results taken as they complete."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from ..core.errors import SSDNError

__all__ = ["connect", "PinDevices", "map_tasks"]


class PinDevices(WorkerPlugin):
    """Pins each worker of a local cluster to one device, by worker name (0, 1, ...), so
    that a worker restarted after a crash keeps its device."""

    name = "napari-ssdn-devices"

    def __init__(self, devices: list[str]):
        self.devices = list(devices)

    def setup(self, worker):
        from .tasks import pin_device

        name = str(worker.name)
        pin_device(self.devices[int(name) % len(self.devices)] if name.isdigit() else self.devices[0])


def _devices(args) -> list[str]:
    devices = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    if devices and (args.scheduler or args.scheduler_file):
        raise SSDNError(
            "--devices is for a local cluster (--workers); on a running cluster start one worker per GPU "
            "(docs/scale-out.md) and leave --devices out"
        )
    if devices and args.workers and args.workers != len(devices):
        raise SSDNError(
            f"--workers {args.workers} but --devices names {len(devices)} device(s); one worker per device: "
            f"pass --workers {len(devices)} or leave it out"
        )
    from ..core.device import resolve_device

    for d in devices:  # a local cluster runs on this machine: its devices can be checked here
        try:
            resolve_device(d)
        except SSDNError:
            raise SSDNError(
                f"--devices {args.devices}: {d!r} is not available on this machine; name devices torch "
                "sees here (cpu, cuda:N) or leave --devices out"
            ) from None
    return devices


@contextlib.contextmanager
def environment_kept():
    """Put back this process's environment variables as they were: starting worker processes,
    Dask's nanny sets OMP_NUM_THREADS=1 and the like in the parent too, and leaving them would
    make every later torch run of the process single-threaded."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in before]:
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


@contextlib.contextmanager
def connect(args, quiet: bool = False):
    """A :class:`distributed.Client` for the run; a local cluster is shut down at the end."""
    devices = _devices(args)
    logging.getLogger("distributed").setLevel(logging.ERROR)  # the command's own lines only
    if args.scheduler and args.scheduler_file:
        raise SSDNError("--scheduler and --scheduler-file both given; pass one of them")
    if args.workers and (args.scheduler or args.scheduler_file):
        raise SSDNError(
            "--workers starts a local cluster but --scheduler/--scheduler-file names a running one; pass one of them"
        )
    if args.scheduler_file and not os.path.isfile(args.scheduler_file):
        # Dask would wait for the file to appear, with no time limit.
        raise SSDNError(
            f"--scheduler-file {args.scheduler_file!r} does not exist; start the scheduler first "
            f"(dask scheduler --scheduler-file {args.scheduler_file}) or check the path"
        )
    if args.scheduler or args.scheduler_file:
        what = args.scheduler or args.scheduler_file
        try:
            client = Client(address=args.scheduler, scheduler_file=args.scheduler_file, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SSDNError(
                f"cannot reach the Dask scheduler {what!r} ({exc}); start it (dask scheduler) "
                "or check --scheduler / --scheduler-file"
            ) from None
        if not quiet:
            print(f"cluster: {what}, {len(client.scheduler_info().get('workers', {}))} worker(s)", file=sys.stderr)
        with client:
            yield client
        return
    n = len(devices) or args.workers
    threads = 1 if devices else max(1, (os.cpu_count() or 1) // n)
    # Processes on the loopback interface only; no dashboard.
    with environment_kept():
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        try:
            with Client(cluster) as client:
                if devices:
                    client.register_plugin(PinDevices(devices))
                if not quiet:
                    on = f", on {', '.join(devices)}" if devices else ""
                    print(f"cluster: local, {n} worker(s) x {threads} thread(s){on}", file=sys.stderr)
                yield client
        finally:
            cluster.close()


def map_tasks(client, fn, specs: list, retries: int):
    """Run ``fn`` on every spec; yields ``(index, result, exception)`` as tasks complete."""
    futures = client.map(fn, specs, retries=retries, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    for f in as_completed(futures):
        try:
            result = f.result()
        except Exception as exc:  # noqa: BLE001 - reported by file name at the end
            yield index[f.key], None, exc
        else:
            yield index[f.key], result, None
        f.release()
