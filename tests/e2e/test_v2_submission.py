"""The real Cakemail API (v2, the default flavor) through the running stack: SMTP client -> edge -> forwarder ->
sandbox. One POST /v2/emails per recipient, the control headers, refusals, and every recipient exactly once across
a client's resends (docs/errors.md, "Several recipients"; docs/mapping.md)."""

from __future__ import annotations

import base64
import smtplib
import ssl
import uuid
from email.message import EmailMessage

import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView, metric
from tests.e2e.v2 import DEMO_SENDER_IDS, v2_header

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
RECIPIENTS = ["bob@example.net", "carol@example.org", "dave@example.com"]


def _client(
    stack: Stack, tls: ssl.SSLContext, user: tuple[str, str] = ("demo@example.com", "demo-password")
) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30)
    client.starttls(context=tls)
    client.login(*user)
    return client


def _message(sender: str = "ann@example.com", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Ann <{sender}>"
    message["To"] = "Bob <bob@example.net>, carol@example.org"
    message["Subject"] = "quarterly report"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@client.test>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("see attached")
    return message


def _send(stack: Stack, tls: ssl.SSLContext, message: EmailMessage | bytes, rcpts: list[str]) -> tuple[int, str]:
    """(code, text) of the DATA reply."""
    with _client(stack, tls) as client:
        try:
            if isinstance(message, bytes):
                client.sendmail("bounce@example.com", rcpts, message)
            else:
                client.send_message(message, from_addr="bounce@example.com", to_addrs=rcpts)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code, refused.smtp_error.decode()
        return 250, "ok"


def _forwarder_metric(stack: Stack, name: str, **labels: str) -> float:
    return metric(stack.ports.forwarder_http, name, **labels)


def test_three_recipients_become_three_calls_with_the_control_headers_applied(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message = _message(
        X_Tags="q3, finance", X_List_Id="77", X_Email_API_Type="marketing", X_Track_Opens="false", X_Custom="kept"
    )
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="Report Q3.pdf")
    with _client(stack, client_tls) as client:
        refused = client.send_message(message, from_addr="bounce@example.com", to_addrs=RECIPIENTS)
        assert refused == {}
    records = sandbox.emails()
    assert sorted(r["email"] for r in records) == sorted(RECIPIENTS)
    for record in records:
        payload = record["payload"]
        assert (record["flavor"], record["status"], record["account_id"]) == ("v2", "queued", 1001)
        assert payload["sender"] == {"id": DEMO_SENDER_IDS["ann@example.com"], "name": "Ann"}
        assert payload["tags"] == ["q3", "finance"]
        assert payload["list_id"] == 77
        assert payload["tracking"] == {"opens": False}
        assert payload["content"] == {
            "subject": "quarterly report",
            "text": "see attached\n",
            "encoding": "utf-8",
            "type": "marketing",
        }
        assert payload["attachment"] == [
            {"filename": "Report_Q3.pdf", "type": "pdf", "content": base64.b64encode(PDF).decode()}
        ]
        names = {h["name"].lower() for h in payload["additional_headers"]}
        assert v2_header(record, "X-Custom") == "kept"
        assert not names & {"x-tags", "x-list-id", "x-email-api-type", "x-track-opens", "message-id", "to", "cc"}


def test_without_control_headers_the_settings_decide(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    assert _send(stack, client_tls, _message(), ["bob@example.net"]) == (250, "ok")
    [record] = sandbox.emails()
    assert record["payload"]["content"]["type"] == "transactional"
    assert "list_id" not in record["payload"] and "tags" not in record["payload"]


def test_x_account_id_sends_for_another_of_the_user_s_accounts(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    # demo@example.com is a confirmed sender of account 1002 too (its id there: "43"); ann@example.com is not.
    assert _send(stack, client_tls, _message(sender="demo@example.com", X_Account_Id="1002"), ["bob@example.net"]) == (
        250,
        "ok",
    )
    [record] = sandbox.emails()
    assert (record["account_id"], record["payload"]["sender"]["id"]) == (1002, "43")
    code, text = _send(stack, client_tls, _message(X_Account_Id="1002"), ["bob@example.net"])
    assert (code, text) == (
        550,
        "5.7.1 Sending not permitted: ann@example.com is not a confirmed sender of account 1002",
    )
    code, text = _send(stack, client_tls, _message(X_Account_Id="4242"), ["bob@example.net"])
    assert code == 550 and "X-Account-Id: account 4242 is not one this user may act for" in text
    assert len(sandbox.emails()) == 1


def test_an_unconfirmed_sender_gets_550_5_7_1_naming_it_and_nothing_is_sent(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    code, text = _send(stack, client_tls, _message(sender="unconfirmed@example.com"), RECIPIENTS)
    assert code == 550 and text.startswith("5.7.1 ")
    assert "unconfirmed@example.com is not a confirmed sender of account 1001" in text
    assert sandbox.emails() == []


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"X_Tags": "not a tag"}, "X-Tags"),
        ({"X_List_Id": "seven"}, "X-List-Id"),
        ({"X_Track_Opens": "perhaps"}, "X-Track-Opens"),
    ],
)
def test_a_bad_control_header_gets_550_5_6_0_naming_it(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext, headers: dict[str, str], named: str
) -> None:
    code, text = _send(stack, client_tls, _message(**headers), ["bob@example.net"])
    assert (code, text.split(" ")[0]) == (550, "5.6.0")
    assert f"header {named}:" in text
    assert sandbox.emails() == []


