"""`make bench`: the gateway beside a bare aiosmtpd server, measured by the same client in the same run.

For each shape: msg/s, p50/p95/p99 latency, errors by reply code, CPU ms per message and peak RSS per service. Then
the fan-out ratio (100 recipients vs 1 at 20 ms API latency), an open-loop 278 msg/s at 20 ms API latency, the 20 MB
burst (bench/burst.py), a 60-second soak (bench/soak.py) and the resource-exhaustion shapes (bench/exhaustion.py, also
`make bench-exhaustion`). Everything runs on this machine's cores with the load
generator: read the ratios measured side by side, and the load average printed with them, not absolute figures.
BENCH_SECONDS sets each shape's duration (10), BENCH_SKIP a comma-separated list of parts to leave out
(burst, soak, exhaustion).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import aiosmtplib
import uvloop

from bench import burst, exhaustion, soak
from bench.harness import connect, cpu_seconds, percentile, rss_mib, running_stack, send_once, service_pids
from bench.shapes import SENDER, Shape, attachment, small
from devstack.stack import Stack, free_port

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
SKIP = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
CONNECTIONS = 20


@dataclass
class Run:
    label: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # service -> CPU seconds during the run
    peak: dict[str, float] = field(default_factory=dict)  # service -> peak RSS MiB during the run

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def cpu_ms(self) -> dict[str, float]:
        done = max(1, len(self.latencies))
        return {name: 1000 * seconds / done for name, seconds in self.cpu.items()}


Send = Callable[[], Awaitable[None]]


async def measure(
    label: str,
    pids: dict[str, int],
    workers: list[Callable[[asyncio.Event, Run], Awaitable[None]]],
    seconds: float = SECONDS,
) -> Run:
    run = Run(label)
    stop = asyncio.Event()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    run.peak = {name: rss_mib(pid)[0] for name, pid in pids.items()}

    async def sample() -> None:
        while not stop.is_set():
            for name, pid in pids.items():
                run.peak[name] = max(run.peak[name], rss_mib(pid)[0])
            await asyncio.sleep(0.1)

    started = time.perf_counter()
    tasks = [asyncio.create_task(w(stop, run)) for w in workers] + [asyncio.create_task(sample())]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - started
    run.cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    return run


def record_error(run: Run, error: Exception) -> None:
    code = getattr(error, "code", None)
    run.errors[str(code) if code is not None else type(error).__name__] += 1


def persistent(port: int, tls: ssl.SSLContext, shape: Shape) -> Callable[[asyncio.Event, Run], Awaitable[None]]:
    async def worker(stop: asyncio.Event, run: Run) -> None:
        client: aiosmtplib.SMTP | None = None
        while not stop.is_set():
            started = time.perf_counter()
            try:
                if client is None or not client.is_connected:
                    client = await connect(port, tls)
                await client.sendmail(SENDER, list(shape.recipients), shape.message())
                run.latencies.append(time.perf_counter() - started)
            except (aiosmtplib.SMTPException, OSError) as error:
                record_error(run, error)
                client = None
        if client is not None:
            client.close()

    return worker


def per_message(port: int, tls: ssl.SSLContext, shape: Shape) -> Callable[[asyncio.Event, Run], Awaitable[None]]:
    async def worker(stop: asyncio.Event, run: Run) -> None:
        while not stop.is_set():
            try:
                run.latencies.append(await send_once(port, tls, shape.recipients, shape.message()))
            except (aiosmtplib.SMTPException, OSError) as error:
                record_error(run, error)

    return worker


def open_loop(
    port: int, tls: ssl.SSLContext, shape: Shape, rate: float
) -> Callable[[asyncio.Event, Run], Awaitable[None]]:
    """Messages offered at `rate` whatever the latency, over a pool of persistent connections (40)."""

    async def worker(stop: asyncio.Event, run: Run) -> None:
        queue: asyncio.Queue[float] = asyncio.Queue()
        senders = [persistent_sender(port, tls, shape, queue, run) for _ in range(40)]
        tasks = [asyncio.create_task(s) for s in senders]
        next_at = time.monotonic()
        while not stop.is_set():
            queue.put_nowait(time.perf_counter())
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await queue.join()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return worker


async def persistent_sender(
    port: int, tls: ssl.SSLContext, shape: Shape, queue: asyncio.Queue[float], run: Run
) -> None:
    client: aiosmtplib.SMTP | None = None
    try:
        while True:
            offered = await queue.get()
            try:
                if client is None or not client.is_connected:
                    client = await connect(port, tls)
                await client.sendmail(SENDER, list(shape.recipients), shape.message())
                run.latencies.append(time.perf_counter() - offered)  # from when it was offered: queueing counts
            except (aiosmtplib.SMTPException, OSError) as error:
                record_error(run, error)
                client = None
            finally:
                queue.task_done()
    finally:
        if client is not None:
            client.close()


def print_runs(runs: list[Run], services: list[str]) -> None:
    head = f"{'shape':44}{'msg/s':>7}{'p50':>7}{'p95':>7}{'p99':>7}  {'errors':14}"
    head += "".join(f"{'CPU ms ' + s[:9]:>17}" for s in services) + "".join(f"{'RSS ' + s[:9]:>15}" for s in services)
    print(head)
    for run in runs:
        ms = [percentile(run.latencies, q) * 1000 for q in (0.5, 0.95, 0.99)]
        errors = ",".join(f"{k}:{v}" for k, v in run.errors.items()) or "-"
        line = f"{run.label:44}{run.rate:>7.0f}{ms[0]:>7.1f}{ms[1]:>7.1f}{ms[2]:>7.1f}  {errors:14}"
        cpu = run.cpu_ms()
        line += "".join(f"{cpu[s]:>17.2f}" if s in cpu else f"{'':>17}" for s in services)
        line += "".join(f"{run.peak[s]:>15.0f}" if s in run.peak else f"{'':>15}" for s in services)
        print(line, flush=True)


@contextlib.contextmanager
def bare_server(stack: Stack) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The bare aiosmtpd server (bench/bare_server.py) with the stack's certificate: its process and port, stopped
    on the way out."""
    port = free_port()
    cert = stack.certificate
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_server", str(port), str(cert.cert_file), str(cert.key_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield process, port
    finally:
        process.terminate()
        process.wait(10)


