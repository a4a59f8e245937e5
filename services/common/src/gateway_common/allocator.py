"""glibc's malloc and both services' large message buffers (`MALLOC_MMAP_THRESHOLD_BYTES`).

glibc serves allocations over its mmap threshold (128 KiB at start) from their own mappings, returned to the system
when freed; but each time such a mapping is freed it raises the threshold to that size, so after the first large
message every later message's buffers (the bytes read, the message, the decoded attachments, up to 25 MiB each)
come from the heap instead, where freed memory stays with the process and fragments. A fixed threshold keeps every
buffer of 1 MiB or more its own mapping. Measured (docs/performance.md): the edge (`python -m bench.edge_memory`)
with 4 x 20 MB messages in flight 1.85-1.86x their size instead of 2.19-2.40x, back at 150 MiB after a large
message instead of 186-243 MiB; the forwarder (`python -m bench.forwarder_memory`) back at 96-100 MiB after
large messages instead of 103-114, and ~1.14x per message in flight instead of ~1.21x (medians of noisy runs).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


def fix_mmap_threshold(threshold: int) -> bool:
    """Sets glibc's mmap threshold for this process (and processes forked from it); False when `threshold` is 0 or
    the C library is not glibc (musl, macOS), which leaves the allocator as it is."""
    if threshold <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
