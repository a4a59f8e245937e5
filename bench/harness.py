"""What every benchmark here shares: the real stack in a scratch directory, per-process readings from /proc and
/metrics, and one SMTP send over STARTTLS + AUTH."""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib

from bench.shapes import PASSWORD, SENDER, USERNAME
from devstack.certs import ensure_dev_certificate
from devstack.stack import Stack, StackPorts

# Every bench client comes from 127.0.0.1 as the demo account: the abuse limits would measure themselves.
EDGE_UNLIMITED = {
    "MAX_CONNECTIONS_PER_IP": "2000",
    "RATE_LIMIT_PER_IP_PER_MINUTE": "0",
    "RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "0",
    "LOG_LEVEL": "WARNING",
}


@contextlib.contextmanager
def running_stack(extra_env: dict[str, dict[str, str]] | None = None) -> Iterator[tuple[Stack, ssl.SSLContext]]:
    """The stack on ephemeral loopback ports, its certificate and logs in a scratch directory (nothing is written
    in or outside the repository), stopped on exit."""
    extra = {"edge": dict(EDGE_UNLIMITED), "forwarder": {"LOG_LEVEL": "WARNING"}, "sandbox": {"LOG_LEVEL": "WARNING"}}
    for name, env in (extra_env or {}).items():
        extra.setdefault(name, {}).update(env)
    with tempfile.TemporaryDirectory() as scratch:
        certificate = ensure_dev_certificate(Path(scratch) / "certs")
        stack = Stack(StackPorts.ephemeral(), certificate, log_dir=Path(scratch), extra_env=extra)
        stack.start()
        try:
            yield stack, ssl.create_default_context(cafile=str(certificate.ca_file))
        finally:
            stack.stop()


def service_pids(stack: Stack) -> dict[str, int]:
    return {s.name: s.process.pid for s in stack.services if s.process is not None}


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def descendants(pid: int) -> list[int]:
    """The process's children, theirs, and so on (the edge's fork server and parse workers), from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in task.read_text().split())
        if parent != pid:
            found.append(parent)
    return found


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (MiB): what a pod running it holds. A sum of RSS counts
    pages shared between them twice, so it errs high (the fork server's workers share little with the edge)."""
    total = rss_mib(pid)[0]
    for child in descendants(pid):
        with contextlib.suppress(OSError, KeyError):  # gone meanwhile
            total += rss_mib(child)[0]
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def scrape(port: int, *names: str) -> float | None:
    """The sum of the first of `names` that /metrics exposes (metric names may differ between versions)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    for name in names:
        values = [float(line.rsplit(" ", 1)[1]) for line in lines if line.split("{")[0].split(" ")[0] == name]
        if values:
            return sum(values)
    return None


async def connect(port: int, tls: ssl.SSLContext) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=tls, timeout=300)
    await client.connect()
    await client.login(USERNAME, PASSWORD)
    return client


async def send_once(port: int, tls: ssl.SSLContext, recipients: tuple[str, ...], message: bytes) -> float:
    """A new connection for one message; returns the seconds it took."""
    started = time.perf_counter()
    client = await connect(port, tls)
    try:
        await client.sendmail(SENDER, list(recipients), message)
    finally:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