def set_api_latency(stack: Stack, ms: int) -> None:
    body = json.dumps({"emails": {"latency_ms": ms}} if ms else {}).encode()
    request = urllib.request.Request(
        f"{stack.sandbox_url}/sandbox/faults", data=body, method="PUT", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).close()


async def side_by_side(stack: Stack, tls: ssl.SSLContext, bare_pid: int, bare_port: int) -> None:
    gateway = service_pids(stack)
    edge = stack.ports.smtp_starttls
    services = ["bare-aiosmtpd", "smtp-edge", "forwarder", "cakemail-sandbox"]
    bare = {"bare-aiosmtpd": bare_pid}
    one, mb = small(), attachment()
    runs: list[Run] = []
    for label, make in (
        (f"persistent, {CONNECTIONS} connections", persistent),
        (f"new connection per message, {CONNECTIONS} at once", per_message),
    ):
        runs.append(await measure(f"bare: {label}", bare, [make(bare_port, tls, one) for _ in range(CONNECTIONS)]))
        runs.append(await measure(f"gateway: {label}", gateway, [make(edge, tls, one) for _ in range(CONNECTIONS)]))
        print_runs(runs[-2:], services)
    label = f"1 MB attachment, {CONNECTIONS} persistent"
    runs.append(await measure(f"bare: {label}", bare, [persistent(bare_port, tls, mb) for _ in range(CONNECTIONS)]))
    runs.append(await measure(f"gateway: {label}", gateway, [persistent(edge, tls, mb) for _ in range(CONNECTIONS)]))
    print_runs(runs[-2:], services)

    set_api_latency(stack, 20)
    try:
        runs.append(await measure("gateway: 278 msg/s offered, API +20 ms", gateway, [open_loop(edge, tls, one, 278)]))
        fan: dict[int, Run] = {}
        for count in (1, 100):
            label = f"gateway: {count} recipient(s), 1 connection, API +20 ms"
            worker = persistent(edge, tls, small(count))
            fan[count] = await measure(label, gateway, [worker], seconds=max(5.0, SECONDS / 2))
            runs.append(fan[count])
    finally:
        set_api_latency(stack, 0)
    print_runs(runs[-3:], services)

    print("\nAll shapes, side by side (latency ms; CPU ms per message; peak RSS MiB):")
    print_runs(runs, services)
    base, gw = runs[0], runs[1]
    bare_cpu = base.cpu_ms()["bare-aiosmtpd"]
    gw_cpu = gw.cpu_ms()["smtp-edge"] + gw.cpu_ms()["forwarder"]
    print(
        f"\nsmall, persistent: edge+forwarder {gw_cpu:.2f} CPU ms/msg = {gw_cpu / bare_cpu:.1f}x bare aiosmtpd "
        f"({bare_cpu:.2f}); throughput {gw.rate:.0f} vs {base.rate:.0f} msg/s"
    )
    p50 = {n: percentile(r.latencies, 0.5) for n, r in fan.items()}
    print(f"fan-out at API +20 ms: 100 recipients p50 {p50[100] * 1000:.0f} ms = {p50[100] / p50[1]:.1f}x 1 recipient")


def main() -> int:
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs", flush=True)
    with running_stack() as (stack, tls):
        with bare_server(stack) as (bare, bare_port):
            uvloop.run(side_by_side(stack, tls, bare.pid, bare_port))
        if "burst" not in SKIP:
            print("\n20 MB burst (bench/burst.py):", flush=True)
            asyncio.run(burst.run(stack, tls))
    problems: list[str] = []
    if "soak" not in SKIP:
        print("\n60-second soak (bench/soak.py):", flush=True)
        problems = soak.run_soak(60.0, 278.0, sample_seconds=3.0)
    if "exhaustion" not in SKIP:
        print("\nResource exhaustion (bench/exhaustion.py):", flush=True)
        results = asyncio.run(exhaustion.run(exhaustion.shapes(), hold=20.0, baseline=10.0))
        print(exhaustion.table(results))
        failed = [p for f in results for p in exhaustion.verdict(f)]
        for problem in failed:
            print(f"FAIL {problem}")
        problems += failed
    print(f"\nload average after: {os.getloadavg()}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
