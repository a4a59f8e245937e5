"""`python -m bench.edge_memory`: the edge's peak memory per in-flight large message, through the whole stack.

bench/burst.py's message (two PDF attachments, ~20 MiB on the wire) goes through the edge over STARTTLS + AUTH, 1
then EDGE_MEM_IN_FLIGHT (4) at once, each on its own connection, sent by a client in a process of its own (its
memory and CPU are not the edge's), while the sandbox holds each POST /v2/emails EDGE_MEM_HOLD_MS (10000) before
reading it: the edge's one parse worker takes the messages one after another, and the hold keeps every message in
the edge (read, parsed, framed, forwarded, waiting for its reply) at the same moment. The edge's RSS is sampled every
10 ms: its whole process tree (the edge parses messages over 8 KiB in a forkserver worker process: part of what a
pod holds), the main process alone, and its descendants alone (the fork server and the parse worker). Printed for
each: the peak above idle per message in flight, as a multiple of the message's size on the wire (the target:
<= 2x; docs/performance.md, "Against the targets"), and the slope between the two runs (per extra message in
flight, without what the first message pays once: the parse worker's own peak, pools, buffers).

The edge's bytes in flight budget (DATA_BYTES_IN_FLIGHT_LIMIT, 48 MiB by default: two of these messages) is raised
so that EDGE_MEM_IN_FLIGHT of them fit. BENCH_ENV ("KEY=VALUE,...") goes to the edge.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import ssl
import sys
import time
import uuid
from dataclasses import dataclass, field

import aiosmtplib

from bench.__main__ import set_api_latency
from bench.burst import large_message
from bench.harness import connect, descendants, rss_mib, running_stack, service_pids
from bench.shapes import SENDER

IN_FLIGHT = int(os.environ.get("EDGE_MEM_IN_FLIGHT", "4"))
HOLD_MS = int(os.environ.get("EDGE_MEM_HOLD_MS", "10000"))
ENV = dict(pair.split("=", 1) for pair in os.environ.get("BENCH_ENV", "").split(",") if pair)
RECIPIENT = "sink@example.net"


@dataclass
class Peak:
    """The highest of the readings fed to it (MiB), and the first as idle."""

    idle: float
    peak: float = field(init=False)

    def __post_init__(self) -> None:
        self.peak = self.idle

    def feed(self, reading: float) -> None:
        self.peak = max(self.peak, reading)

    @property
    def above_idle(self) -> float:
        return self.peak - self.idle


def per_message(above_idle: float, in_flight: int, size_mib: float) -> float:
    """Peak above idle per message in flight, as a multiple of one message's size."""
    return above_idle / in_flight / size_mib


def slope(above_idle_one: float, above_idle_many: float, many: int, size_mib: float) -> float:
    """What each message in flight beyond the first adds, as a multiple of one message's size: without what the
    first message pays once (pools, buffers, code, the parse worker's own peak)."""
    return (above_idle_many - above_idle_one) / (many - 1) / size_mib


# The client, in a process of its own. The message is made once per process; each send gets a Message-ID of its own
# (a resent identical message would be recognised and not sent again, docs/mapping.md).
_body: bytes | None = None


def _message() -> bytes:
    global _body
    if _body is None:
        _body = large_message()
    return f"Message-ID: <{uuid.uuid4().hex}@edge-mem.bench>\r\n".encode() + _body


async def _send(port: int, tls: ssl.SSLContext, message: bytes) -> tuple[float, str | None]:
    """(seconds, None when the message was accepted (250) or else the error), never raising: the parent says what
    went wrong."""
    started = time.perf_counter()
    error = None
    try:
        client = await connect(port, tls)
        try:
            await client.sendmail(SENDER, [RECIPIENT], message)  # raises unless every reply was 2xx
        finally:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - started, error


def send_batch(port: int, ca_file: str, count: int) -> tuple[int, list[tuple[float, str | None]]]:
    """Runs in the client's process: `count` messages at once, each on its own connection. (size, results)."""
    messages = [_message() for _ in range(count)]
    tls = ssl.create_default_context(cafile=ca_file)

    async def batch() -> list[tuple[float, str | None]]:
        return list(await asyncio.gather(*(_send(port, tls, m) for m in messages)))

    return len(messages[0]), asyncio.run(batch())


def readings(pid: int) -> tuple[float, float]:
    """(the edge's main process, its descendants: the fork server and the parse workers), RSS in MiB: what
    bench.harness.tree_rss_mib sums."""
    workers = 0.0
    for child in descendants(pid):
        with contextlib.suppress(OSError, KeyError):  # gone meanwhile
            workers += rss_mib(child)[0]
    return rss_mib(pid)[0], workers


async def measure(
    pool: concurrent.futures.Executor, port: int, ca_file: str, pid: int, count: int
) -> tuple[dict[str, Peak], float, list[tuple[float, str | None]]]:
    """({"tree", "main", "workers"}: their peaks, the message's size in MiB, per message (seconds, error or None))
    for `count` messages at once."""
    main, workers = readings(pid)
    peaks = {"tree": Peak(main + workers), "main": Peak(main), "workers": Peak(workers)}
    sending = asyncio.get_running_loop().run_in_executor(pool, send_batch, port, ca_file, count)
    while not sending.done():
        main, workers = readings(pid)
        peaks["tree"].feed(main + workers)
        peaks["main"].feed(main)
        peaks["workers"].feed(workers)
        await asyncio.sleep(0.01)
    size, results = sending.result()
    return peaks, size / 2**20, results


async def run(port: int, ca_file: str, pid: int) -> int:
    above: dict[int, dict[str, float]] = {}
    size = 0.0
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        for count in (1, 1, IN_FLIGHT):  # the first single message warms up (sign-in, pools, the parse worker)
            peaks, size, results = await measure(pool, port, ca_file, pid, count)
            took = ", ".join(f"{seconds:.1f}" for seconds, _ in results)
            figures = "; ".join(
                f"{name} {peak.idle:.0f} -> {peak.peak:.0f} MiB = {per_message(peak.above_idle, count, size):.2f}x"
                for name, peak in peaks.items()
            )
            print(f"  {count} x {size:.1f} MiB at once ({took} s each), per message: {figures}", flush=True)
            failed = [error for _, error in results if error is not None]
            if failed:
                print(f"  not accepted: {failed}", flush=True)
                return 1
            above[count] = {name: peak.above_idle for name, peak in peaks.items()}
            await asyncio.sleep(1)
    slopes = ", ".join(
        f"{name} {slope(above[1][name], above[IN_FLIGHT][name], IN_FLIGHT, size):.2f}x" for name in above[1]
    )
    print(f"  per extra message in flight: {slopes}", flush=True)
    return 0


def main() -> int:
    if IN_FLIGHT < 2:
        raise SystemExit("EDGE_MEM_IN_FLIGHT must be at least 2 (the slope is between 1 and it)")
    budget = str(IN_FLIGHT * 32 * 2**20)  # room for IN_FLIGHT messages up to 32 MiB each (the size limit is 25)
    with running_stack({"edge": {"DATA_BYTES_IN_FLIGHT_LIMIT": budget, **ENV}}) as (stack, _tls):
        pid = service_pids(stack)["smtp-edge"]
        set_api_latency(stack, HOLD_MS)
        try:
            load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"edge memory, {ENV or 'defaults'}, 1 then {IN_FLIGHT} at once, API holds {HOLD_MS} ms, load {load}:")
            code = asyncio.run(run(stack.ports.smtp_starttls, str(stack.certificate.ca_file), pid))
            print(f"  load average after: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        finally:
            set_api_latency(stack, 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
