"""Process memory: glibc's allocator told to give freed decode buffers back to the OS.

A 60 MP upload is decoded into buffers of tens of MB (Pillow allocates image memory in blocks).
By default glibc raises its mmap threshold each time such a block is freed (up to 32 MB), so the
next ones come from the heap and stay resident after the request; and each thread may get its own
arena (8 per core). Both make the API's resident memory grow with every large upload. A fixed
mmap threshold and two arenas keep a large buffer's memory tied to its lifetime
(docs/operations.md, "Limits"; `astroloc bench load` measures it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20  # blocks of 1 MB and more are mapped, and unmapped when freed
ARENA_MAX = 2


def bound_malloc() -> bool:
    """Apply the settings above to this process (glibc only; elsewhere nothing happens). The
    environment's MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_, when set, win. True when applied."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    applied = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        applied &= mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if "MALLOC_ARENA_MAX" not in os.environ:
        applied &= mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    return bool(applied)
