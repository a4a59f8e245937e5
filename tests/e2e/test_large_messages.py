"""Large messages end to end: a 25 MB message with a 10 MB attachment arrives intact; over the limits, 552."""

from __future__ import annotations

import base64
import hashlib
import os
import smtplib
import ssl
from email.message import EmailMessage

import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def stack(v1_stack: Stack) -> Stack:
    """This module checks the v1 payload shape (to/cc/bcc, any attachment type): it runs on the v1 flavor."""
    return v1_stack


MIB = 1024 * 1024


def _message(*sizes: int) -> tuple[EmailMessage, list[bytes]]:
    message = EmailMessage()
    message["From"] = "ann@example.com"
    message["To"] = "bob@example.net"
    message["Subject"] = f"large {sum(sizes)}"
    message.set_content("see attachments\n")
    blobs = [os.urandom(size) for size in sizes]
    for index, blob in enumerate(blobs):
        message.add_attachment(blob, maintype="application", subtype="octet-stream", filename=f"part{index}.bin")
    return message, blobs


def _send(stack: Stack, tls: ssl.SSLContext, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=120) as client:
        client.starttls(context=tls)
        client.login("demo@example.com", "demo-password")
        client.send_message(message)


def test_a_25_mb_message_arrives_intact(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    message, blobs = _message(10 * MIB, 7 * MIB, 512 * 1024)
    raw_size = len(message.as_bytes())
    assert 23 * MIB < raw_size <= 25 * MIB  # as large as the default limit allows
    _send(stack, client_tls, message)
    [record] = sandbox.emails()
    received = [base64.b64decode(a["content"]) for a in record["payload"]["attachments"]]
    assert [hashlib.sha256(b).hexdigest() for b in received] == [hashlib.sha256(b).hexdigest() for b in blobs]
    assert [a["filename"] for a in record["payload"]["attachments"]] == ["part0.bin", "part1.bin", "part2.bin"]


def test_an_attachment_over_10_mb_is_refused_naming_the_limit(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message, _ = _message(10 * MIB + 1)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(stack, client_tls, message)
    assert refused.value.smtp_code == 552
    assert refused.value.smtp_error.startswith(b"5.3.4")
    assert b"part0.bin" in refused.value.smtp_error and b"10485760" in refused.value.smtp_error
    assert sandbox.emails() == []


def test_a_message_over_25_mb_is_refused(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    message, _ = _message(9 * MIB, 9 * MIB, 1 * MIB)
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as refused:
        _send(stack, client_tls, message)
    assert refused.value.smtp_code == 552
    assert sandbox.emails() == []


def test_headers_too_large_for_one_frame_are_refused_not_retried_forever(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"v" * 900) for n in range(4000))  # ~3.6 MB of headers
    message = b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: heavy\r\n" + headers + b"\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=120) as client:
        client.starttls(context=client_tls)
        client.login("demo@example.com", "demo-password")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("ann@example.com", ["bob@example.net"], message)
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (552, b"5.3.4")
    assert sandbox.emails() == []
