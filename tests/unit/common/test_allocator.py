"""gateway_common/allocator.py: a fixed glibc mmap threshold gives freed large buffers back to the system."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway_common.allocator import fix_mmap_threshold

# A process frees one large buffer (which raises glibc's own threshold above 4 MiB), then holds 16 buffers of 4 MiB
# (what a few large messages in flight hold) under a small allocation, frees them and reports its resident memory.
_PROGRAM = """
import sys
from pathlib import Path
from gateway_common.allocator import fix_mmap_threshold

def rss_mib():
    status = Path("/proc/self/status").read_text().split("VmRSS:")[1]
    return int(status.split()[0]) / 1024

if sys.argv[1] == "fixed":
    assert fix_mmap_threshold(1024 * 1024)
first = bytearray(8 * 1024 * 1024)
del first
buffers = [bytearray(4 * 1024 * 1024) for _ in range(16)]
pinned = bytearray(200_000)
before = rss_mib()
del buffers
print(before - rss_mib())
"""


def _given_back(mode: str) -> float:
    # -I and no coverage hooks: nothing else allocates between the buffers and the pinning allocation.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("COV_CORE", "COVERAGE"))}
    result = subprocess.run(
        [sys.executable, "-I", "-c", _PROGRAM, mode], capture_output=True, text=True, check=True, env=env
    )
    return float(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, read from /proc")
def test_freed_large_buffers_go_back_to_the_system_only_with_the_threshold_fixed() -> None:
    assert _given_back("fixed") > 56  # nearly all of the 64 MiB
    assert _given_back("glibc") < 8  # glibc's raised threshold put them on the heap, under the pinned allocation


def test_zero_leaves_the_allocator_alone() -> None:
    assert fix_mmap_threshold(0) is False
