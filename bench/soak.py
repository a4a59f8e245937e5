"""`make soak`: the whole stack under steady load for SOAK_MINUTES (30 by default) at SOAK_RATE messages/s (278),
a mix of shapes, 1% of API calls failing with 503 (the sandbox's `error_rate` fault).

Every 10 s it samples, per service, RSS, open file descriptors, asyncio tasks (`asyncio_tasks` on /metrics) and the
forwarder's cached tokens. It fails when RSS after the warm-up grows by more than 10%, when a count keeps climbing
(every sample of the last third of the run above every sample of the first third), or when a message is lost or
duplicated: each message carries a token; a 4xx is retried as a real client would (same message), and once a minute
the load pauses, the sandbox's records are counted per token (one per recipient expected for every 250, none for a
message never accepted) and cleared.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import ssl
import statistics
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import aiosmtplib
import uvloop

from bench.harness import connect, open_fds, percentile, rss_mib, running_stack, scrape, send_once, service_pids
from bench.shapes import SENDER, Shape, attachment, html, small
from devstack.stack import Stack

SAMPLE_SECONDS = 10.0
CHECK_SECONDS = 60.0
RSS_GROWTH_LIMIT = 0.10
CONNECTIONS = 40
IDLE_SETTLE_SECONDS = 8.0
# A count "keeps climbing" when every sample of the last third exceeds every sample of the first third by more than
# this much (in-flight work moves tasks and sockets by tens from one sample to the next).
CLIMB_SLACK = 0.25
IDLE_SLACK = {"tasks": 5, "fds": 10}
MIN_PER_THIRD = 3  # fewer samples than this per third (short runs): only the idle comparison judges the counts
MAX_ATTEMPTS = 8
# (shape, weight, new connection per message)
MIX: list[tuple[Shape, int, bool]] = [
    (small(), 76, False),
    (small(), 8, True),
    (html(), 10, False),
    (small(10), 5, False),
    (attachment(), 1, False),
]
_TOKEN = re.compile(r"soak[0-9a-f]{32}")


@dataclass
class Sample:
    at: float
    rss: float
    fds: int
    tasks: float | None
    tokens: float | None


@dataclass
class SoakResult:
    seconds: float
    accepted: int = 0
    latencies: list[float] = field(default_factory=list)
    replies: Counter[str] = field(default_factory=Counter)  # every non-250 reply, by code, retries included
    given_up: int = 0  # still 4xx after MAX_ATTEMPTS: the client keeps the message (not a loss)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # delivered although the client never got a 250
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    max_backlog: int = 0
    dispatched: int = 0
    refused_5xx: int = 0
    idle_before: dict[str, Sample] = field(default_factory=dict)
    idle_after: dict[str, Sample] = field(default_factory=dict)


def sandbox_tokens(url: str) -> Counter[str]:
    with urllib.request.urlopen(f"{url}/sandbox/emails?content=0", timeout=60) as response:
        records = json.loads(response.read())["emails"]
    counts: Counter[str] = Counter()
    for record in records:
        counts.update(set(_TOKEN.findall(json.dumps(record))))
    return counts


def clear_sandbox(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/sandbox/emails", method="DELETE"), timeout=30).close()


class Connection:
    """One persistent SMTP session, opened on first use and again after an error."""

    def __init__(self, port: int, tls: ssl.SSLContext) -> None:
        self.port, self.tls = port, tls
        self.client: aiosmtplib.SMTP | None = None

    async def send(self, recipients: tuple[str, ...], message: bytes) -> None:
        if self.client is None or not self.client.is_connected:
            self.client = await connect(self.port, self.tls)
        await self.client.sendmail(SENDER, list(recipients), message)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class Soak:
    def __init__(
        self, stack: Stack, tls: ssl.SSLContext, seconds: float, rate: float, sample_seconds: float = SAMPLE_SECONDS
    ) -> None:
        self.stack, self.tls, self.rate, self.sample_seconds = stack, tls, rate, sample_seconds
        self.port = stack.ports.smtp_starttls
        self.result = SoakResult(seconds)
        self.queue: asyncio.Queue[tuple[Shape, bool]] = asyncio.Queue()
        self.running = asyncio.Event()  # cleared while a checkpoint counts the sandbox's records
        self.expected: dict[str, int] = {}  # token -> recipients, for messages answered 250 since the last check
        self.refused: set[str] = set()  # tokens the client gave up on since the last check
        self.rng = random.Random(7)

    async def dispatch(self, until: float) -> None:
        """Open loop: one message every 1/rate seconds whatever the latency (a backlog shows up in the report)."""
        interval, next_at = 1 / self.rate, time.monotonic()
        shapes, weights = [(s, new) for s, _, new in MIX], [w for _, w, _ in MIX]
        while next_at < until:
            if not self.running.is_set():
                await self.running.wait()
                next_at = max(next_at, time.monotonic())  # a checkpoint's pause is not a backlog
            self.queue.put_nowait(self.rng.choices(shapes, weights)[0])
            self.result.dispatched += 1
            self.result.max_backlog = max(self.result.max_backlog, self.queue.qsize())
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def worker(self) -> None:
        connection = Connection(self.port, self.tls)
        try:
            while True:
                shape, new_connection = await self.queue.get()
                try:
                    await self.deliver(connection, shape, new_connection)
                finally:
                    self.queue.task_done()
        finally:
            connection.close()

    async def deliver(self, connection: Connection, shape: Shape, new_connection: bool) -> None:
        """Sends until a 250, as a client that owns the message on a 4xx would; tallies the outcome."""
        token = "soak" + os.urandom(16).hex()
        message = shape.message(token)
        started = time.perf_counter()
        for attempt in range(MAX_ATTEMPTS):
            try:
                if new_connection:
                    await send_once(self.port, self.tls, shape.recipients, message)
                else:
                    await connection.send(shape.recipients, message)
            except aiosmtplib.SMTPResponseException as error:
                self.result.replies[str(error.code)] += 1
                if error.code >= 500:
                    self.refused.add(token)
                    self.result.refused_5xx += 1
                    return
            except (aiosmtplib.SMTPException, OSError) as error:
                self.result.replies[type(error).__name__] += 1
                connection.close()
            else:
                self.result.accepted += 1
                self.result.latencies.append(time.perf_counter() - started)
                self.expected[token] = len(shape.recipients)
                return
            await asyncio.sleep(0.2 * (attempt + 1))
        self.result.given_up += 1
        self.refused.add(token)

    async def checkpoint(self) -> None:
        """Pause, let every message in flight finish (retries included), count the records, clear them."""
        self.running.clear()
        await self.queue.join()
        url = self.stack.sandbox_url
        counts = await asyncio.to_thread(sandbox_tokens, url)
        await asyncio.to_thread(clear_sandbox, url)
        for token, want in self.expected.items():
            got = counts.pop(token, 0)
            if got < want:
                self.result.lost.append(token)
            elif got > want:
                self.result.duplicated.append(token)
        self.result.unexpected.extend(counts)  # any token left was delivered without a 250
        self.expected.clear()
        self.refused.clear()
        self.running.set()

    async def take_sample(self, at: float) -> dict[str, Sample]:
        pids = service_pids(self.stack)
        ports = {"smtp-edge": self.stack.ports.edge_http, "forwarder": self.stack.ports.forwarder_http}
        taken = {}
        for name, port in ports.items():
            tasks = await asyncio.to_thread(scrape, port, "asyncio_tasks")
            tokens = None
            if name == "forwarder":
                names = ("smtp_api_key_cache_size", "forwarder_token_cache_entries")
                tokens = await asyncio.to_thread(scrape, port, *names)
            taken[name] = Sample(at, rss_mib(pids[name])[0], open_fds(pids[name]), tasks, tokens)
        return taken

    async def sample(self, until: float, started: float) -> None:
        while True:
            await asyncio.sleep(self.sample_seconds)
            await self.running.wait()
            if time.monotonic() > until:
                return  # the load has stopped: not a steady-state sample
            for name, sample in (await self.take_sample(time.monotonic() - started)).items():
                self.result.samples.setdefault(name, []).append(sample)

    async def run(self) -> SoakResult:
        self.result.idle_before = await self.take_sample(0.0)
        started = time.monotonic()
        until = started + self.result.seconds
        self.running.set()
        workers = [asyncio.create_task(self.worker()) for _ in range(CONNECTIONS)]
        sampler = asyncio.create_task(self.sample(until, started))
        dispatcher = asyncio.create_task(self.dispatch(until))
        while not dispatcher.done():
            await asyncio.wait([dispatcher], timeout=CHECK_SECONDS)
            await self.checkpoint()
        await sampler
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        # Idle again: every session closed, pooled HTTP connections past their keep-alive (httpx: 5 s). httpx closes
        # expired connections when the pool is next used: one last message does that.
        await asyncio.sleep(IDLE_SETTLE_SECONDS)
        await send_once(self.port, self.tls, small().recipients, small().message())
        await asyncio.sleep(1.0)
        self.result.idle_after = await self.take_sample(time.monotonic() - started)
        return self.result


def warm_up_seconds(seconds: float) -> float:
    return max(30.0, 0.1 * seconds)


def verdict(result: SoakResult) -> list[str]:
    """What failed, in words; empty when the soak passed."""
    problems = []
    for kind, tokens in (
        ("lost", result.lost),
        ("duplicated", result.duplicated),
        ("delivered without 250", result.unexpected),
    ):
        if tokens:
            problems.append(f"{len(tokens)} messages {kind} (e.g. {tokens[0]})")
    warm = warm_up_seconds(result.seconds)
    for name, samples in result.samples.items():
        steady = [s for s in samples if s.at >= warm]
        if len(steady) < 3:
            problems.append(f"{name}: only {len(steady)} samples after the warm-up, too few to judge")
            continue
        third = max(1, len(steady) // 3)
        start_rss = statistics.median(s.rss for s in steady[:third])
        end_rss = statistics.median(s.rss for s in steady[-third:])
        if end_rss > start_rss * (1 + RSS_GROWTH_LIMIT):
            problems.append(f"{name}: RSS grew {start_rss:.0f} -> {end_rss:.0f} MiB after the warm-up")
        for label in ("fds", "tasks", "tokens"):
            values = [getattr(s, label) for s in steady]
            if any(v is None for v in values):
                continue
            if third >= MIN_PER_THIRD and min(values[-third:]) > max(values[:third]) * (1 + CLIMB_SLACK):
                problems.append(f"{name}: {label} kept climbing ({values[0]:.0f} -> {values[-1]:.0f})")
    for name, before in result.idle_before.items():
        after = result.idle_after.get(name)
        for label, slack in IDLE_SLACK.items():
            was, now = getattr(before, label), getattr(after, label, None)
            if was is not None and now is not None and now > was + slack:
                problems.append(f"{name}: {now:.0f} {label} once idle again, {was:.0f} before the load")
    unaccounted = result.dispatched - result.accepted - result.given_up - result.refused_5xx
    if unaccounted:
        problems.append(f"{unaccounted} messages dispatched but never answered")
    return problems


def report(result: SoakResult, rate: float) -> list[str]:
    latencies = result.latencies
    print(
        f"\nsoak: {result.seconds / 60:.1f} min at {rate:.0f} msg/s offered; {result.dispatched} sent, "
        f"{result.accepted} accepted "
        f"({result.accepted / result.seconds:.0f}/s), max backlog {result.max_backlog}, "
        f"{result.given_up} given up after {MAX_ATTEMPTS} attempts"
    )
    print(
        f"latency to 250 (retries included) p50/p95/p99 ms: {percentile(latencies, 0.5) * 1000:.0f} / "
        f"{percentile(latencies, 0.95) * 1000:.0f} / {percentile(latencies, 0.99) * 1000:.0f}"
    )
    print(f"other replies: {dict(result.replies) or 'none'}")
    print(f"{'service':12}{'t s':>6}{'RSS MiB':>9}{'fds':>6}{'tasks':>7}{'tokens':>8}")
    for name, samples in result.samples.items():
        idle = [result.idle_before[name], *samples, result.idle_after[name]]
        for s in idle:
            tasks = "-" if s.tasks is None else f"{s.tasks:.0f}"
            tokens = "-" if s.tokens is None else f"{s.tokens:.0f}"
            when = "idle" if s is idle[0] or s is idle[-1] else ""
            print(f"{name:12}{s.at:>6.0f}{s.rss:>9.0f}{s.fds:>6}{tasks:>7}{tokens:>8} {when}")
    problems = verdict(result)
    print("soak: PASS" if not problems else "soak: FAIL\n  " + "\n  ".join(problems))
    return problems


def soak_env(rate: float, seconds: float) -> dict[str, dict[str, str]]:
    # The delivery record is bounded (DELIVERY_RECORD_MAX_ENTRIES): sized to fill during the warm-up, so its
    # legitimate growth up to the bound is not read as a leak afterwards.
    entries = max(1000, int(rate * warm_up_seconds(seconds) / 2))
    return {
        # Every record between two checkpoints is counted: none may be forgotten by the sandbox's bounds.
        "sandbox": {
            "SANDBOX_FAULTS": json.dumps({"emails": {"error_status": 503, "error_rate": 0.01}}),
            "SANDBOX_MAX_EMAILS": "0",
            "SANDBOX_MAX_EMAIL_BYTES": "0",
        },
        "forwarder": {"DELIVERY_RECORD_MAX_ENTRIES": str(entries)},
    }


def run_soak(seconds: float, rate: float, sample_seconds: float = SAMPLE_SECONDS) -> list[str]:
    with running_stack(soak_env(rate, seconds)) as (stack, tls):
        result = uvloop.run(Soak(stack, tls, seconds, rate, sample_seconds).run())
    return report(result, rate)


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    rate = float(os.environ.get("SOAK_RATE", "278"))
    return 1 if run_soak(minutes * 60, rate) else 0


if __name__ == "__main__":
    sys.exit(main())
