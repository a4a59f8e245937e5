"""One email from smtplib, through the real edge and forwarder, into the real Cakemail API sandbox."""

from __future__ import annotations

import base64
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


DEMO = ("demo@example.com", "demo-password")
PDF = b"%PDF-1.4 skeleton\n" * 64


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Sender <ann@example.com>"
    msg["To"] = "Bob <bob@example.net>"
    msg["Cc"] = "carol@example.org"
    msg["Subject"] = "Walking skeleton caf\u00e9"
    msg["X-Campaign-ID"] = "c-42"
    msg.set_content("plain body\n")
    msg.add_alternative("<p>html body</p>", subtype="html")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    return msg


def _starttls_login(stack: Stack, tls: ssl.SSLContext) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, local_hostname="client.test", timeout=30)
    client.starttls(context=tls)
    client.login(*DEMO)
    return client


def test_message_reaches_the_api_with_to_cc_and_bcc(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    client = _starttls_login(stack, client_tls)
    try:
        refused = client.send_message(
            _message(),
            from_addr="bounce@example.com",
            to_addrs=["bob@example.net", "carol@example.org", "dave@example.com"],
        )
        code, _reply = client.noop()
    finally:
        client.quit()
    assert refused == {}
    assert code == 250

    [record] = sandbox.emails()
    payload = record["payload"]
    assert payload["from"] == {"email": "ann@example.com", "name": "Ann Sender"}
    assert payload["envelope_from"] == "bounce@example.com"
    assert payload["to"] == [{"email": "bob@example.net", "name": "Bob"}]
    assert payload["cc"] == [{"email": "carol@example.org", "name": ""}]
    assert payload["bcc"] == [{"email": "dave@example.com", "name": ""}]
    assert payload["subject"] == "Walking skeleton caf\u00e9"
    assert payload["text_body"] == "plain body\n"
    assert payload["html_body"] == "<p>html body</p>\n"
    assert payload["headers"]["X-Campaign-ID"] == "c-42"
    assert payload["headers"]["Message-ID"].startswith("<") and payload["headers"]["Message-ID"].endswith(">")
    [attachment] = payload["attachments"]
    assert attachment["filename"] == "report.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["disposition"] == "attachment"
    assert base64.b64decode(attachment["content"]) == PDF
    assert record["idempotency_key"].startswith("gw1-")
    assert record["request_id"]


def test_reply_names_the_cakemail_message_id(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    client = _starttls_login(stack, client_tls)
    try:
        client.mail("ann@example.com")
        client.rcpt("bob@example.net")
        code, reply = client.data(b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: id\r\n\r\nhello\r\n")
    finally:
        client.quit()
    [record] = sandbox.emails()
    assert code == 250
    assert reply.decode() == f"2.0.0 Ok: queued as {record['message_id']}"


def test_implicit_tls_port_accepts_auth_and_mail(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", stack.ports.smtp_implicit_tls, context=client_tls, timeout=30) as client:
        client.login(*DEMO)
        client.sendmail("ann@example.com", ["bob@example.net"], b"Subject: 465\r\n\r\nover implicit TLS\r\n")
    [record] = sandbox.emails()
    assert record["payload"]["subject"] == "465"
    assert record["payload"]["text_body"] == "over implicit TLS\n"


def test_bad_credentials_get_535(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30)
    try:
        client.starttls(context=client_tls)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("demo@example.com", "wrong-password")
        assert refused.value.smtp_code == 535
        assert refused.value.smtp_error.startswith(b"5.7.8")
        # Still unauthenticated: MAIL is refused.
        code, reply = client.docmd("MAIL FROM:<ann@example.com>")
        assert (code, reply[:5]) == (530, b"5.7.0")
    finally:
        client.close()
    assert sandbox.emails() == []


def test_auth_before_starttls_gets_530(stack: Stack) -> None:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30)
    try:
        client.ehlo()
        assert not client.has_extn("auth"), "AUTH must not be offered before TLS"
        assert client.has_extn("starttls")
        creds = base64.b64encode(b"\0demo@example.com\0demo-password").decode()
        code, reply = client.docmd("AUTH", "PLAIN " + creds)
        assert (code, reply[:5]) == (530, b"5.7.0")
        code, reply = client.docmd("MAIL FROM:<ann@example.com>")
        assert (code, reply[:5]) == (530, b"5.7.0")
    finally:
        client.close()


def test_mail_before_auth_gets_530(stack: Stack, client_tls: ssl.SSLContext) -> None:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30)
    try:
        client.starttls(context=client_tls)
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"] and "LOGIN" in client.esmtp_features["auth"]
        code, reply = client.docmd("MAIL FROM:<ann@example.com>")
        assert (code, reply[:5]) == (530, b"5.7.0")
    finally:
        client.close()
