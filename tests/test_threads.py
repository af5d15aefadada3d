"""The CPU threads a run takes: the cores free when it starts, unless set."""

import os

import pytest
import torch

from napari_ssdn.core import device
from napari_ssdn.core.errors import SSDNError


@pytest.fixture
def machine(monkeypatch):
    """An 8-core affinity, no OMP_NUM_THREADS, none of the load this process's own; returns
    a setter of the 1-minute load average."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(device, "_own_load", lambda: 0.0)
    monkeypatch.setattr(device, "_busy_now", lambda cpus, cores: None)  # the load-average path

    def load(value):
        monkeypatch.setattr(device.os, "getloadavg", lambda: (value, 0.0, 0.0))

    return load


def test_the_default_follows_the_free_cores(machine, monkeypatch):
    """max(1, cores - round(load)): all cores on an idle machine, fewer as other work loads
    it, never none; this process's own recent work is not counted as another job's."""
    for load, want in [(0.2, 8), (2.6, 5), (7.9, 1), (30.0, 1)]:
        machine(load)
        choice = device.choose_threads()
        assert choice.count == want and choice.cores == 8 and choice.source == "auto", (load, choice)
    machine(2.6)
    assert device.choose_threads().describe() == "5 threads: 8 cores, load 2.6 from other work"
    monkeypatch.setattr(device, "_own_load", lambda: 2.0)  # a run of ours just ended
    assert device.choose_threads().count == 7


def test_a_count_asked_for_or_the_environment_wins(machine, monkeypatch):
    machine(7.9)
    assert device.choose_threads(3).count == 3 and device.choose_threads(3).describe() == "3 threads, as set"
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert device.choose_threads().describe() == "4 threads, as OMP_NUM_THREADS sets"
    with pytest.raises(SSDNError, match="threads=0 must be a positive whole number"):
        device.choose_threads(0)


def test_use_threads_sets_torch(machine):
    machine(5.2)
    n = torch.get_num_threads()
    try:
        assert device.use_threads().count == 3 and torch.get_num_threads() == 3
        assert device.device_name(torch.device("cpu")) == "CPU (3 threads: 8 cores, load 5.2 from other work)"
        torch.set_num_threads(2)  # changed since: the name no longer explains a choice it does not show
        assert device.device_name(torch.device("cpu")) == "CPU (2 threads)"
    finally:
        torch.set_num_threads(n)


def test_the_busy_cores_now_come_first_where_the_system_tells_them(machine, monkeypatch):
    """The 1-minute load average still counts a run that ended seconds ago; the busy share
    of this process's cores over a short window does not."""
    machine(1.4)  # a run of another process just ended
    monkeypatch.setattr(device, "_busy_now", lambda cpus, cores: 0.1)
    assert device.choose_threads().count == 8
    monkeypatch.setattr(device, "_busy_now", lambda cpus, cores: 2.7)
    assert device.choose_threads().describe() == "5 threads: 8 cores, load 2.7 from other work"


def test_cpu_times_count_only_the_cores_this_process_may_use():
    stat = "cpu  400 0 100 1000 0 0 0 0 0 0\ncpu0 100 0 0 300 0 0 0 0 0 0\ncpu1 300 0 100 700 0 0 0 0 0 0\nintr 12345\n"
    assert device.cpu_times(stat, {0}) == (400, 300)
    assert device.cpu_times(stat, None) == (1500, 1000)


def test_busy_cores_are_read_from_this_machine():
    cpus = device._affinity()
    cores = len(cpus) if cpus else (os.cpu_count() or 1)
    busy = device._busy_now(cpus, cores, window=0.05)
    if busy is None:
        pytest.skip("no /proc/stat on this system")
    assert 0.0 <= busy <= cores + 1e-9
