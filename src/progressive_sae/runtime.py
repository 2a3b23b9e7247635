"""Process-level settings that make CPU training faster."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ONE_GIB = 1 << 30


@functools.cache
def reuse_large_allocations() -> bool:
    """Let glibc serve big tensors (< 1 GiB) from the heap instead of fresh mmaps.

    A training step allocates and frees the same large temporaries every time (the
    B × N pre-activations, N × d gradients). By default glibc maps each one anew and
    the kernel zero-fills every page on first touch: at d=768, N=16384, B=4096 that
    page faulting was ~20% of a CPU step. Freed memory then stays with the process
    for reuse, which is what a training loop wants. Returns whether it took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _ONE_GIB)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _ONE_GIB)
        )
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
