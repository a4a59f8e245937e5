"""The message shapes every load generator here sends (bench, soak, locust): built once per shape, made unique per
send by a fresh Message-ID (a resent identical message would be recognised and not delivered again)."""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass

SENDER = "bench@example.com"
USERNAME = "demo@example.com"
PASSWORD = "demo-password"  # the sandbox's demo account (docs/cakemail-api.md)


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    recipients: tuple[str, ...]
    body: bytes  # everything after the Message-ID header

    def message(self, token: str | None = None) -> bytes:
        """A fresh copy; `token` (a fresh one by default) is the Message-ID's local part and ends the Subject, so a
        checker can find the message in the sandbox's records."""
        token = token or uuid.uuid4().hex
        return f"Message-ID: <{token}@bench>\r\n".encode() + self.body.replace(b"\r\n", f" {token}\r\n".encode(), 1)


def _headers(subject: str, recipients: tuple[str, ...], extra: str = "") -> str:
    # The Subject comes first: `Shape.message` appends the token to the first line.
    to = ",\r\n ".join(recipients)  # folded: 100 addresses on one line would pass the 1000-octet line limit
    return f"Subject: {subject}\r\nFrom: {SENDER}\r\nTo: {to}\r\nMIME-Version: 1.0\r\n{extra}"


def recipients(count: int) -> tuple[str, ...]:
    return tuple(f"sink{i}@example.net" for i in range(count))


def small(count: int = 1) -> Shape:
    """A short plain-text notification: most transactional mail."""
    rcpts = recipients(count)
    body = _headers("small", rcpts, "Content-Type: text/plain; charset=utf-8\r\n") + "\r\nHello, a short note.\r\n"
    return Shape("small" if count == 1 else f"{count} recipients", rcpts, body.encode())


def html() -> Shape:
    """Text and HTML alternatives of a few KB: a typical templated email."""
    rcpts = recipients(1)
    text = "Your order has shipped.\r\n" * 40
    markup = "<p>Your order has <b>shipped</b>.</p>\r\n" * 60
    body = (
        _headers("html", rcpts, 'Content-Type: multipart/alternative; boundary="alt"\r\n')
        + f"\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        + f"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{markup}\r\n--alt--\r\n"
    )
    return Shape("html", rcpts, body.encode())


def attachment(size: int = 1024 * 1024, name: str = "1 MB attachment") -> Shape:
    """A message of about `size` bytes on the wire: text plus one PDF attachment (a type the v2 API carries)."""
    rcpts = recipients(1)
    encoded = base64.encodebytes(os.urandom(size * 3 // 4 - 1024)).replace(b"\n", b"\r\n")
    head = (
        _headers(name, rcpts, 'Content-Type: multipart/mixed; boundary="mix"\r\n')
        + "\r\n--mix\r\nContent-Type: text/plain\r\n\r\nThe invoice is attached.\r\n"
        + "--mix\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + 'Content-Disposition: attachment; filename="invoice.pdf"\r\n\r\n'
    )
    return Shape(name, rcpts, head.encode() + encoded + b"--mix--\r\n")
