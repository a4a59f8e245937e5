"""Limits, admission policies behind PROXY protocol, certificate reload and graceful shutdown, on real stacks."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from devstack.certs import DevCertificate, ensure_dev_certificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView, metric
from tests.e2e.v2 import subject_of, text_of
from tests.smtp_wire import Reply, WireClient

pytestmark = pytest.mark.e2e

LIMITS = {
    "PROXY_PROTOCOL": "true",
    "MESSAGE_SIZE_LIMIT": "20000",
    "MAX_ATTACHMENT_BYTES": "5000",
    "MAX_RECIPIENTS": "3",
    "MAX_CONNECTIONS_PER_IP": "2",
    "AUTH_FAILURE_LIMIT": "3",
    "AUTH_FAILURE_WINDOW_SECONDS": "60",
    "AUTH_FAILURE_COOLDOWN_SECONDS": "2",
    "AUTH_THROTTLE_ALLOWLIST": "198.51.100.0/24",
    "COMMAND_TIMEOUT_SECONDS": "3",
    "BARE_NEWLINE": "reject",
}


def proxy_v1(src: str, port: int) -> bytes:
    return f"PROXY TCP4 {src} 127.0.0.1 40000 {port}\r\n".encode()


def proxy_v2(src: str, port: int) -> bytes:
    """PROXY protocol v2, PROXY command over TCP/IPv4 (haproxy's spec, section 2.2)."""
    addresses = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address("127.0.0.1").packed
    body = addresses + struct.pack("!HH", 40000, port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def limits_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("limits-logs"),
        extra_env={"edge": LIMITS},
    )
    with running:
        yield running


@pytest.fixture
def limits_sandbox(limits_stack: Stack) -> SandboxView:
    return SandboxView.cleared(limits_stack.sandbox_url)


def connect(
    stack: Stack, tls: ssl.SSLContext, src: str, *, v2: bool = False, implicit: bool = False
) -> tuple[WireClient, Reply]:
    port = stack.ports.smtp_implicit_tls if implicit else stack.ports.smtp_starttls
    header = (proxy_v2 if v2 else proxy_v1)(src, port)
    client = WireClient.connect(port, preamble=header, tls=tls if implicit else None)
    return client, client.reply()


def login(stack: Stack, tls: ssl.SSLContext, src: str, password: str = "demo-password") -> tuple[WireClient, Reply]:
    client, greeting = connect(stack, tls, src)
    assert greeting.code == 220, greeting
    client.cmd("EHLO client.test")
    client.starttls(tls)
    client.cmd("EHLO client.test")
    return client, client.login_plain("demo@example.com", password)


def test_size_limits(limits_stack: Stack, limits_sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    counted_before = metric(limits_stack.ports.edge_http, "smtp_messages_total", code="552")
    client, reply = login(limits_stack, client_tls, "203.0.113.10")
    with client:
        assert reply.code == 235
        ehlo = client.cmd("EHLO client.test")
        assert "SIZE 20000" in ehlo.lines
        assert client.cmd("MAIL FROM:<a@example.com> SIZE=20001").last.startswith("5.3.4")
        client.cmd("MAIL FROM:<a@example.com>")
        client.cmd("RCPT TO:<b@example.net>")
        assert client.cmd("DATA").code == 354
        client.send(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 25 + b".\r\n")
        too_big = client.reply()
        assert (too_big.code, too_big.last) == (552, "5.3.4 Message too big (limit 20000 bytes)")

        message = EmailMessage()
        message["Subject"] = "attachment over its limit"
        message.set_content("hi")
        message.add_attachment(b"z" * 8000, maintype="application", subtype="octet-stream", filename="big.bin")
        client.cmd("MAIL FROM:<a@example.com>")
        client.cmd("RCPT TO:<b@example.net>")
        assert client.cmd("DATA").code == 354
        client.send(message.as_bytes().replace(b"\n", b"\r\n") + b".\r\n")
        refused = client.reply()
        assert refused.code == 552 and refused.enhanced() == "5.3.4" and "big.bin" in refused.last
    assert limits_sandbox.emails() == []
    # Both DATA refusals are DATA outcomes: the size one (made while reading) as well as the parser's.
    assert metric(limits_stack.ports.edge_http, "smtp_messages_total", code="552") == counted_before + 2


def send_message(client: WireClient, data: bytes) -> Reply:
    assert client.cmd("MAIL FROM:<ann@example.com>").code == 250
    assert client.cmd("RCPT TO:<bob@example.net>").code == 250
    assert client.cmd("DATA").code == 354
    client.send(data)
    return client.reply()


@pytest.mark.parametrize(
    "fault",
    [{"latency_ms": 6000}, {"error_status": 429, "retry_after": 5, "count": 1}],
    ids=["api-takes-6s", "429-retry-after-5s"],
)
def test_a_slow_api_longer_than_the_command_timeout_gets_one_outcome(
    limits_stack: Stack, limits_sandbox: SandboxView, client_tls: ssl.SSLContext, fault: dict[str, int]
) -> None:
    """COMMAND_TIMEOUT_SECONDS is 3 here: waiting for the forwarder is the server's turn, no idle timer runs."""
    client, reply = login(limits_stack, client_tls, "203.0.113.60")
    with client:
        assert reply.code == 235
        limits_sandbox.faults({"emails": fault})
        try:
            accepted = send_message(client, f"Subject: slow {uuid.uuid4().hex}\r\n\r\nbody\r\n.\r\n".encode())
        finally:
            limits_sandbox.faults({})
        assert accepted.code == 250, accepted  # not 421 4.4.2 for a message that was delivered
        assert client.cmd("NOOP").code == 250  # the session goes on, its idle timer running again
        timeout = client.reply()  # ... and idle, it still times out
        assert (timeout.code, timeout.enhanced()) == (421, "4.4.2")
    assert len(limits_sandbox.emails()) == 1


def test_a_slow_credential_check_is_not_an_idle_client(
    limits_stack: Stack, limits_sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    client, greeting = connect(limits_stack, client_tls, "198.51.100.60")  # allowlisted: never throttled
    with client:
        assert greeting.code == 220
        client.cmd("EHLO client.test")
        client.starttls(client_tls)
        client.cmd("EHLO client.test")
        limits_sandbox.faults({"auth": {"latency_ms": 5000}})
        try:
            # A password never seen before: no cached answer, the API is asked (and takes 5 s).
            reply = client.login_plain("demo@example.com", f"wrong-{uuid.uuid4().hex}")
        finally:
            limits_sandbox.faults({})
        assert (reply.code, reply.enhanced()) == (535, "5.7.8")


@pytest.mark.parametrize(
    "body",
    [
        b"Subject: lf\n\nhello\n\r\n.\r\n",
        b"Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n",
        b"Subject: cr\r\n\r\nhello\rworld\r\n.\r\n",
    ],
)
def test_bare_newline_reject_refuses_bare_line_endings(
    limits_stack: Stack, limits_sandbox: SandboxView, client_tls: ssl.SSLContext, body: bytes
) -> None:
    """BARE_NEWLINE=reject (set for this stack): the strict stance, today's Postfix `reject`."""
    counted_before = metric(limits_stack.ports.edge_http, "smtp_messages_total", code="550")
    client, reply = login(limits_stack, client_tls, "203.0.113.61")
    with client:
        assert reply.code == 235
        refused = send_message(client, body)
        assert (refused.code, refused.last) == (
            550,
            "5.6.0 Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)",
        )
        assert client.cmd("NOOP").code == 250  # one reply for the whole DATA: nothing was smuggled
        # A message of its own each time: the same bytes again would be a resend, delivered once.
        unique = f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\n".encode()
        assert send_message(client, unique + b"Subject: crlf\r\n\r\nfine\r\n.\r\n").code == 250
    assert [subject_of(e) for e in limits_sandbox.emails()] == ["crlf"]
    assert metric(limits_stack.ports.edge_http, "smtp_messages_total", code="550") == counted_before + 1


def test_recipient_limit(limits_stack: Stack, client_tls: ssl.SSLContext) -> None:
    client, _ = login(limits_stack, client_tls, "203.0.113.11")
    with client:
        client.cmd("MAIL FROM:<a@example.com>")
        for n in range(3):
            assert client.cmd(f"RCPT TO:<r{n}@example.net>").code == 250
        over = client.cmd("RCPT TO:<r3@example.net>")
        assert (over.code, over.enhanced()) == (452, "4.5.3")


@pytest.mark.parametrize("v2", [False, True], ids=["proxy-v1", "proxy-v2"])
def test_per_ip_cap_counts_the_proxied_client_ip(limits_stack: Stack, client_tls: ssl.SSLContext, v2: bool) -> None:
    src = "203.0.113.20" if v2 else "203.0.113.21"
    first, a = connect(limits_stack, client_tls, src, v2=v2)
    second, b = connect(limits_stack, client_tls, src, v2=v2)
    assert (a.code, b.code) == (220, 220)
    third, refused = connect(limits_stack, client_tls, src, v2=v2)
    assert (refused.code, refused.enhanced()) == (421, "4.7.0")
    assert third.closed_by_server()
    other, admitted = connect(limits_stack, client_tls, "203.0.113.99", v2=v2)
    assert admitted.code == 220  # another client behind the same balancer is not affected
    for client in (first, second, third, other):
        client.close()

    def slot_free() -> bool:
        client, reply = connect(limits_stack, client_tls, src, v2=v2)
        client.close()
        return reply.code == 220

    wait_until(slot_free, what="the closed connections to release their slots")


def test_an_idle_client_is_told_why_it_is_closed(limits_stack: Stack, client_tls: ssl.SSLContext) -> None:
    client, greeting = connect(limits_stack, client_tls, "203.0.113.40")
    with client:
        assert greeting.code == 220
        assert client.cmd("EHLO client.test").code == 250
        timeout = client.reply()  # nothing sent: the command timeout runs out
        assert (timeout.code, timeout.enhanced()) == (421, "4.4.2")
        assert client.closed_by_server()


@pytest.mark.parametrize("v2", [False, True], ids=["proxy-v1", "proxy-v2"])
def test_proxy_header_before_implicit_tls(limits_stack: Stack, client_tls: ssl.SSLContext, v2: bool) -> None:
    src = "203.0.113.50" if v2 else "203.0.113.51"
    first, a = connect(limits_stack, client_tls, src, v2=v2, implicit=True)
    second, b = connect(limits_stack, client_tls, src, v2=v2, implicit=True)
    third, refused = connect(limits_stack, client_tls, src, v2=v2, implicit=True)
    with first, second, third:
        assert (a.code, b.code) == (220, 220)
        assert (refused.code, refused.enhanced()) == (421, "4.7.0")  # the cap saw the client's IP, not ours
        assert auth_offered(first.cmd("EHLO client.test").lines)
        assert first.login_plain("demo@example.com", "demo-password").code == 235


def auth_offered(lines: tuple[str, ...]) -> bool:
    return any(line.upper().startswith("AUTH ") for line in lines)


def test_a_connection_without_proxy_header_is_dropped(limits_stack: Stack) -> None:
    with WireClient.connect(limits_stack.ports.smtp_starttls, preamble=b"EHLO not-a-proxy-header\r\n") as client:
        assert client.closed_by_server()


def test_auth_failures_put_the_ip_in_cooldown(limits_stack: Stack, client_tls: ssl.SSLContext) -> None:
    src = "203.0.113.30"
    client, reply = login(limits_stack, client_tls, src, password="wrong")
    with client:
        assert reply.code == 535
        assert client.login_plain("demo@example.com", "wrong").code == 535
        assert client.login_plain("demo@example.com", "wrong").code == 535  # the third: limit reached
        goodbye = client.reply()
        assert (goodbye.code, goodbye.enhanced()) == (421, "4.7.0")
        assert client.closed_by_server()
    blocked, greeting = connect(limits_stack, client_tls, src)
    blocked.close()
    assert (greeting.code, greeting.enhanced()) == (421, "4.7.0")
    # Even the right password waits for the cool-down; afterwards it works again.

    def admitted() -> bool:
        probe, reply = connect(limits_stack, client_tls, src)
        probe.close()
        return reply.code == 220

    wait_until(admitted, timeout=15, what="the cool-down to end")
    client, reply = login(limits_stack, client_tls, src)
    client.close()
    assert reply.code == 235


def test_allowlisted_ips_are_never_throttled(limits_stack: Stack, client_tls: ssl.SSLContext) -> None:
    client, reply = login(limits_stack, client_tls, "198.51.100.7", password="wrong")
    with client:
        assert reply.code == 535
        for _ in range(5):
            assert client.login_plain("demo@example.com", "wrong").code == 535
        assert client.login_plain("demo@example.com", "demo-password").code == 235


def test_certificate_is_reloaded_without_dropping_connections(
    dev_certificate: DevCertificate, tmp_path: Path, client_tls: ssl.SSLContext
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(dev_certificate.cert_file, live / "cert.pem")
    shutil.copy(dev_certificate.key_file, live / "key.pem")
    stack = Stack(
        StackPorts.ephemeral(),
        DevCertificate(dev_certificate.ca_file, live / "cert.pem", live / "key.pem"),
        log_dir=tmp_path,
        extra_env={"edge": {"TLS_RELOAD_INTERVAL_SECONDS": "0.2"}},
    )
    stack.start()
    try:
        old = WireClient.connect(stack.ports.smtp_implicit_tls, tls=client_tls)
        assert old.reply().code == 220
        renewed = ensure_dev_certificate(tmp_path / "renewed")  # a new CA and leaf
        renewed_tls = ssl.create_default_context(cafile=str(renewed.ca_file))
        shutil.copy(renewed.key_file, live / "key.pem.new")
        shutil.copy(renewed.cert_file, live / "cert.pem.new")
        (live / "key.pem.new").replace(live / "key.pem")
        (live / "cert.pem.new").replace(live / "cert.pem")

        def presents_renewed() -> bool:
            try:
                with WireClient.connect(stack.ports.smtp_implicit_tls, tls=renewed_tls) as fresh:
                    return fresh.reply().code == 220
            except ssl.SSLError:
                return False

        wait_until(presents_renewed, what="the renewed certificate to be served")
        assert old.cmd("EHLO still-here.test").code == 250  # the open connection kept its TLS session
        old.close()
    finally:
        stack.stop()


def test_sigterm_drains_sessions_and_cuts_no_accepted_data(
    dev_certificate: DevCertificate, tmp_path: Path, client_tls: ssl.SSLContext
) -> None:
    stack = Stack(StackPorts.ephemeral(), dev_certificate, log_dir=tmp_path)
    stack.start()
    try:
        sandbox = SandboxView(stack.sandbox_url)
        port = stack.ports.smtp_starttls
        idle = WireClient.connect(port)
        idle.reply()
        busy = WireClient.connect(port)
        busy.reply()
        for client in (idle, busy):
            client.cmd("EHLO client.test")
            client.starttls(client_tls)
            client.cmd("EHLO client.test")
            assert client.login_plain("demo@example.com", "demo-password").code == 235
        busy.cmd("MAIL FROM:<ann@example.com>")
        busy.cmd("RCPT TO:<bob@example.net>")
        assert busy.cmd("DATA").code == 354
        busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")

        assert stack.edge.process is not None
        stack.edge.process.send_signal(signal.SIGTERM)
        goodbye = idle.reply()
        assert (goodbye.code, goodbye.enhanced()) == (421, "4.3.2")
        assert idle.closed_by_server()
        idle.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        ready = f"http://127.0.0.1:{stack.ports.edge_http}/health/ready"
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(ready, timeout=5)
        assert not_ready.value.code == 503  # draining: the load balancer stops sending new clients

        busy.send(b"second half\r\n.\r\n")
        accepted = busy.reply()
        assert accepted.code == 250, accepted
        after = busy.reply()
        assert (after.code, after.enhanced()) == (421, "4.3.2")
        busy.close()
        assert stack.edge.process.wait(30) == 0
        [record] = sandbox.emails()
        assert text_of(record) == "first half\nsecond half\n"
    finally:
        stack.stop()


def test_a_rolling_update_gives_smtplib_users_no_error_for_delivered_mail(
    dev_certificate: DevCertificate, tmp_path: Path, client_tls: ssl.SSLContext
) -> None:
    """Python's `with smtplib.SMTP(...)` raises on any QUIT reply but 221: while the edge drains, a client whose
    message was accepted must still get 221 for its QUIT."""
    stack = Stack(StackPorts.ephemeral(), dev_certificate, log_dir=tmp_path)
    stack.start()
    try:
        sandbox = SandboxView(stack.sandbox_url)
        assert stack.edge.process is not None
        ready = f"http://127.0.0.1:{stack.ports.edge_http}/health/ready"

        def client() -> smtplib.SMTP:
            smtp = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30)
            smtp.starttls(context=client_tls)
            smtp.login("demo@example.com", "demo-password")
            return smtp

        other = WireClient.connect(stack.ports.smtp_starttls)
        assert other.reply().code == 220
        with client() as done_before, client() as in_flight:
            # One client got its 250 just before SIGTERM and is about to QUIT ...
            done_before.sendmail("ann@example.com", ["bob@example.net"], b"Subject: before\r\n\r\nfirst\r\n")
            # ... another's message is being forwarded (a slow API) when SIGTERM arrives.
            sandbox.faults({"emails": {"latency_ms": 1500}})
            in_flight.mail("ann@example.com")
            in_flight.rcpt("bob@example.net")
            in_flight.putcmd("data")
            assert in_flight.getreply()[0] == 354
            in_flight.send(b"Subject: in flight\r\n\r\nsecond\r\n.\r\n")
            stack.edge.process.send_signal(signal.SIGTERM)

            def draining() -> bool:
                try:
                    urllib.request.urlopen(ready, timeout=5).close()
                except urllib.error.HTTPError as error:
                    return error.code == 503
                return False

            wait_until(draining, what="the edge to start draining")
            assert done_before.docmd("QUIT")[0] == 221
            noop = other.cmd("NOOP")  # any other command while draining: goodbye
            assert (noop.code, noop.enhanced()) == (421, "4.3.2")
            assert other.closed_by_server()
            other.close()
            assert in_flight.getreply()[0] == 250  # the message being forwarded gets its answer
        # Leaving `with` sent QUIT on `in_flight`: a 221 (anything else would have raised here).
        assert stack.edge.process.wait(30) == 0
        assert sorted(subject_of(e) for e in sandbox.emails()) == ["before", "in flight"]
    finally:
        stack.stop()
