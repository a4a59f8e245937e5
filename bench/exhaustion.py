"""`make bench-exhaustion`: resource-exhaustion attacks on the real stack, each beside a well-behaved client.

For each shape: a fresh stack (edge + forwarder + sandbox; rate limits off as in `make bench`; PROXY_PROTOCOL=true
and the edge's default connection caps), a probe client sending small messages back to back (PROXY header,
STARTTLS, AUTH PLAIN, one recipient, QUIT: a new connection each time) alone for BASELINE seconds, then the same
probe while the attack runs (its ramp-up plus HOLD seconds at full strength). The attack runs in a process of its
own (bench/attacks.py). Reported per shape: the probe's p50/p99 and errors during the attack against its baseline,
the peak RSS of the edge and the forwarder against their baseline peak, what the attacker got (reply codes, how its
connections ended) and a verdict:

- probe served: no probe error during the attack, at least one probe message, and p99 during <= P99_BUDGET x p99
  of the baseline or P99_FLOOR_SECONDS, whichever is more (`p99_allowed`);
- memory bounded by the edge's own limits: each service's peak RSS (its process tree) growth over its baseline peak
  at most this attack's share of the pod's memory, that is (POD_MEMORY_MIB - baseline) x attacking connections /
  MAX_CONNECTIONS, plus RSS_SLACK_MIB of allocator noise (`rss_bound`). Put the other way: what one attacking
  connection costs, times the edge's connection cap, must fit the memory limit the Helm charts give the pod; an
  attack that passes cannot take the pod down by being scaled up to the cap. The message shapes are `budgeted`
  (DATA_BYTES_IN_FLIGHT_LIMIT caps their bytes in flight whatever the number of connections): their peak must fit
  the pod beside the rest of the connection cap held idle;
- the attack at full strength: every attacking connection reached its attack state.

The shapes (full counts): 1,000 idle TLS connections; 200 slow-drip DATA uploads (a header line a second); 20
sessions pipelining 1,000 RCPTs per transaction; 20 sessions that never log in pipelining 1,000 NOOPs per write
(the same flood open to anyone); 4 sessions sending messages whose header block fills
MESSAGE_SIZE_LIMIT; 4 sessions sending 100-level nested multiparts; 4 sessions sending 25 MB messages of base64
gzip bombs. Settings: EXHAUST_SHAPES (comma-separated names; all), EXHAUST_HOLD_SECONDS (20),
EXHAUST_BASELINE_SECONDS (10), EXHAUST_EDGE_ENV (edge settings for the run, comma-separated NAME=value, e.g.
`COMMAND_TIMEOUT_SECONDS=10,PARSE_IN_THREAD_BYTES=0`; the edge's defaults otherwise). Latencies share 2 cores with
the load generator: read the ratios, not absolute figures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import resource
import ssl
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.attacks import Plan, Report, proxy_header, raise_fd_limit
from bench.harness import EDGE_UNLIMITED, percentile, service_pids, tree_rss_mib
from bench.shapes import PASSWORD, USERNAME
from devstack.certs import ensure_dev_certificate
from devstack.stack import Stack, StackPorts
from smtp_edge.config import EdgeSettings

P99_BUDGET = 5.0  # the probe's p99 during an attack, at most this many times its p99 alone ...
# ... or this, whichever is more. A ratio alone punished a faster gateway: when the edge stopped yielding on every
# reply line (2026-12-02) the probe's baseline p99 fell from 75 to 16 ms and the same RCPT flood's p99 from 310 to
# 145 ms, and the ratio rose from 4.1x to 9.1x. A quarter second at p99 for a whole new-connection submission (TLS
# handshake and 11 round trips) is not noticed by a person, nor near any SMTP client timeout (RFC 5321 4.5.3.2:
# minutes); starvation shows as seconds (1-15 s in the first runs).
P99_FLOOR_SECONDS = 0.25
MIN_PROBES = 1  # a probe that completed nothing during the attack was starved, whatever its errors say
PROBE_TIMEOUT = 60.0  # one probe message (connect to 250 to QUIT); longer is an error
PROBE_SOURCE = "198.19.255.1"  # the probe's own client address (PROXY header), apart from the attackers'
SERVICES = ("smtp-edge", "forwarder")
MESSAGE_SIZE_LIMIT = 26_214_400  # the edge's default; the message shapes fill it (set for the run, see stack_env)
MIB = 1024 * 1024
POD_MEMORY_MIB = 1024.0  # resources.limits.memory of helm/smtp-edge and helm/forwarder (1Gi)
MAX_CONNECTIONS = int(EdgeSettings.model_fields["max_connections"].default)  # the edge's total cap (2000)
RSS_SLACK_MIB = 16.0  # allocator and interpreter noise allowed on top of the attack's share
# What one idle TLS connection holds in the edge (MiB): 1,000 held connections took +113 MiB on 2026-12-02 with the
# 64 KiB TLS read buffer (docs/security.md, "Resource exhaustion", item 4). The budgeted shapes' bound keeps room for
# the rest of the connection cap held idle at this cost.
IDLE_CONNECTION_MIB = 0.125
REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Shape:
    name: str
    label: str
    connections: int
    message_bytes: int = 0  # the message shapes' size on the wire
    # The attack's bytes count against the edge's DATA_BYTES_IN_FLIGHT_LIMIT, so more connections cannot hold more
    # of them in flight (the extra ones are answered 452 4.3.1): memory is judged against the pod, not per connection.
    budgeted: bool = False
    rcpts_per_transaction: int = 1000
    drip_interval: float = 1.0
    depth: int = 100

    def plan(self, smtp_port: int, ca_file: str) -> Plan:
        return Plan(
            shape=self.name,
            connections=self.connections,
            smtp_port=smtp_port,
            ca_file=ca_file,
            message_bytes=self.message_bytes,
            rcpts_per_transaction=self.rcpts_per_transaction,
            drip_interval=self.drip_interval,
            depth=self.depth,
            username=USERNAME,
            password=PASSWORD,
        )


def shapes(scale: float = 1.0, size_limit: int = MESSAGE_SIZE_LIMIT) -> list[Shape]:
    """The shapes; `scale` < 1 shrinks the connection counts (the smoke test), `size_limit` the messages."""

    def n(count: int) -> int:
        return max(1, round(count * scale))

    fill = size_limit - 4096  # just under the limit, the Message-ID line and end of data included
    return [
        Shape("idle", f"{n(1000)} idle TLS connections", n(1000)),
        Shape("slow-drip", f"{n(200)} slow-drip DATA uploads", n(200)),
        Shape("tiny-rcpts", f"{n(20)} x 1,000 pipelined RCPTs", n(20)),
        Shape("noop-flood", f"{n(20)} x 1,000 pipelined NOOPs, no AUTH", n(20)),
        Shape("big-headers", f"{n(4)} x headers filling the size limit", n(4), message_bytes=fill, budgeted=True),
        Shape("nested-mime", f"{n(4)} x 100-level nested multipart", n(4), budgeted=True),
        Shape("base64-bomb", f"{n(4)} x 25 MB base64 gzip bombs", n(4), message_bytes=fill, budgeted=True),
    ]


@dataclass
class Figures:
    """One shape's measurements: what the verdict judges and the table shows."""

    shape: str
    label: str
    baseline: list[float] = field(default_factory=list)  # probe seconds per message, alone
    baseline_errors: Counter[str] = field(default_factory=Counter)
    during: list[float] = field(default_factory=list)  # probe seconds per message, during the attack
    during_errors: Counter[str] = field(default_factory=Counter)
    rss_baseline: dict[str, float] = field(default_factory=dict)  # peak MiB while the probe ran alone
    rss_peak: dict[str, float] = field(default_factory=dict)  # peak MiB during the attack
    rss_after: dict[str, float] = field(default_factory=dict)  # MiB a few seconds after the attack stopped
    connections: int = 1  # attacking connections
    budgeted: bool = False  # Shape.budgeted
    pod_memory: float = POD_MEMORY_MIB
    max_connections: int = MAX_CONNECTIONS
    attack: Report | None = None
    seconds: float = 0.0  # the attack's length, ramp included


