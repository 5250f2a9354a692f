"""Allocator settings for CPU work on large tensors.

glibc's malloc returns every large block (above 32 MiB at most, often far less) to the
operating system when it is freed, so the next convolution faults its pages in again; on
the 2-core machine this project is measured on, that costs an FFT convolution of a
(4, 3, 512, 512) batch 20 ms of its 50. jemalloc and tcmalloc keep such memory; so can
glibc, when asked. gridconv's commands ask; a library must not decide it for its host
program, so for your own programs it is one call, or the environment variables
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of unmapping it.

    The process's memory then stays near its peak. Returns whether it took effect (False
    off Linux or with another C library).

    Example:
        >>> import gridconv as gc
        >>> gc.keep_freed_memory() in (True, False)
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
