"""STARTTLS command injection (CVE-2011-0411 class): commands pipelined in the same packet right behind STARTTLS
arrived in clear text, so a man in the middle could have added them; the edge must discard them, not run them inside
the TLS session."""

from __future__ import annotations

import socket
import ssl

import pytest

from devstack.stack import Stack
from tests.smtp_wire import WireClient

pytestmark = pytest.mark.e2e

INJECTED = b"NOOP\r\nRSET\r\nMAIL FROM:<mallory@example.com>\r\n"


def _plain_ehlo(client: WireClient) -> None:
    assert client.reply().code == 220
    assert client.cmd("EHLO client.test").code == 250


@pytest.mark.parametrize("injected", [INJECTED, b"NOOP\r\n", b"EHLO evil.test\r\nAUTH PLAIN AGRlbW8AeA==\r\n"])
def test_commands_pipelined_behind_starttls_are_discarded(
    stack: Stack, client_tls: ssl.SSLContext, injected: bytes
) -> None:
    client = WireClient.connect(stack.ports.smtp_starttls)
    with client:
        _plain_ehlo(client)
        client.send(b"STARTTLS\r\n" + injected)  # one write: one packet on loopback
        reply = client.reply()
        assert reply.code == 220, reply
        assert client._buffer == b""  # nothing else was answered in clear text either
        client.sock = client_tls.wrap_socket(client.sock, server_hostname="localhost")
        client.sock.settimeout(1.0)
        with pytest.raises(TimeoutError):  # an injected command would be answered now, unprompted
            client.sock.recv(1024)
        client.sock.settimeout(10)
        ehlo = client.cmd("EHLO client.test")
        assert ehlo.code == 250 and ehlo.lines[0] == "localhost", ehlo  # the first reply is to OUR command
        assert any(line.startswith("AUTH ") for line in ehlo.lines)  # a fresh EHLO under TLS
        assert client.cmd("NOOP").last == "2.0.0 OK"


def test_the_check_sees_an_answer_to_a_command_sent_after_the_handshake(
    stack: Stack, client_tls: ssl.SSLContext
) -> None:
    """The timeout above is not vacuous: a command that does reach the TLS session is answered within it."""
    client = WireClient.connect(stack.ports.smtp_starttls)
    with client:
        _plain_ehlo(client)
        client.starttls(client_tls)
        client.sock.settimeout(1.0)
        client.send(b"NOOP\r\n")
        assert client.sock.recv(1024) == b"250 2.0.0 OK\r\n"


def test_implicit_tls_listener_does_not_speak_before_the_handshake(stack: Stack) -> None:
    """Plain-text SMTP sent to 465 gets no SMTP answer (it is not a TLS ClientHello)."""
    with socket.create_connection(("127.0.0.1", stack.ports.smtp_implicit_tls), timeout=5) as raw:
        raw.sendall(b"EHLO plain.test\r\nMAIL FROM:<a@example.com>\r\n")
        data = b""
        try:
            while chunk := raw.recv(1024):
                data += chunk
        except ConnectionError:
            pass
        assert not data.startswith(b"2") and b"250" not in data, data