def p99_allowed(figures: Figures, p99_budget: float = P99_BUDGET) -> float:
    """The probe's p99 allowed during the attack (seconds)."""
    return max(p99_budget * percentile(figures.baseline, 0.99), P99_FLOOR_SECONDS)


def p99_ratio(figures: Figures) -> float:
    base = percentile(figures.baseline, 0.99)
    return percentile(figures.during, 0.99) / base if base > 0 else math.nan


def rss_growth(figures: Figures, service: str) -> float:
    return figures.rss_peak.get(service, 0.0) - figures.rss_baseline.get(service, 0.0)


def rss_bound(figures: Figures, service: str) -> float:
    """The growth allowed: this attack's share of the pod's memory (its connections out of the edge's cap). For a
    budgeted shape, whose bytes in flight the edge caps whatever the number of connections: what the pod has above
    its baseline, less (edge) the rest of the connection cap held idle."""
    free = figures.pod_memory - figures.rss_baseline.get(service, 0.0)
    if figures.budgeted:
        idle = (figures.max_connections - figures.connections) * IDLE_CONNECTION_MIB if service == "smtp-edge" else 0
        return free - idle
    return RSS_SLACK_MIB + free * figures.connections / figures.max_connections


def at_the_cap(figures: Figures, service: str) -> float:
    """The service's RSS if the attack were scaled up to the edge's connection cap (MiB). A budgeted shape's extra
    connections hold no more message bytes: each costs what an idle one does (edge)."""
    baseline = figures.rss_baseline.get(service, 0.0)
    growth = max(0.0, rss_growth(figures, service))
    if figures.budgeted:
        extra = figures.max_connections - figures.connections
        return baseline + growth + (extra * IDLE_CONNECTION_MIB if service == "smtp-edge" else 0.0)
    return baseline + growth / figures.connections * figures.max_connections


