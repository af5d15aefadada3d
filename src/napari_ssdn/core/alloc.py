"""Keep freed memory in the process while the network runs (glibc's malloc only).

glibc hands every block over 32 MB straight back to the kernel when it is freed, so each
full-resolution feature map of a large tile is a fresh mapping whose pages the kernel
zeroes on first touch. A 2048 x 2048 denoise spent as much time in those page faults as
in the network (docs/benchmarks.md, "Speed and memory on a CPU"). While
:func:`reuse_freed_memory` is entered, large blocks come from the heap and are reused; on
leaving, the defaults come back and the free memory is returned to the system.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading

__all__ = ["reuse_freed_memory"]

# mallopt parameters (malloc.h) and glibc's defaults for them.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_TRIM = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
# Free memory at the top of the heap is kept up to this size while entered (2 GB: mallopt takes an int).
_KEEP = 2**31 - 1

_lock = threading.Lock()
_users = 0
_libc = None


def _glibc():
    """glibc's C library where this process runs on it, else None (macOS, Windows, musl)."""
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.gnu_get_libc_version.restype = ctypes.c_char_p
                lib.gnu_get_libc_version()  # AttributeError where the C library is not glibc
                _libc = lib
    return _libc or None


@contextlib.contextmanager
def reuse_freed_memory():
    """Serve large allocations from the heap and keep freed ones for reuse, until the last
    user leaves (thread-safe, nestable; does nothing where the C library is not glibc).

    The run then page-faults about once per page of its peak memory instead of once per
    page of every allocation. Threads other than the main one allocate from their own
    malloc arenas, which still map blocks over 64 MB: they gain less.
    """
    global _users
    lib = _glibc()
    if lib is None:
        yield
        return
    with _lock:
        if _users == 0:
            lib.mallopt(_M_MMAP_MAX, 0)
            lib.mallopt(_M_TRIM_THRESHOLD, _KEEP)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                lib.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                lib.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
                lib.malloc_trim(0)
