"""Large messages end to end: a 25 MB message with a 10 MB attachment arrives intact; over the limits, 552."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView, log_text

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


def _parse_pids(stack: Stack) -> list[int]:
    """The parse workers' pids the edge logged with the messages it forwarded (those parsed in one), in order."""
    lines = (json.loads(line) for line in log_text(stack).splitlines() if line.startswith("{"))
    return [line["parse_pid"] for line in lines if line.get("message") == "message forwarded" and "parse_pid" in line]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_large_message_is_parsed_in_a_worker_process_and_delivered_intact(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message, blobs = _message(1 * MIB)  # over PARSE_IN_PROCESS_BYTES (8 KiB)
    before = len(_parse_pids(stack))
    _send(stack, client_tls, message)
    [record] = sandbox.emails()
    [attachment] = record["payload"]["attachments"]
    assert base64.b64decode(attachment["content"]) == blobs[0]
    assert record["payload"]["subject"] == message["Subject"]
    [pid] = _parse_pids(stack)[before:]
    assert stack.edge.process is not None
    # A worker forked by the edge's fork server: the edge's grandchild, not the edge itself.
    assert pid != stack.edge.process.pid
    assert _parent(_parent(pid)) == stack.edge.process.pid
    # Below the loop's CPU priority by PARSE_WORKER_NICE (10), so that a busy parse never delays the replies.
    edge_priority = os.getpriority(os.PRIO_PROCESS, stack.edge.process.pid)
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(edge_priority + 10, 19)


def test_a_killed_parse_worker_gives_451_and_the_resend_is_delivered(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message, blobs = _message(512 * 1024)
    _send(stack, client_tls, message)
    worker = _parse_pids(stack)[-1]
    sandbox.clear()
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        _send(stack, client_tls, message)
    assert (deferred.value.smtp_code, deferred.value.smtp_error[:5]) == (451, b"4.3.0")
    assert sandbox.emails() == []
    _send(stack, client_tls, message)  # what a client does with a 451: send it again
    [record] = sandbox.emails()
    [attachment] = record["payload"]["attachments"]
    assert base64.b64decode(attachment["content"]) == blobs[0]
    assert _parse_pids(stack)[-1] != worker  # parsed by the rebuilt pool's new worker


def _nested(depth: int) -> bytes:
    """A multipart/mixed `depth` levels deep around one text part: small, but costly to parse (one boundary each)."""
    head = b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(b'Content-Type: multipart/mixed; Boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n) for n in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\ndeep inside\r\n" + closing


def test_a_small_but_deeply_nested_message_is_parsed_in_the_worker_and_an_ordinary_one_on_the_loop(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    deep, ordinary = _nested(40), _nested(2)
    assert len(deep) < 8192  # under PARSE_IN_PROCESS_BYTES: the size alone would keep it on the loop
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=60) as client:
        client.starttls(context=client_tls)
        client.login("demo@example.com", "demo-password")
        client.sendmail("ann@example.com", ["bob@example.net"], deep)
        client.sendmail("ann@example.com", ["bob@example.net"], ordinary)
    records = sandbox.emails()
    assert [r["payload"]["subject"] for r in records] == ["nested"] * 2
    assert all("deep inside" in json.dumps(r["payload"]) for r in records)
    # Each message's "message forwarded" line, told apart by its size (the log carries no content).
    lines = [json.loads(line) for line in log_text(stack).splitlines() if line.startswith("{")]
    forwarded = {line["size"]: line for line in lines if line.get("message") == "message forwarded"}
    assert "parse_pid" in forwarded[len(deep)]  # its "Boundary=" parameters counted case-insensitively
    assert "parse_pid" not in forwarded[len(ordinary)]