def verdict(figures: Figures, p99_budget: float = P99_BUDGET) -> list[str]:
    """Pure: what went wrong in one shape's figures (empty: the probe was served and memory stayed bounded)."""
    problems: list[str] = []
    attack = figures.attack
    if attack is None:
        return [f"{figures.shape}: no report from the attacker"]
    if attack.established < attack.intended:
        short = f"{attack.established}/{attack.intended} connections"
        problems.append(f"{figures.shape}: attack short of strength, {short}")
    if figures.baseline_errors or not figures.baseline:
        problems.append(f"{figures.shape}: the baseline is unusable ({dict(figures.baseline_errors) or 'no probe'})")
    if figures.during_errors:
        problems.append(f"{figures.shape}: probe errors during the attack: {dict(figures.during_errors)}")
    if len(figures.during) < MIN_PROBES:
        problems.append(f"{figures.shape}: probe starved, no message completed during the attack")
    if figures.during and figures.baseline:
        p99, allowed = percentile(figures.during, 0.99), p99_allowed(figures, p99_budget)
        if not p99 <= allowed:
            problems.append(
                f"{figures.shape}: probe p99 {p99 * 1000:.0f} ms, {p99_ratio(figures):.1f}x its baseline (budget "
                f"{allowed * 1000:.0f} ms: {p99_budget:g}x, at least {P99_FLOOR_SECONDS * 1000:.0f} ms)"
            )
    for service in figures.rss_peak:
        growth, bound = rss_growth(figures, service), rss_bound(figures, service)
        if growth > bound:
            problems.append(
                f"{figures.shape}: {service} RSS +{growth:.0f} MiB (bound {bound:.0f} MiB; "
                f"{at_the_cap(figures, service):,.0f} MiB at {figures.max_connections:,} connections)"
            )
    return problems


