"""A raw SMTP client for protocol tests: exact bytes out, exact replies in, over real sockets and real TLS."""

from __future__ import annotations

import base64
import socket
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def last(self) -> str:
        return self.lines[-1]

    def enhanced(self) -> str:
        """The x.y.z code of the last line."""
        return self.last.split(" ", 1)[0]


class WireClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    @classmethod
    def connect(
        cls, port: int, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", preamble: bytes = b""
    ) -> WireClient:
        raw = socket.create_connection((host, port), timeout=30)
        if preamble:
            raw.sendall(preamble)
        sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; pending {self._buffer!r}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def reply(self) -> Reply:
        lines: list[str] = []
        while True:
            line = self._line().decode("utf-8", "replace")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return Reply(int(line[:3]), tuple(lines))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> Reply:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def closed_by_server(self) -> bool:
        """True when the server has closed the connection (EOF), waiting at most the socket timeout."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def starttls(self, tls: ssl.SSLContext) -> None:
        reply = self.cmd("STARTTLS")
        assert reply.code == 220, reply
        self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")

    def login_plain(self, username: str, password: str) -> Reply:
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        return self.cmd(f"AUTH PLAIN {token}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def open_session(port: int, tls: ssl.SSLContext, *, implicit: bool = False, login: bool = True) -> WireClient:
    """Greeting read, EHLO done, TLS on, optionally logged in as the demo account."""
    client = WireClient.connect(port, tls=tls if implicit else None)
    assert client.reply().code == 220
    if not implicit:
        assert client.cmd("EHLO client.test").code == 250
        client.starttls(tls)
    assert client.cmd("EHLO client.test").code == 250
    if login:
        reply = client.login_plain("demo@example.com", "demo-password")
        assert reply.code == 235, reply
    return client
