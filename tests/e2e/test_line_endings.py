"""Line endings in DATA and in commands, through the running stack (docs/smtp.md, "Line endings").

LF-only and mixed messages are normalised to CRLF and land exactly as their CRLF form does; DATA ends only at
<CRLF>.<CRLF> on the wire, so no other dot sequence ends a message or starts a second transaction.
"""

from __future__ import annotations

import copy
import json
import smtplib
import ssl
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from cakemail_sandbox.config import DEMO_SENDER_EMAILS
from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView
from tests.e2e.v2 import text_of
from tests.smtp_wire import WireClient, open_session

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mime"
SENDER = "ann@example.com"
RECIPIENTS = ["bob@example.net"]
# Two users with their own accounts: a resend of the same message within one account is one email (v1: the
# Idempotency-Key; v2: the delivery record), so the two forms of one message are sent by different accounts to be
# recorded twice. Both may send from every address the tests use (the sandbox's demo senders).
SENDERS = [{"email": email} for email in DEMO_SENDER_EMAILS]
ACCOUNTS = [
    {
        "username": "demo@example.com",
        "password": "demo-password",
        "account_id": "acct-demo",
        "email": "demo@example.com",
        "account_ids": [1001],
        "senders": SENDERS,
    },
    {
        "username": "lf@example.com",
        "password": "lf-password",
        "account_id": "acct-lf",
        "email": "lf@example.com",
        "account_ids": [3001],
        "senders": SENDERS,
    },
]
CRLF_ACCOUNT, LF_ACCOUNT = ((str(a["username"]), str(a["password"])) for a in ACCOUNTS)


@pytest.fixture(scope="module", params=["v1", "v2"])
def stack(
    request: pytest.FixtureRequest, dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The edge's line handling is the same whichever API the forwarder speaks; both flavors prove it lands."""
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("line-endings-logs"),
        extra_env={
            "sandbox": {"SANDBOX_ACCOUNTS": json.dumps(ACCOUNTS)},
            "forwarder": {"CAKEMAIL_API_FLAVOR": request.param},
        },
    )
    with running:
        yield running


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """What the API received, less what differs between the two accounts by design (v2: the sender's id)."""
    payload = copy.deepcopy(record["payload"])
    if record["flavor"] == "v2":
        del payload["sender"]["id"]
    return {"flavor": record["flavor"], "payload": payload}


def recipients_of(record: dict[str, Any]) -> list[str]:
    if record["flavor"] == "v2":
        return [record["email"]]
    payload = record["payload"]
    return [r["email"] for r in payload["to"] + payload["cc"] + payload["bcc"]]


def only_record(sandbox: SandboxView) -> dict[str, Any]:
    """The one record, comparable, and the inbox emptied for the next send."""
    [record] = sandbox.emails()
    sandbox.clear()
    return comparable(record)


def all_records(sandbox: SandboxView) -> list[dict[str, Any]]:
    """Every record, comparable, in a stable order (v2 sends to several recipients concurrently)."""
    records = sorted((comparable(r) for r in sandbox.emails()), key=lambda r: json.dumps(r, sort_keys=True))
    sandbox.clear()
    return records


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
    # Bytes that look like line endings must come through untouched (a type both API flavors take).
    message.add_attachment(b"%PDF\x00\x01binary\r\n\n\r", maintype="application", subtype="pdf", filename="b.pdf")
    return message


def test_smtplib_sendmail_with_lf_bytes_lands_like_send_message(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message = sample_message()
    raw = message.as_bytes()
    assert b"\r" not in raw and raw.count(b"\n") > 10  # what users send: LF line endings only
    with smtplib_client(stack, client_tls, LF_ACCOUNT) as client:
        assert client.sendmail(SENDER, RECIPIENTS, raw) == {}  # no exception: 250
    via_bytes = only_record(sandbox)
    with smtplib_client(stack, client_tls, CRLF_ACCOUNT) as client:
        client.send_message(message, SENDER, RECIPIENTS)
    via_message = only_record(sandbox)
    assert via_bytes == via_message
    assert text_of(via_message) == "hello\n.leading dot\n..two dots\n.\n\nend\n"


def send_raw(client: WireClient, data: bytes) -> int:
    client.cmd("MAIL FROM:<ann@example.com>")
    client.cmd("RCPT TO:<bob@example.net>")
    assert client.cmd("DATA").code == 354
    client.send(data)
    return client.reply().code


CRLF_FORM = b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: raw\r\n\r\nfirst\r\n..dot\r\n\r\nlast\r\n"


def tagged(message: bytes, tag: str) -> bytes:
    """Headers that tell this test's messages apart (the same message twice in one account is one email)."""
    return f"Message-ID: <{tag}@example.com>\r\nX-Tag: {tag}\r\n".encode() + message


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
    expected = only_record(sandbox)
    with session(stack, client_tls, LF_ACCOUNT) as client:
        assert send_raw(client, tagged(wire, tag)) == 250
    assert only_record(sandbox) == expected
    assert text_of(expected) == "first\n.dot\n\nlast\n"


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
    assert recipients_of(record) == RECIPIENTS
    # The dot line is unstuffed like any line (an empty line); everything after it stayed content.
    assert text_of(record) == (
        "hello\n\nMAIL FROM:<evil@example.com>\nRCPT TO:<victim@example.org>\nDATA\nSubject: smuggled\n\nx\n"
    )


def test_a_bare_cr_is_a_line_end(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    head = b"Message-ID: <cr@example.com>\r\nSubject: cr\r\n"
    with session(stack, client_tls, LF_ACCOUNT) as client:
        assert send_raw(client, head + b"X-Note: one\rX-Other: two\r\n\r\nhello\rworld\r\r\n.\r\n") == 250
    with_cr = only_record(sandbox)
    with session(stack, client_tls, CRLF_ACCOUNT) as client:
        assert send_raw(client, head + b"X-Note: one\r\nX-Other: two\r\n\r\nhello\r\nworld\r\n\r\n.\r\n") == 250
    with_crlf = only_record(sandbox)
    assert with_cr == with_crlf
    assert text_of(with_crlf) == "hello\nworld\n\n"


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
                payloads.append(all_records(sandbox))
            assert replies[0] == replies[1], path.name
            assert payloads[0] == payloads[1], path.name
            outcomes[path.stem] = replies[0]
    refused = {name: code for name, code in outcomes.items() if code != 250}
    if stack.forwarder.environment.get("CAKEMAIL_API_FLAVOR") == "v2":
        # v2 refuses attachment types outside the API's list (554 5.6.1, docs/mapping.md) and a From address that is
        # not a confirmed sender (550 5.7.1: smtputf8_addresses), in both forms alike.
        assert set(refused.values()) <= {550, 554} and len(refused) <= 8, sorted(refused.items())
    else:
        assert len(refused) <= 2, refused