# The well-behaved client.


class ProbeError(Exception):
    pass


async def _reply(reader: asyncio.StreamReader) -> str:
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise ProbeError("closed")
        if line[3:4] != b"-":
            return line.decode(errors="replace")


async def _step(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes | None, code: str) -> None:
    if line is not None:
        writer.write(line)
    answer = await _reply(reader)
    if not answer.startswith(code):
        raise ProbeError(answer[:9].strip())  # e.g. "421 4.7.0"


async def probe_once(port: int, tls: ssl.SSLContext, n: int) -> None:
    """One small message on a new connection: PROXY header, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(proxy_header(PROBE_SOURCE, port, n))
        await _step(reader, writer, None, "220")
        await _step(reader, writer, b"EHLO probe.test\r\n", "250")
        await _step(reader, writer, b"STARTTLS\r\n", "220")
        await writer.start_tls(tls, server_hostname="localhost")
        await _step(reader, writer, b"EHLO probe.test\r\n", "250")
        blob = base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode())
        await _step(reader, writer, b"AUTH PLAIN " + blob + b"\r\n", "235")
        await _step(reader, writer, b"MAIL FROM:<bench@example.com>\r\n", "250")
        await _step(reader, writer, b"RCPT TO:<sink@example.net>\r\n", "250")
        await _step(reader, writer, b"DATA\r\n", "354")
        message = (
            f"Message-ID: <probe.{n}.{time.time_ns()}@bench>\r\nFrom: bench@example.com\r\nTo: sink@example.net\r\n"
            f"Subject: probe {n}\r\n\r\nA well-behaved client.\r\n.\r\n"
        )
        await _step(reader, writer, message.encode(), "250")
        await _step(reader, writer, b"QUIT\r\n", "221")
    finally:
        writer.transport.abort()


@dataclass
class ProbeLog:
    entries: list[tuple[float, float, str | None]] = field(default_factory=list)  # (started, seconds, error)

    def window(self, start: float, end: float) -> tuple[list[float], Counter[str]]:
        latencies = [s for t, s, e in self.entries if start <= t < end and e is None]
        errors = Counter(e for t, _, e in self.entries if start <= t < end and e is not None)
        return latencies, errors


async def probe(port: int, tls: ssl.SSLContext, stop: asyncio.Event, log: ProbeLog) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        started = time.perf_counter()
        error: str | None = None
        try:
            await asyncio.wait_for(probe_once(port, tls, n), PROBE_TIMEOUT)
        except TimeoutError:
            error = "timeout"
        except ProbeError as refused:
            error = str(refused)
        except (OSError, ssl.SSLError) as failed:
            error = type(failed).__name__
        log.entries.append((started, time.perf_counter() - started, error))


async def sample_rss(pids: dict[str, int], stop: asyncio.Event, samples: list[tuple[float, dict[str, float]]]) -> None:
    while not stop.is_set():
        samples.append((time.perf_counter(), {name: tree_rss_mib(pid) for name, pid in pids.items()}))
        await asyncio.sleep(0.1)


def peaks(samples: list[tuple[float, dict[str, float]]], start: float, end: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for at, values in samples:
        if start <= at <= end:
            for name, value in values.items():
                out[name] = max(out.get(name, 0.0), value)
    return out


# One shape.


class Attacker:
    """bench/attacks.py in a process of its own, driven over its stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, plan: Plan) -> Attacker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.attacks",
            json.dumps(plan.__dict__),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPOSITORY,  # where `-m bench.attacks` is found
        )
        attacker = cls(process)
        await attacker.expect("prepared", 300)
        return attacker

    async def expect(self, key: str, timeout: float) -> Any:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the attacker exited (status {await self.process.wait()}) before {key!r}")
        return json.loads(line)[key]

    def say(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word.encode() + b"\n")


