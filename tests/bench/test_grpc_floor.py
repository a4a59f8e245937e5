"""bench/grpc_floor.py runs: every exchange answered, at the paced rate, with a CPU figure for both sides (the
figures themselves are for docs/performance.md, never asserted in a test)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LINE = re.compile(
    r"^(?P<what>.+?):\s+(?P<rate>\d+) calls/s, CPU ms per call: client (?P<c>[\d.]+), server (?P<s>[\d.]+)$"
)


def test_grpc_floor_measures_each_exchange() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.grpc_floor"],
        cwd=ROOT,
        env={**os.environ, "BENCH_SECONDS": "1", "BENCH_RATE": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [m for line in done.stdout.splitlines() if (m := _LINE.match(line))]
    assert [m["what"].split(",")[0] for m in rows] == [
        "grpc.aio unary SubmitSmallMessage",
        "grpc.aio unary",
        "grpc.aio stream per caller",
        "aiohttp POST to a bare uvicorn ASGI app",
    ], done.stdout
    for row in rows:
        assert 150 <= int(row["rate"]) <= 250, row.string  # paced, and every caller's exchange answered
        assert float(row["c"]) > 0 and float(row["s"]) > 0, row.string
