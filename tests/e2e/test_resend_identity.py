"""A client's resend is the same message, even without a Message-ID (issue [1/7] item 3), on both API flavors.

The API records the message but every answer is lost (the sandbox's accept_then_drop), so the client hears 4xx and
keeps it; the fault cleared, it resends the same bytes: 250, and the API has it once. v1 settles this with the
Idempotency-Key, v2 with the delivery record and a look in the activity logs."""

from __future__ import annotations

import smtplib
import ssl
import uuid

import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView, metric

pytestmark = pytest.mark.e2e


def _send(stack: Stack, tls: ssl.SSLContext, raw: bytes, rcpts: list[str]) -> int:
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=60) as client:
        client.starttls(context=tls)
        client.login("demo@example.com", "demo-password")
        try:
            client.sendmail("ann@example.com", rcpts, raw)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code
        return 250


@pytest.mark.parametrize(("flavor", "records_per_message"), [("v2", 2), ("v1", 1)])
def test_a_resend_without_message_id_whose_answers_were_lost_is_delivered_once(
    request: pytest.FixtureRequest, client_tls: ssl.SSLContext, flavor: str, records_per_message: int
) -> None:
    stack: Stack = request.getfixturevalue("stack" if flavor == "v2" else "v1_stack")
    sandbox = SandboxView(stack.sandbox_url)
    sandbox.clear()
    rcpts = ["bob@example.net", "carol@example.org"]
    # No Message-ID, no Date: exactly what a minimal script sends, byte for byte the same both times.
    raw = f"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: no id {uuid.uuid4().hex}\r\n\r\nsame\r\n".encode()
    found = metric(stack.ports.forwarder_http, "forwarder_ambiguous_submissions_total", resolution="found")
    sandbox.faults({"emails": {"accept_then_drop": True}})
    try:
        first = _send(stack, client_tls, raw, rcpts)
    finally:
        sandbox.faults({})
    assert 400 <= first < 500  # the client still owns it...
    assert len(sandbox.emails()) == records_per_message  # ...though the API recorded it
    assert _send(stack, client_tls, raw, rcpts) == 250
    assert len(sandbox.emails()) == records_per_message
    if flavor == "v2":
        settled = metric(stack.ports.forwarder_http, "forwarder_ambiguous_submissions_total", resolution="found")
        assert settled == found + 2  # both recipients were found in the activity logs, not sent again
