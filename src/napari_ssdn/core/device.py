"""Device choice: CUDA, then Apple MPS, then CPU, unless forced; and how many CPU threads
torch uses, from the cores this process may run on and what else keeps them busy."""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass

import torch

from .errors import SSDNError, setting

__all__ = [
    "resolve_device",
    "device_name",
    "bf16_cpu",
    "network_precision",
    "ThreadChoice",
    "free_cores",
    "choose_threads",
    "use_threads",
]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device for ``device`` ('auto', 'cpu', 'cuda', 'cuda:1', 'mps')."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SSDNError(
            f"{setting('device', device)} is not a device name; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SSDNError(
            f"{setting('device', device)} was asked for but this torch has no CUDA GPU; "
            f"use {setting('device', 'cpu')} or auto"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SSDNError(
            f"{setting('device', device)} was asked for but Apple MPS is not available; "
            f"use {setting('device', 'cpu')} or auto"
        )
    return dev


def device_name(dev: torch.device, threads: ThreadChoice | None = None) -> str:
    """Human-readable name: the GPU model, or 'CPU (N threads)', with why where known (given
    ``threads``, or the choice :func:`use_threads` made last, while torch still uses it)."""
    if dev.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    n = torch.get_num_threads()
    threads = threads if threads is not None else (_CHOSEN[0] if _CHOSEN[0] and _CHOSEN[0].count == n else None)
    if threads is not None:
        return f"CPU ({threads.describe()})"
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


@dataclass(frozen=True)
class ThreadChoice:
    """How many torch threads a run uses, and why.

    Attributes
    ----------
    count : int
        The threads.
    cores : int
        The cores this process may run on.
    load : float or None
        The cores other work keeps busy, or its 1-minute load average where the system does
        not tell that (None when the count was given).
    source : str
        ``"auto"``, ``"set"`` (asked for) or ``"OMP_NUM_THREADS"``.
    """

    count: int
    cores: int
    load: float | None = None
    source: str = "auto"

    def describe(self) -> str:
        """E.g. ``2 threads: 4 cores, load 2.1 from other work``, or ``3 threads, as set``."""
        n = f"{self.count} thread{'s' if self.count != 1 else ''}"
        if self.source == "auto":
            return f"{n}: {self.cores} cores, load {self.load:.1f} from other work"
        return f"{n}, as {'set' if self.source == 'set' else self.source + ' sets'}"


def free_cores(cores: int, load: float) -> int:
    """The rule for the default thread count: ``max(1, cores - round(load))``.

    A torch thread on a core that another job keeps busy makes every step wait for it, so on
    a busy machine fewer threads than cores run faster (a user's 2-core machine with another
    job running: 1 thread several times faster than 2).
    """
    return max(1, int(cores) - round(max(0.0, float(load))))


# This process's CPU time at the previous choice: the load average counts our own work too
# (a run that just ended), which must not be taken for another job's.
_OWN = [time.monotonic(), time.process_time()]


def _own_load() -> float:
    """This process's share of the 1-minute load average: its CPU time per second since the
    previous choice, weighted as the load average weights that span (1 - e^(-t/60))."""
    now, cpu = time.monotonic(), time.process_time()
    span, used = now - _OWN[0], cpu - _OWN[1]
    _OWN[:] = [now, cpu]
    return 0.0 if span <= 0 else used / span * (1.0 - math.exp(-span / 60.0))


def choose_threads(threads: int | None = None) -> ThreadChoice:
    """The torch threads for a run starting now (nothing is changed; see :func:`use_threads`).

    Parameters
    ----------
    threads : int, optional
        Asked for (``--threads``, the Train widget's Threads field). Else the environment's
        ``OMP_NUM_THREADS`` where set, else :func:`free_cores` of the cores this process may
        run on (``os.sched_getaffinity``) and the load of other work: the cores of those
        that are busy now (/proc/stat over 0.2 s), where the system does not tell it the
        1-minute load average (``os.getloadavg``) less this process's own share of it.
    """
    cpus = _affinity()
    cores = len(cpus) if cpus else (os.cpu_count() or 1)
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise SSDNError(f"{setting('threads', threads)} must be a positive whole number, e.g. {max(1, cores // 2)}")
        return ThreadChoice(threads, cores, None, "set")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), cores, None, "OMP_NUM_THREADS")
    load = _busy_now(cpus, cores)
    if load is None:
        try:
            load = max(0.0, os.getloadavg()[0] - _own_load())
        except (AttributeError, OSError):  # Windows: no load average
            load = 0.0
    return ThreadChoice(free_cores(cores, load), cores, load, "auto")


def _affinity() -> set[int] | None:
    """The CPUs this process may run on (None on macOS and Windows, which do not say)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:
        return None


def cpu_times(stat: str, cpus: set[int] | None = None) -> tuple[int, int]:
    """Total and idle clock ticks of the CPUs ``cpus`` (all where None) in the text of
    Linux's /proc/stat."""
    total = idle = 0
    for line in stat.splitlines():
        name, *ticks = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()) or (cpus is not None and int(name[3:]) not in cpus):
            continue
        values = [int(v) for v in ticks[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(values)
        idle += values[3] + values[4]
    return total, idle


def _busy_now(cpus: set[int] | None, cores: int, window: float = 0.2) -> float | None:
    """How many of the ``cores`` CPUs ``cpus`` (all where None) other work keeps busy now:
    their non-idle share of a short window, from /proc/stat (Linux; None elsewhere).
    Unlike the 1-minute load average it does not count a run that just ended: two
    commands run one after the other measured 1 thread for the second, at half its speed."""
    try:
        with open("/proc/stat") as f:
            t0, i0 = cpu_times(f.read(), cpus)
        time.sleep(window)
        with open("/proc/stat") as f:
            t1, i1 = cpu_times(f.read(), cpus)
    except (OSError, ValueError, IndexError):
        return None
    return None if t1 <= t0 else cores * (1.0 - (i1 - i0) / (t1 - t0))


def use_threads(threads: int | None = None) -> ThreadChoice:
    """Set torch's CPU threads for a run starting now (:func:`choose_threads`) and return the
    choice. Call it in the thread that runs the work: OpenMP keeps the count per thread."""
    choice = choose_threads(threads)
    torch.set_num_threads(choice.count)
    _CHOSEN[0] = choice
    return choice


_CHOSEN: list = [None]  # the latest choice of use_threads, which device_name explains


@contextlib.contextmanager
def threads_for_run(threads: int | None = None):
    """:func:`use_threads` for the work inside the block, then torch's previous count again:
    a count left changed by a worker thread altered the results of later runs in the process
    (bfloat16 training on the CPU, in the test suite)."""
    before = torch.get_num_threads()
    try:
        yield use_threads(threads)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def bf16_cpu() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 / AMX): then
    mixed precision nearly doubles training speed."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - private API; absence just means no bf16
        return False


def network_precision(dev: torch.device, enabled: bool = True):
    """Autocast for the network's convolutions where the hardware is fast at it: bfloat16
    (float16 without it) on CUDA, bfloat16 on CPUs with native support, else float32
    (bfloat16 on an AVX2-only CPU is hundreds of times slower). float64 tensors are never cast."""
    if enabled and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if enabled and dev.type == "cpu" and bf16_cpu():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