async def measure(
    shape: Shape, stack: Stack, tls: ssl.SSLContext, hold: float, baseline: float, settle: float = 3.0
) -> Figures:
    figures = Figures(shape.name, shape.label, connections=shape.connections, budgeted=shape.budgeted)
    pids = {name: pid for name, pid in service_pids(stack).items() if name in SERVICES}
    port = stack.ports.smtp_starttls
    attacker = await Attacker.start(shape.plan(stack.ports.smtp_implicit_tls, str(stack.certificate.ca_file)))
    log = ProbeLog()
    samples: list[tuple[float, dict[str, float]]] = []
    stop_probe, stop_sampler = asyncio.Event(), asyncio.Event()
    for n in range(3):  # warm: the first AUTH opens the forwarder's channel and fetches a token
        await probe_once(port, tls, -1 - n)
    sampler = asyncio.create_task(sample_rss(pids, stop_sampler, samples))
    prober = asyncio.create_task(probe(port, tls, stop_probe, log))
    b0 = a0 = a1 = time.perf_counter()
    try:
        await asyncio.sleep(baseline)
        a0 = time.perf_counter()
        attacker.say("go")
        try:
            ramp = await attacker.expect("ready", 600)
            print(f"  {shape.name}: attack at full strength after {float(ramp):.1f} s", flush=True)
        except TimeoutError:
            print(f"  {shape.name}: attack still ramping after 600 s", flush=True)
        await asyncio.sleep(hold)
        a1 = time.perf_counter()
        attacker.say("stop")
        report = await attacker.expect("report", 120)
        figures.attack = Report.from_json(json.dumps(report))
        await attacker.process.wait()
        stop_probe.set()
        await prober
        await asyncio.sleep(settle)
        figures.rss_after = {name: tree_rss_mib(pid) for name, pid in pids.items()}
    finally:
        stop_probe.set()
        stop_sampler.set()
        await asyncio.gather(prober, sampler, return_exceptions=True)
        if attacker.process.returncode is None:
            attacker.process.kill()
            await attacker.process.wait()
    figures.seconds = a1 - a0
    figures.baseline, figures.baseline_errors = log.window(b0, a0)
    figures.during, figures.during_errors = log.window(a0, a1)
    figures.rss_baseline = peaks(samples, b0, a0)
    figures.rss_peak = peaks(samples, a0, a1)
    return figures


def stack_env(
    edge_env: dict[str, str] | None = None, size_limit: int = MESSAGE_SIZE_LIMIT
) -> dict[str, dict[str, str]]:
    """Rate limits off (as in `make bench`); PROXY headers on so the attack comes from many addresses; the edge's
    default per-IP and total connection caps in force (harness.EDGE_UNLIMITED lifts the per-IP one for `make
    bench`); the size limit the message shapes fill."""
    edge = {k: v for k, v in EDGE_UNLIMITED.items() if k != "MAX_CONNECTIONS_PER_IP"}
    edge |= {"PROXY_PROTOCOL": "true", "MESSAGE_SIZE_LIMIT": str(size_limit)}
    edge |= edge_env or {}
    return {"edge": edge, "forwarder": {"LOG_LEVEL": "WARNING"}, "sandbox": {"LOG_LEVEL": "WARNING"}}


async def run(
    selected: list[Shape],
    *,
    hold: float,
    baseline: float,
    edge_env: dict[str, str] | None = None,
    size_limit: int = MESSAGE_SIZE_LIMIT,
    stack_per_shape: bool = True,
    settle: float = 3.0,
) -> list[Figures]:
    """Each shape against the real stack (a fresh one per shape unless `stack_per_shape` is false), all files in a
    scratch directory removed on exit."""
    raise_fd_limit(sum(s.connections for s in selected) + 1024)  # inherited by the edge
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="bench-exhaustion-") as scratch:
        certificate = ensure_dev_certificate(Path(scratch) / "certs")
        tls = ssl.create_default_context(cafile=str(certificate.ca_file))
        env = stack_env(edge_env, size_limit)
        stack: Stack | None = None
        try:
            for index, shape in enumerate(selected):
                if stack is None or stack_per_shape:
                    if stack is not None:
                        stack.stop()
                    logs = Path(scratch) / f"logs-{index}"
                    logs.mkdir()
                    stack = Stack(StackPorts.ephemeral(), certificate, log_dir=logs, extra_env=env)
                    stack.start()
                print(f"{shape.label}:", flush=True)
                results.append(await measure(shape, stack, tls, hold, baseline, settle))
        finally:
            if stack is not None:
                stack.stop()
    return results


