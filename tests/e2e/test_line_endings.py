"""Line endings in DATA and in commands, through the running stack (docs/smtp.md, "Line endings").

LF-only and mixed messages are normalised to CRLF and land exactly as their CRLF form does; DATA ends only at
<CRLF>.<CRLF> on the wire, so no other dot sequence ends a message or starts a second transaction.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView
from tests.e2e.v2 import text_of
from tests.smtp_wire import WireClient, open_session

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mime"
SENDER = "ann@example.com"
RECIPIENTS = ["bob@example.net"]
# Two accounts: the API deduplicates a resend of the same content within one account (the forwarder derives the
# Idempotency-Key from it), so the two forms of one message are sent by different accounts to be recorded twice.
ACCOUNTS = [
    {
        "username": "demo@example.com",
        "password": "demo-password",
        "account_id": "acct-demo",
        "email": "demo@example.com",
    },
    {"username": "lf@example.com", "password": "lf-password", "account_id": "acct-lf", "email": "lf@example.com"},
]
CRLF_ACCOUNT, LF_ACCOUNT = ((a["username"], a["password"]) for a in ACCOUNTS)


@pytest.fixture(scope="module")
def stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("line-endings-logs"),
        extra_env={"sandbox": {"SANDBOX_ACCOUNTS": json.dumps(ACCOUNTS)}},
    )
    with running:
        yield running


def only_payload(sandbox: SandboxView) -> Any:
    """The one record's payload, and the inbox emptied for the next send."""
    [record] = sandbox.emails()
    sandbox.clear()
    return record["payload"]


def smtplib_client(stack: Stack, tls: ssl.SSLContext, account: tuple[str, str] = CRLF_ACCOUNT) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30)
    client.starttls(context=tls)
    client.login(*account)
    return client


def session(stack: Stack, tls: ssl.SSLContext, account: tuple[str, str] = CRLF_ACCOUNT) -> WireClient:
    client = open_session(stack.ports.smtp_starttls, tls, login=False)
    assert client.login_plain(*account).code == 235
    return client


def sample_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ann <ann@example.com>"
    message["To"] = "bob@example.net"
    message["Subject"] = "line endings"
    message["Message-ID"] = "<line-endings@example.com>"
    # Lines starting with dots (smtplib stuffs them, after LF too), a line that is a lone dot, an empty line.
    message.set_content("hello\n.leading dot\n..two dots\n.\n\nend\n")
    message.add_attachment(b"\x00\x01binary\r\n\n\r", maintype="application", subtype="octet-stream", filename="b.bin")
    return message


def test_smtplib_sendmail_with_lf_bytes_lands_like_send_message(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message = sample_message()
    raw = message.as_bytes()
    assert b"\r" not in raw and raw.count(b"\n") > 10  # what users send: LF line endings only
    with smtplib_client(stack, client_tls, LF_ACCOUNT) as client:
        assert client.sendmail(SENDER, RECIPIENTS, raw) == {}  # no exception: 250
    via_bytes = only_payload(sandbox)
    with smtplib_client(stack, client_tls, CRLF_ACCOUNT) as client:
        client.send_message(message, SENDER, RECIPIENTS)
    via_message = only_payload(sandbox)
    assert via_bytes == via_message
    assert via_message["text_body"] == "hello\n.leading dot\n..two dots\n.\n\nend\n"


def send_raw(client: WireClient, data: bytes) -> int:
    client.cmd("MAIL FROM:<ann@example.com>")
    client.cmd("RCPT TO:<bob@example.net>")
    assert client.cmd("DATA").code == 354
    client.send(data)
    return client.reply().code


CRLF_FORM = (
    b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: raw\r\nMessage-ID: <raw@example.com>\r\n\r\n"
    b"first\r\n..dot\r\n\r\nlast\r\n"
)


def tagged(message: bytes, tag: str) -> bytes:
    """A header that tells this test's messages apart (the same content twice in one account is one email)."""
    return f"X-Tag: {tag}\r\n".encode() + message


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(CRLF_FORM.replace(b"\r\n", b"\n")[:-1] + b"\r\n.\r\n", id="lf-lines-last-one-crlf"),
        pytest.param(CRLF_FORM.replace(b"\r\n", b"\n") + b"\r\n.\r\n", id="lf-only-then-crlf-dot-crlf"),
        pytest.param(
            CRLF_FORM.replace(b"Subject: raw\r\n", b"Subject: raw\n").replace(b"..dot\r\n", b"..dot\n") + b".\r\n",
            id="mixed",
        ),
        pytest.param(CRLF_FORM.replace(b"\r\n\r\nfirst", b"\n\r\nfirst") + b".\r\n", id="lf-ends-the-header"),
    ],
)
def test_raw_lf_and_mixed_data_lands_like_crlf(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext, wire: bytes
) -> None:
    tag = uuid.uuid4().hex
    with session(stack, client_tls, CRLF_ACCOUNT) as client:
        assert send_raw(client, tagged(CRLF_FORM, tag) + b".\r\n") == 250
    expected = only_payload(sandbox)
    with session(stack, client_tls, LF_ACCOUNT) as client:
        assert send_raw(client, tagged(wire, tag)) == 250
    assert only_payload(sandbox) == expected
    assert expected["text_body"] == "first\n.dot\n\nlast\n"