def test_an_attachment_the_api_cannot_carry_gets_554_5_6_1_naming_it_and_the_types(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message = _message()
    message.add_attachment(b"MZ...", maintype="application", subtype="x-msdownload", filename="setup.exe")
    code, text = _send(stack, client_tls, message, ["bob@example.net"])
    assert (code, text.split(" ")[0]) == (554, "5.6.1")
    assert "'setup.exe'" in text and "csv, doc, docx, ics, jpeg" in text
    assert sandbox.emails() == []


def test_what_real_tools_send_is_delivered_by_the_documented_rules(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    no_subject = (
        b"From: ann@example.com\r\nMessage-ID: <ns-%s@t>\r\n\r\nbody without subject\r\n" % uuid.uuid4().hex.encode()
    )
    subject_only = b"From: ann@example.com\r\nSubject: disk full on db-1\r\nMessage-ID: <so-%s@t>\r\n\r\n" % (
        uuid.uuid4().hex.encode()
    )
    attachment_only = _message()
    attachment_only.clear_content()
    attachment_only.add_attachment(PDF, maintype="application", subtype="pdf", filename="scan.pdf")
    for message in (no_subject, subject_only, attachment_only):
        assert _send(stack, client_tls, message, ["bob@example.net"]) == (250, "ok")
    contents = [r["payload"]["content"] for r in sandbox.emails()]
    assert (contents[0]["subject"], contents[0]["text"]) == ("(no subject)", "body without subject\n")
    assert (contents[1]["subject"], contents[1]["text"]) == ("disk full on db-1", "disk full on db-1")
    assert (contents[2]["subject"], contents[2]["text"]) == ("quarterly report", "quarterly report")
    assert sandbox.emails()[2]["payload"]["attachment"][0]["filename"] == "scan.pdf"


def test_a_recipient_the_api_rejects_fails_the_message_and_the_resend_sends_nobody_twice(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message = _message()
    rcpts = ["bob@example.net", "rejected@example.com", "carol@example.org"]
    code, text = _send(stack, client_tls, message, rcpts)
    assert (code, text) == (
        554,
        "5.0.0 Not sent to every recipient: 2 of 3 recipients sent; "
        "refused: rejected@example.com (rejected@example.com: Cakemail answered rejected)",
    )
    assert _send(stack, client_tls, message, rcpts)[0] == 554  # a client that resends anyway
    by_recipient = sorted((r["email"], r["status"]) for r in sandbox.emails())
    assert by_recipient == [
        ("bob@example.net", "queued"),
        ("carol@example.org", "queued"),
        ("rejected@example.com", "rejected"),
        ("rejected@example.com", "rejected"),  # refused for good: nothing was queued, each try is asked again
    ]


def test_one_recipient_failing_temporarily_then_the_resend_delivers_every_recipient_once(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    message = _message()
    lost = _forwarder_metric(stack, "forwarder_ambiguous_submissions_total", resolution="not_found")
    sandbox.faults({"emails": {"error_status": 500, "count": 1}})  # a 500 may have been acted on: not retried
    try:
        code, text = _send(stack, client_tls, message, RECIPIENTS)
    finally:
        sandbox.faults({})
    assert code == 451 and text.startswith("4.3.0 Not sent to every recipient, try again: 2 of 3 recipients sent;")
    assert len(sandbox.emails()) == 2
    assert _send(stack, client_tls, message, RECIPIENTS) == (250, "ok")
    assert sorted(r["email"] for r in sandbox.emails()) == sorted(RECIPIENTS)
    # The failed call's answer was lost to the gateway; the activity logs showed it was never queued.
    assert _forwarder_metric(stack, "forwarder_ambiguous_submissions_total", resolution="not_found") == lost + 1


def test_an_mfa_user_gets_535_5_7_8_saying_why(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30) as client:
        client.starttls(context=client_tls)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("mfa@example.com", "mfa-password")
    assert refused.value.smtp_code == 535
    assert refused.value.smtp_error.decode().startswith("5.7.8 ")
    assert "SMTP AUTH cannot answer" in refused.value.smtp_error.decode()