# Output.


def _codes(counter: Counter[str]) -> str:
    return ", ".join(f"{count:,} x {key}" for key, count in counter.most_common()) or "-"


def table(results: list[Figures]) -> str:
    """The figures as a Markdown table (what docs/security.md carries)."""
    rows = [
        "| shape | probe p50 ms (base) | probe p99 ms (base) | p99 ratio | probe msgs / errors | edge RSS MiB "
        "base / peak / after | forwarder RSS MiB base / peak / after | edge RSS bound / at the cap | attacker got | "
        "verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in results:

        def ms(values: list[float], q: float) -> str:
            return f"{percentile(values, q) * 1000:.0f}" if values else "-"

        def rss(service: str, f: Figures = f) -> str:
            return (
                f"{f.rss_baseline.get(service, math.nan):.0f} / {f.rss_peak.get(service, math.nan):.0f} / "
                f"{f.rss_after.get(service, math.nan):.0f}"
            )

        ratio = f"{p99_ratio(f):.1f}x" if f.during and f.baseline else "-"
        attack = f.attack
        got = "no report"
        if attack is not None:
            got = f"{attack.established}/{attack.intended} up in {attack.ramp_seconds:.1f} s; "
            got += f"replies: {_codes(attack.replies)}; ends: {_codes(attack.ends)}"
        problems = verdict(f)
        rows.append(
            f"| {f.label} | {ms(f.during, 0.5)} ({ms(f.baseline, 0.5)}) | {ms(f.during, 0.99)} "
            f"({ms(f.baseline, 0.99)}) | {ratio} | {len(f.during)} / {_codes(f.during_errors)} | "
            f"{rss('smtp-edge')} | {rss('forwarder')} | +{rss_bound(f, 'smtp-edge'):.0f} / "
            f"{at_the_cap(f, 'smtp-edge'):,.0f} | {got} | "
            f"{'pass' if not problems else 'FAIL: ' + '; '.join(p.split(': ', 1)[1] for p in problems)} |"
        )
    return "\n".join(rows)


def main() -> int:
    hold = float(os.environ.get("EXHAUST_HOLD_SECONDS", "20"))
    baseline = float(os.environ.get("EXHAUST_BASELINE_SECONDS", "10"))
    wanted = set(filter(None, os.environ.get("EXHAUST_SHAPES", "").split(",")))
    selected = [s for s in shapes() if not wanted or s.name in wanted]
    if wanted - {s.name for s in selected}:
        print(f"unknown shapes: {sorted(wanted - {s.name for s in shapes()})}", file=sys.stderr)
        return 2
    pairs = filter(None, os.environ.get("EXHAUST_EDGE_ENV", "").split(","))
    edge_env = dict(pair.strip().split("=", 1) for pair in pairs)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; fd limit {soft}", flush=True)
    budget = f"p99 budget {P99_BUDGET:g}x its baseline, at least {P99_FLOOR_SECONDS * 1000:.0f} ms"
    print(f"hold {hold:g} s after ramp-up, baseline {baseline:g} s, {budget}", flush=True)
    if edge_env:
        print(f"edge settings for this run: {edge_env}", flush=True)
    results = asyncio.run(run(selected, hold=hold, baseline=baseline, edge_env=edge_env))
    print(f"\nload average after: {os.getloadavg()}\n")
    print(table(results))
    problems = [p for f in results for p in verdict(f)]
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
