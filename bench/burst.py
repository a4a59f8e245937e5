"""Part of `make bench`: 20 concurrent 20 MB messages while 20 clients send small ones, through the real stack.

Prints each service's peak RSS and the small messages' latency percentiles, before and during the burst, so the
ratio (not the absolute figure) tells whether large messages stall everyone else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import ssl
import statistics
import time
import uuid
from pathlib import Path

import aiosmtplib

from devstack.stack import Stack

LARGE_CLIENTS = 20
SMALL_CLIENTS = 20
LARGE_BYTES = 20 * 1024 * 1024
BASELINE_SECONDS = 5.0
MAX_SECONDS = 600.0
RETRY_SECONDS = 0.5  # after a 4xx (real clients wait minutes; the bench wants the burst's whole span)


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def large_message() -> bytes:
    """About 20 MB on the wire: two attachments of random bytes, base64 in 76-column lines."""
    import base64

    per_attachment = (LARGE_BYTES * 3 // 4) // 2 - 4096
    parts = [
        b"From: bench@example.com\r\nTo: sink@example.net\r\nSubject: large\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nlarge\r\n'
    ]
    for index in range(2):
        encoded = base64.encodebytes(os.urandom(per_attachment)).replace(b"\n", b"\r\n")
        parts.append(
            # PDF by name and type: a type the real API (v2, the default flavor) carries.
            b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            + f'Content-Disposition: attachment; filename="blob{index}.pdf"\r\n\r\n'.encode()
            + encoded
        )
    parts.append(b"--b--\r\n")
    return b"".join(parts)


async def send(port: int, tls: ssl.SSLContext, message: bytes) -> float:
    started = time.perf_counter()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=tls, timeout=300)
    async with client:
        await client.login("demo@example.com", "demo-password")
        await client.sendmail("bench@example.com", ["sink@example.net"], message)
    return time.perf_counter() - started


def small_message(n: int) -> bytes:
    # A Message-ID of its own: a resent identical message would be recognised and not sent again (docs/mapping.md).
    return (
        f"From: bench@example.com\r\nTo: sink@example.net\r\nMessage-ID: <{uuid.uuid4().hex}@bench>\r\n"
        f"Subject: small {n}\r\n\r\nsmall {n}\r\n"
    ).encode()


async def small_load(port: int, tls: ssl.SSLContext, stop: asyncio.Event, latencies: list[float]) -> None:
    counter = 0

    async def worker(worker_id: int) -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1
            latencies.append(await send(port, tls, small_message(worker_id * 1_000_000 + counter)))

    await asyncio.gather(*(worker(i) for i in range(SMALL_CLIENTS)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def send_until_accepted(port: int, tls: ssl.SSLContext, message: bytes) -> tuple[float, int]:
    """(seconds until accepted, temporary refusals on the way). A 4xx is what a real client keeps the message for
    and sends again: the edge admits `DATA_BYTES_IN_FLIGHT_LIMIT` (48 MiB) of messages at once, two of these, and
    answers the others `452 4.3.1` at MAIL until one is done (docs/configuration.md)."""
    started = time.perf_counter()
    deferred = 0
    while True:
        try:
            await send(port, tls, message)
            return time.perf_counter() - started, deferred
        except aiosmtplib.SMTPResponseException as refused:
            if not 400 <= refused.code < 500:
                raise
            deferred += 1
            await asyncio.sleep(RETRY_SECONDS)


def send_large_burst(port: int, ca_file: str, body: bytes) -> list[tuple[float, int]]:
    tls = ssl.create_default_context(cafile=ca_file)

    async def burst() -> list[tuple[float, int]]:
        sends = (send_until_accepted(port, tls, b"X-Bench-Id: %d\r\n" % i + body) for i in range(LARGE_CLIENTS))
        return list(await asyncio.wait_for(asyncio.gather(*sends), MAX_SECONDS))

    return asyncio.run(burst())


async def run(stack: Stack, tls: ssl.SSLContext) -> None:
    ca_file = str(stack.certificate.ca_file)
    port = stack.ports.smtp_starttls
    pids = {s.name: s.process.pid for s in stack.services if s.process is not None}
    peaks = dict.fromkeys(pids, 0.0)

    async def sample(stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, pid in pids.items():
                peaks[name] = max(peaks[name], rss_mib(pid)[0])
            await asyncio.sleep(0.05)

    idle_rss = {name: rss_mib(pid)[0] for name, pid in pids.items()}
    baseline: list[float] = []
    stop = asyncio.Event()
    loop_task = asyncio.create_task(small_load(port, tls, stop, baseline))
    await asyncio.sleep(BASELINE_SECONDS)
    stop.set()
    await loop_task

    body = large_message()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    during: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(stop))
    small = asyncio.create_task(small_load(port, tls, stop, during))
    started = time.perf_counter()
    # The large senders run in a process of their own: sharing this event loop, their client-side work
    # (dot-stuffing 400 MB) would be measured as the gateway's latency for the small messages.
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        large = await asyncio.get_running_loop().run_in_executor(pool, send_large_burst, port, ca_file, body)
    burst = time.perf_counter() - started
    stop.set()
    await asyncio.gather(small, sampler)
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}

    spans = [seconds for seconds, _ in large]
    print(
        f"\nlarge: {LARGE_CLIENTS} x {len(body) / 2**20:.1f} MiB in {burst:.1f} s "
        f"(each {min(spans):.1f}..{max(spans):.1f} s from its first try; "
        f"{sum(deferred for _, deferred in large)} temporary refusals (4xx) sent again)"
    )
    print(f"small: {len(baseline)} sent before the burst, {len(during)} during it ({SMALL_CLIENTS} clients)")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
    for label, values in (("small, no burst", baseline), ("small, during burst", during)):
        print(f"{label:24}{statistics.median(values) * 1000:>10.1f}{percentile(values, 0.99) * 1000:>10.1f}")
    print(f"p99 ratio during/before: {percentile(during, 0.99) / percentile(baseline, 0.99):.1f}x")
    print(f"\n{'service':20}{'idle MiB':>10}{'peak MiB':>10}{'peak/msg':>10}{'CPU s':>8}")
    for name in pids:
        print(
            f"{name:20}{idle_rss[name]:>10.0f}{peaks[name]:>10.0f}"
            f"{(peaks[name] - idle_rss[name]) / (len(body) / 2**20):>10.1f}{cpu[name]:>8.1f}"
        )
    print("(peak/msg: MiB above idle per MiB of one message; 20 are sent at once, and the edge takes in as many as")
    print(" its DATA_BYTES_IN_FLIGHT_LIMIT holds (two at 48 MiB) while the others are told 452 and retry. CPU s:")
    print(" during the burst, on 2 cores shared by the three services and this load generator.)")


def main() -> None:
    """`python -m bench.burst`: the burst alone, on a stack of its own."""
    from bench.harness import running_stack

    with running_stack() as (stack, tls):
        asyncio.run(run(stack, tls))


if __name__ == "__main__":
    main()
