"""Slowloris on the TLS layer: a client that opens a connection and never completes the TLS handshake (implicit TLS
silent or half a ClientHello, STARTTLS accepted then silence) is closed by the idle timer, COMMAND_TIMEOUT_SECONDS,
like an idle SMTP client (tests/e2e/test_limits_and_lifecycle.py covers that one)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import metric

pytestmark = pytest.mark.e2e

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def slow_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("slow-logs"),
        # The grace period is cut to 1 s: these tests leave stalled handshakes behind (open until the idle timer),
        # so the default 25 s grace could hold the stop of this stack for up to 25 s. Draining itself is tested in
        # tests/e2e/test_limits_and_lifecycle.py.
        extra_env={"edge": {"COMMAND_TIMEOUT_SECONDS": str(TIMEOUT), "SHUTDOWN_GRACE_SECONDS": "1"}},
    )
    with running:
        yield running


def seconds_until_closed(sock: socket.socket, limit: float = 20.0) -> float:
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return float("inf")
    except ConnectionError:
        pass
    return time.monotonic() - started


def silent_implicit(stack: Stack) -> socket.socket:
    return socket.create_connection(("127.0.0.1", stack.ports.smtp_implicit_tls), timeout=5)


def half_client_hello(stack: Stack) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.ports.smtp_implicit_tls), timeout=5)
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a record header promising 512 bytes, then 6
    return sock


def starttls_then_silence(stack: Stack) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.ports.smtp_starttls), timeout=5)
    assert sock.recv(1024).startswith(b"220 ")
    sock.sendall(b"EHLO slow.test\r\n")
    data = b""
    while not data.endswith(b"250 HELP\r\n") and b"250 " not in data:
        data += sock.recv(4096)
    sock.sendall(b"STARTTLS\r\n")
    assert sock.recv(1024) == b"220 2.0.0 Ready to start TLS\r\n"
    return sock


@pytest.mark.parametrize("stall", [silent_implicit, half_client_hello, starttls_then_silence])
def test_a_stalled_handshake_is_closed_by_the_idle_timer(
    slow_stack: Stack, stall: Callable[[Stack], socket.socket]
) -> None:
    with stall(slow_stack) as sock:
        waited = seconds_until_closed(sock)
    assert TIMEOUT * 0.8 <= waited <= TIMEOUT + 5, waited


def test_many_stalled_handshakes_do_not_stop_the_edge_from_greeting(slow_stack: Stack) -> None:
    """Stalled handshakes hold slots only until the timer: the per-IP cap (50 by default) is not exhausted by
    20 of them, and a new client is greeted while they hang."""
    with ThreadPoolExecutor(20) as pool:
        stalled = list(pool.map(lambda _: half_client_hello(slow_stack), range(20)))
        try:
            with socket.create_connection(("127.0.0.1", slow_stack.ports.smtp_starttls), timeout=5) as fresh:
                assert fresh.recv(1024).startswith(b"220 localhost ESMTP")
            waits = list(pool.map(seconds_until_closed, stalled))
        finally:
            for sock in stalled:
                sock.close()
    assert max(waits) <= TIMEOUT + 5, waits


def test_a_failed_handshake_leaves_no_session_behind(slow_stack: Stack) -> None:
    active = slow_stack.ports.edge_http
    before = metric(active, "smtp_active_connections")
    untrusting = ssl.create_default_context()  # the system CAs only: the dev certificate fails verification
    for _ in range(3):
        raw = socket.create_connection(("127.0.0.1", slow_stack.ports.smtp_implicit_tls), timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.wrap_socket(raw, server_hostname="localhost")  # closes `raw` when the handshake fails
        raw.close()
    deadline = time.monotonic() + TIMEOUT + 3  # even the idle timer would have ended them by then
    while metric(active, "smtp_active_connections") > before:
        assert time.monotonic() < deadline, "sessions of failed handshakes are still open"
        time.sleep(0.05)
