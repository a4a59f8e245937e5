"""What one session may take from the others, on a real edge over real sockets (docs/security.md, "Resource
exhaustion"): pipelined commands are answered fairly (a flood does not hold the event loop), the command limits end a
session that only talks, the budget of message bytes in flight refuses with a temporary 452 4.3.1 (and the message
is delivered when it is sent again), and an oversize header block is refused while it is read.

One stack with small limits; the flood stays under its command limit so that fairness is tested on its own."""

from __future__ import annotations

import socket
import ssl
import uuid
from collections.abc import Iterator

import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView, metric
from tests.e2e.v2 import subject_of
from tests.smtp_wire import Reply, WireClient, open_session

pytestmark = pytest.mark.e2e

MAX_COMMANDS = 20_000
FLOOD = 10_000  # "NOOP\r\n" x 10,000: 60 KB, one loopback segment, so the edge has the whole batch at once
BUDGET = 2_000_000
SIZE_LIMIT = 1_500_000
HEADER_LIMIT = 65_536
OK = b"250 2.0.0 OK\r\n"
NEWLINE = b"\r\n"


@pytest.fixture(scope="module")
def limits_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "MAX_COMMANDS_WITHOUT_MESSAGE": str(MAX_COMMANDS),
        "DATA_BYTES_IN_FLIGHT_LIMIT": str(BUDGET),
        "MESSAGE_SIZE_LIMIT": str(SIZE_LIMIT),
        "MAX_HEADER_BYTES": str(HEADER_LIMIT),
        "RATE_LIMIT_PER_IP_PER_MINUTE": "0",
        "RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "0",
    }
    logs = tmp_path_factory.mktemp("session-limits-logs")
    with Stack(StackPorts.ephemeral(), dev_certificate, log_dir=logs, extra_env={"edge": env}) as running:
        yield running


@pytest.fixture
def limits_sandbox(limits_stack: Stack) -> SandboxView:
    return SandboxView.cleared(limits_stack.sandbox_url)


def _plain(port: int, receive_buffer: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def _recv_until(sock: socket.socket, received: bytearray, lines: int) -> None:
    while received.count(b"\r\n") < lines:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"closed after {received.count(NEWLINE)} lines")
        received += chunk


def _recv_available(sock: socket.socket, received: bytearray) -> None:
    """Whatever the edge has sent so far (on loopback it is in our receive buffer as soon as it is sent)."""
    sock.setblocking(False)
    try:
        while chunk := sock.recv(1 << 20):
            received += chunk
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(30)


def test_a_pipelined_flood_does_not_hold_up_another_session(limits_stack: Stack) -> None:
    port = limits_stack.ports.smtp_starttls
    with WireClient.connect(port) as polite, _plain(port, receive_buffer=4 << 20) as flood:
        assert polite.reply().code == 220
        received = bytearray()
        _recv_until(flood, received, 1)  # the greeting
        del received[:]
        flood.sendall(b"NOOP\r\n" * FLOOD)  # no login needed: NOOP is allowed before STARTTLS
        _recv_until(flood, received, 1)  # the edge is inside the batch now
        # A whole short session while the batch is being answered: each reply comes within a few of the flood's.
        assert polite.cmd("EHLO polite.test").code == 250
        assert polite.cmd("NOOP").code == 250
        assert polite.cmd("NOOP").code == 250
        assert polite.cmd("QUIT").code == 221
        _recv_available(flood, received)
        answered_meanwhile = received.count(b"\r\n")
        # Without a yield per command the edge answers all 10,000 before it even reads the polite EHLO.
        assert answered_meanwhile < FLOOD // 2, f"{answered_meanwhile} of {FLOOD} flood replies came first"
        _recv_until(flood, received, FLOOD)  # and the flood is still answered in full
        assert bytes(received) == OK * FLOOD


@pytest.mark.parametrize(
    ("line", "answer", "name"),
    [
        (b"NOOP", OK.rstrip(NEWLINE), "NOOP"),
        (b"", b"500 5.5.2 Syntax error", "invalid"),  # lines that are no command are counted too
        (b"RSET", b"530 5.7.0 Must issue a STARTTLS command first", "invalid"),  # ... refused before STARTTLS
    ],
)
def test_a_session_that_only_talks_is_closed_with_421(
    limits_stack: Stack, line: bytes, answer: bytes, name: str
) -> None:
    refused = metric(limits_stack.ports.edge_http, "smtp_policy_refusals_total", policy="command_limit")
    with _plain(limits_stack.ports.smtp_starttls) as flood:
        received = bytearray()
        _recv_until(flood, received, 1)
        del received[:]
        flood.sendall((line + NEWLINE) * (MAX_COMMANDS + 500))
        while chunk := flood.recv(1 << 20):  # until the edge closes the connection
            received += chunk
    replies = bytes(received).split(NEWLINE)
    assert replies[:MAX_COMMANDS] == [answer] * MAX_COMMANDS
    # The 421 for the first one over, then the connection closes: the rest of the batch is never answered.
    over = f"421 4.7.0 Too many {name} commands without a message, closing connection".encode()
    assert replies[MAX_COMMANDS:] == [over, b""]
    assert metric(limits_stack.ports.edge_http, "smtp_policy_refusals_total", policy="command_limit") == refused + 1


def _message(subject: str, body: bytes = b"body\r\n") -> bytes:
    return f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\nSubject: {subject}\r\n\r\n".encode() + body + b".\r\n"


def _rcpts(client: WireClient, count: int) -> list[Reply]:
    client.send(b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(count)))
    return [client.reply() for _ in range(count)]