@pytest.mark.parametrize(
    "sequence",
    [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n"],
    ids=["LF.LF", "LF.CRLF", "CR.CR", "CRLF.LF", "LF.CR-LF"],
)
def test_no_other_dot_sequence_ends_data_or_starts_a_transaction(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext, sequence: bytes
) -> None:
    smuggled = b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n"
    with session(stack, client_tls) as client:
        reply = send_raw(
            client, tagged(b"", uuid.uuid4().hex) + b"Subject: smuggle\r\n\r\nhello" + sequence + smuggled + b".\r\n"
        )
        assert reply == 250
        noop = client.cmd("NOOP")  # the next reply is the NOOP's: no second transaction's replies are queued
        assert (noop.code, noop.last) == (250, "2.0.0 OK")
    [record] = sandbox.emails()  # one message, not two
    payload = record["payload"]
    assert [r["email"] for r in payload["to"] + payload["cc"] + payload["bcc"]] == RECIPIENTS
    # The dot line is unstuffed like any line (an empty line); everything after it stayed content.
    assert payload["text_body"] == (
        "hello\n\nMAIL FROM:<evil@example.com>\nRCPT TO:<victim@example.org>\nDATA\nSubject: smuggled\n\nx\n"
    )


def test_a_bare_cr_is_a_line_end(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    head = b"Message-ID: <cr@example.com>\r\nSubject: cr\r\n"
    with session(stack, client_tls, LF_ACCOUNT) as client:
        assert send_raw(client, head + b"X-Note: one\rX-Other: two\r\n\r\nhello\rworld\r\r\n.\r\n") == 250
    with_cr = only_payload(sandbox)
    with session(stack, client_tls, CRLF_ACCOUNT) as client:
        assert send_raw(client, head + b"X-Note: one\r\nX-Other: two\r\n\r\nhello\r\nworld\r\n\r\n.\r\n") == 250
    with_crlf = only_payload(sandbox)
    assert with_cr == with_crlf
    assert with_crlf["text_body"] == "hello\nworld\n\n"


def test_commands_ending_in_a_bare_lf_work(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    with WireClient.connect(stack.ports.smtp_starttls) as client:
        assert client.reply().code == 220
        client.send(b"EHLO lf-client.test\n")
        assert client.reply().code == 250
        client.send(b"STARTTLS\n")
        assert client.reply().code == 220
        client.sock = client_tls.wrap_socket(client.sock, server_hostname="localhost")
        for line, code in [
            (b"EHLO lf-client.test", 250),
            (b"AUTH LOGIN", 334),
            (b"ZGVtb0BleGFtcGxlLmNvbQ==", 334),  # demo@example.com
            (b"ZGVtby1wYXNzd29yZA==", 235),  # demo-password
            (b"MAIL FROM:<ann@example.com>", 250),
            (b"RCPT TO:<bob@example.net>", 250),
            (b"DATA", 354),
        ]:
            client.send(line + b"\n")
            reply = client.reply()
            assert reply.code == code, (line, reply)
        client.send(b"Subject: lf commands\n\nbody\n\r\n.\r\n")
        assert client.reply().code == 250
        client.send(b"QUIT\n")
        assert client.reply().code == 221
    [record] = sandbox.emails()
    assert text_of(record) == "body\n"


def with_message_id(raw: bytes, name: str) -> bytes:
    """A fixed, valid Message-ID instead of the message's own, so two sends compare equal (the edge generates one
    for a message without a valid Message-ID)."""
    head, sep, body = raw.partition(b"\n\n")
    kept = [line for line in head.split(b"\n") if not line.lower().startswith(b"message-id:")]
    return b"\n".join([f"Message-ID: <{name}@corpus.example>".encode(), *kept]) + sep + body


def test_the_mime_corpus_with_lf_lands_like_its_crlf_form(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    outcomes: dict[str, int] = {}
    with (
        smtplib_client(stack, client_tls, CRLF_ACCOUNT) as crlf_client,
        smtplib_client(stack, client_tls, LF_ACCOUNT) as lf_client,
    ):
        for path in sorted(CORPUS.glob("*.eml")):
            lf = with_message_id(path.read_bytes(), path.stem)
            assert b"\r\n" not in lf  # stored with LF line endings (a lone CR may be part of a test)
            crlf = lf.replace(b"\n", b"\r\n")
            replies = []
            payloads = []
            for client, form in ((crlf_client, crlf), (lf_client, lf)):
                try:
                    client.sendmail("bounce@example.com", ["bob@example.net", "carol@example.org"], form)
                    replies.append(250)
                except smtplib.SMTPDataError as refused:
                    replies.append(refused.smtp_code)
                payloads.append([record["payload"] for record in sandbox.emails()])
                sandbox.clear()
            assert replies[0] == replies[1], path.name
            assert payloads[0] == payloads[1], path.name
            outcomes[path.stem] = replies[0]
    assert sum(code == 250 for code in outcomes.values()) >= len(outcomes) - 2, outcomes
