"""The widgets' background workers, stopped with the widget that started them.

napari closing its window deletes the docks' widgets while a worker may still run (the
device line imports torch in a thread, a noise measurement or an export takes seconds): a
worker that then emits into its deleted signals aborts the whole process (PyQt6 turns the
worker thread's RuntimeError into SIGABRT). So every worker a widget part starts goes
through a :class:`WorkerGroup`: when the part's widget closes, leaves its dock or is
destroyed, the group asks its workers to stop, disconnects them and waits for them to end.
"""

from __future__ import annotations

import atexit
import inspect
import itertools
import logging
import threading
import time
import weakref
from functools import partial

from superqt.utils import FunctionWorker, GeneratorWorker, create_worker

__all__ = ["WorkerGroup", "SHUTDOWN_WAIT", "make_worker", "on_destroyed"]

log = logging.getLogger(__name__)

#: Seconds a closing widget waits for each of its workers (an export or a noise
#: measurement cannot be interrupted; a device check ends when torch is imported).
SHUTDOWN_WAIT = 30.0

# The signals a closing widget stops listening to. "finished" stays connected so that the
# widget's own clean-up (its progress bar) runs once the worker has ended, and superqt's
# _finished releases the worker.
_SIGNALS = ("started", "yielded", "returned", "errored", "warned", "aborted", "paused", "resumed")

_LIVE: set = set()  # workers started and not ended, of every group: awaited at exit


class _Guarded:
    """A superqt worker that records when it ended and never aborts the process: a start
    queued after its group shut down does nothing, and a late emission into deleted signals
    (the application is going) is dropped."""

    def _setup(self) -> None:
        self.ended = threading.Event()
        self._lock = threading.Lock()
        self._began = self._cancelled = False

    def cancel_if_waiting(self) -> bool:
        """Keep a worker that has not begun from ever running; whether it had not begun."""
        with self._lock:
            if not self._began:
                self._cancelled = True
        return self._cancelled

    def start(self) -> None:
        _LIVE.add(self)
        super().start()

    def run(self) -> None:
        with self._lock:
            self._began = not self._cancelled
        try:
            if self._began:
                super().run()
        except RuntimeError:  # its signals were deleted with the application: nobody listens
            pass
        finally:
            type(self)._worker_set.discard(self)
            _LIVE.discard(self)
            self.ended.set()


class _FunctionWorker(_Guarded, FunctionWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup()


class _GeneratorWorker(_Guarded, GeneratorWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup()


def make_worker(func, *args, **kwargs):
    """A superqt worker (not started) running ``func(*args, **kwargs)`` that records when it
    ended, is awaited at exit and never aborts the process (see :class:`WorkerGroup`)."""
    cls = _GeneratorWorker if inspect.isgeneratorfunction(func) else _FunctionWorker
    return create_worker(func, *args, _start_thread=False, _ignore_errors=True, _worker_class=cls, **kwargs)


class WorkerGroup:
    """The workers a widget part starts, stopped together.

    Parameters
    ----------
    owner : QObject, optional
        The part; the group shuts down when it is destroyed (napari closing its window
        deletes the docks' widgets without closing them).
    """

    def __init__(self, owner=None):
        self._workers: list[tuple[weakref.ref, threading.Event | None]] = []
        if owner is not None:
            # Qt is deleting the owner and the slots' proxies with it: disconnecting them
            # then would free what Qt is iterating, so only stop the workers and wait.
            on_destroyed(owner, partial(WorkerGroup.shutdown, self, disconnect=False))

    def start(self, func, *args, on: dict | None = None, stop: threading.Event | None = None, **kwargs):
        """Run ``func(*args, **kwargs)`` in a worker thread; returns the started worker.

        ``on`` maps signal names (``returned``, ``yielded``, ``errored``, ``finished``) to a
        slot or a list of slots, connected before the thread starts so that nothing it emits
        is missed. ``stop`` is set on shutdown: a generator job checks it between its steps.
        """
        worker = make_worker(func, *args, **kwargs)
        for name, slots in (on or {}).items():
            for slot in slots if isinstance(slots, (list, tuple)) else [slots]:
                getattr(worker, name).connect(slot)
        # Weak: a worker that ended is not kept alive (with the data it was given) by its group.
        self._workers = [(ref, s) for ref, s in self._workers if ref() is not None and not ref().ended.is_set()]
        self._workers.append((weakref.ref(worker), stop))
        worker.start()
        return worker

    def running(self) -> int:
        """How many of the group's workers have not ended."""
        return sum(not w.ended.is_set() for w in self._alive())

    def _alive(self) -> list:
        return [w for w in (ref() for ref, _ in self._workers) if w is not None]

    def shutdown(self, wait: float = SHUTDOWN_WAIT, disconnect: bool = True) -> bool:
        """Stop, disconnect and wait up to ``wait`` seconds for every worker of the group;
        returns whether all ended (nothing they emit reaches the widget any more)."""
        workers = [(ref(), stop) for ref, stop in self._workers]
        self._workers = []
        for stop in (s for _, s in workers if s is not None):
            stop.set()
        workers = [w for w, _ in workers if w is not None]
        for worker in workers:
            worker.quit()
            for name in _SIGNALS if disconnect else ():
                try:
                    getattr(worker.signals, name).disconnect()
                except (AttributeError, TypeError, RuntimeError):  # no such signal, or nothing connected
                    pass
        return _await(workers, wait)


_KEY = "napari_ssdn_on_destroyed"  # the owner's property naming its callbacks
_ON_DESTROYED: dict[int, list] = {}
_KEYS = itertools.count(1)


def on_destroyed(owner, callback) -> None:
    """Call ``callback()`` (no arguments) when Qt destroys ``owner``.

    The signal goes to a module function that looks the callbacks up by a property of the
    owner: PyQt may free a lambda or partial connected to ``destroyed`` while that signal
    is being delivered (a crash when napari deletes its window with the docks in it).
    """
    key = owner.property(_KEY)
    if key is None:
        key = next(_KEYS)
        owner.setProperty(_KEY, key)
        owner.destroyed.connect(_destroyed)
    _ON_DESTROYED.setdefault(key, []).append(callback)


def _destroyed(obj=None) -> None:
    for callback in _ON_DESTROYED.pop(obj.property(_KEY), []) if obj is not None else []:
        callback()


def _await(workers, wait: float) -> bool:
    deadline = time.monotonic() + wait
    busy = [w for w in workers if not w.cancel_if_waiting()]
    for worker in busy:
        worker.ended.wait(max(0.0, deadline - time.monotonic()))
    late = [w for w in busy if not w.ended.is_set()]
    if late:
        log.warning("napari-ssdn: %d background task(s) still busy %.0f s after their widget closed", len(late), wait)
    return not late


@atexit.register
def _await_live() -> None:
    """At exit, wait for workers whose widget was never closed (no thread may emit while
    the interpreter tears Qt down)."""
    for worker in list(_LIVE):
        worker.quit()
    _await(list(_LIVE), SHUTDOWN_WAIT)