def test_recipients_are_counted_until_a_message_then_forgiven(
    limits_stack: Stack, limits_sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    with open_session(limits_stack.ports.smtp_starttls, client_tls) as client:
        assert client.cmd("MAIL FROM:<demo@example.com>").code == 250
        answers = _rcpts(client, 1000)  # every recipient, as smtplib sends them: 100 taken, the rest 452
        assert [r.code for r in answers] == [250] * 100 + [452] * 900
        assert client.cmd("DATA").code == 354
        client.send(_message("to a hundred"))
        assert client.reply().code == 250
        # The message forgave the 1000 RCPTs: another 1000 are fine, the 1001st since that message is not.
        assert client.cmd("MAIL FROM:<demo@example.com>").code == 250
        assert [r.code for r in _rcpts(client, 1000)] == [250] * 100 + [452] * 900
        over = client.cmd("RCPT TO:<one-more@example.net>")
        assert (over.code, over.last) == (421, "4.7.0 Too many RCPT commands without a message, closing connection")
        assert client.closed_by_server()
    assert {str(subject_of(e)) for e in limits_sandbox.emails()} == {"to a hundred"}  # one email per recipient


def _transaction(client: WireClient, size: int | None = None) -> None:
    assert client.cmd("MAIL FROM:<demo@example.com>" + (f" SIZE={size}" if size else "")).code == 250
    assert client.cmd("RCPT TO:<bob@example.net>").code == 250


def _filler(size: int) -> bytes:
    return (b"y" * 998 + b"\r\n") * (size // 1000)


def test_the_bytes_in_flight_budget_defers_and_loses_nothing(
    limits_stack: Stack, limits_sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    port = limits_stack.ports.smtp_starttls
    big = _message("big", _filler(1_400_000))
    with (
        open_session(port, client_tls) as first,
        open_session(port, client_tls) as second,
        open_session(port, client_tls) as third,
    ):
        # The first declares 1.4 MB and starts sending: reserved from the 2 MB budget at DATA.
        _transaction(first, size=len(big))
        assert first.cmd("DATA").code == 354
        first.send(big[:700_000])
        # A declared size over what is free: refused at MAIL, nothing sent.
        refused = second.cmd(f"MAIL FROM:<demo@example.com> SIZE={len(big)}")
        assert (refused.code, refused.last) == (452, "4.3.1 Insufficient system resources, try again later")
        # A message that declared nothing and outgrows what is free while it arrives: refused at its end.
        late = _message("late", _filler(800_000))
        _transaction(second)
        assert second.cmd("DATA").code == 354
        second.send(late)
        assert (reply := second.reply()).code == 452 and reply.enhanced() == "4.3.1"
        # A declared size that fit at MAIL but no longer does at DATA: refused before any byte is sent.
        _transaction(third, size=500_000)
        small_first = _message("fits", _filler(300_000))
        _transaction(second, size=len(small_first))
        assert second.cmd("DATA").code == 354  # 300 KB of the ~600 KB free
        deferred = third.cmd("DATA")
        assert (deferred.code, deferred.last) == (452, "4.3.1 Insufficient system resources, try again later")
        second.send(small_first)
        assert second.reply().code == 250
        first.send(big[700_000:])
        assert first.reply().code == 250
        # The budget is free again: what was refused goes through when sent again.
        _transaction(second)
        assert second.cmd("DATA").code == 354
        second.send(late)
        assert second.reply().code == 250
    assert sorted(str(subject_of(e)) for e in limits_sandbox.emails()) == ["big", "fits", "late"]


def test_an_oversize_header_block_is_refused_while_it_is_read(
    limits_stack: Stack, limits_sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    headers = b"".join(b"X-Filler-%d: " % i + b"h" * 980 + b"\r\n" for i in range(100))  # ~100 KB
    with open_session(limits_stack.ports.smtp_starttls, client_tls) as client:
        _transaction(client)
        assert client.cmd("DATA").code == 354
        client.send(headers + b"Subject: heavy\r\n\r\nbody\r\n.\r\n")
        refused = client.reply()
        # The reader's limit (MAX_HEADER_BYTES), not the gRPC frame's (3 MiB) after a full parse.
        assert (refused.code, refused.last) == (552, f"5.3.4 Message headers too large (limit {HEADER_LIMIT} bytes)")
        assert client.cmd("NOOP").code == 250  # the session goes on
        # Headers under the limit in a message far over it: no header limit applies to the body.
        _transaction(client)
        assert client.cmd("DATA").code == 354
        client.send(_message("light", _filler(HEADER_LIMIT * 3)))
        assert client.reply().code == 250
    assert [str(subject_of(e)) for e in limits_sandbox.emails()] == ["light"]


def test_a_client_gone_mid_data_gives_its_bytes_back(limits_stack: Stack, client_tls: ssl.SSLContext) -> None:
    port = limits_stack.ports.smtp_starttls
    declared = 1_400_000
    for _ in range(3):  # each would be refused at MAIL if an earlier one still held its reservation
        with open_session(port, client_tls) as client:
            _transaction(client, size=declared)
            assert client.cmd("DATA").code == 354
            client.send(_filler(500_000))
        # The connection is gone: the next session's MAIL must find the budget free again (the edge notices the
        # close at its next read, so ask until it has, within the socket timeout).
        with open_session(port, client_tls) as probe:
            for _ in range(200):
                reply = probe.cmd(f"MAIL FROM:<demo@example.com> SIZE={declared}")
                if reply.code == 250:
                    break
                assert reply.code == 452, reply
                assert probe.cmd("NOOP").code == 250
            else:
                raise AssertionError("the budget was never given back")
