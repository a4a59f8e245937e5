"""Pure: forwarder answers and aiosmtpd built-ins -> SMTP replies with enhanced status codes, by table."""

from __future__ import annotations

import re

import grpc
import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from smtp_edge.forwarding.replies import (
    reply_for_auth_error,
    reply_for_response,
    reply_for_submit_error,
    safe_text,
)
from smtp_edge.smtp.replies import outgoing

REPLY = re.compile(r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} [ -~]+$")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_ACCEPTED, message_ids=["m1"]), "250 2.0.0 Ok: queued as m1"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_ACCEPTED), "451 4.3.0"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_REJECTED_INVALID, detail="no from"), "550 5.6.0"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_REJECTED_FORBIDDEN), "550 5.7.1"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_REJECTED_TOO_LARGE), "552 5.3.4"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_RATE_LIMITED, retry_after_seconds=30), "451 4.7.1"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_UNSPECIFIED), "451 4.3.0"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED, detail="x.exe"), "554 5.6.1"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED, detail="1 of 2"), "451 4.3.0"),
        (pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_RECIPIENTS_REFUSED, detail="1 of 2"), "554 5.0.0"),
    ],
)
def test_response_replies(response: pb.SubmitMessageResponse, expected: str) -> None:
    reply = reply_for_response(response)
    assert reply.startswith(expected)
    assert REPLY.match(reply)


def test_rejection_detail_and_retry_hint_reach_the_client() -> None:
    invalid = pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_REJECTED_INVALID, detail="missing from (field: from)")
    assert reply_for_response(invalid) == "550 5.6.0 Message rejected: missing from (field: from)"
    limited = pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_RATE_LIMITED, retry_after_seconds=30)
    assert "30 seconds" in reply_for_response(limited)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, "535 5.7.8"),
        (grpc.StatusCode.PERMISSION_DENIED, "550 5.7.8"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "451 4.3.2"),
        (grpc.StatusCode.INVALID_ARGUMENT, "550 5.6.0"),
        (grpc.StatusCode.UNAVAILABLE, "451 4.3.0"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "451 4.3.0"),
        (grpc.StatusCode.INTERNAL, "451 4.3.0"),
        (grpc.StatusCode.UNKNOWN, "451 4.3.0"),
    ],
)
def test_submit_error_replies(code: grpc.StatusCode, expected: str) -> None:
    reply = reply_for_submit_error(code, "details")
    assert reply.startswith(expected)
    assert REPLY.match(reply)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, "535 5.7.8"),
        (grpc.StatusCode.UNAVAILABLE, "454 4.7.0"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "454 4.7.0"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "454 4.7.0"),
    ],
)
def test_auth_error_replies(code: grpc.StatusCode, expected: str) -> None:
    assert reply_for_auth_error(code).startswith(expected)


def test_safe_text_is_one_short_printable_line() -> None:
    text = safe_text("line one\r\n250 injected\x00caf\u00e9 " + "x" * 500)
    assert "\r" not in text and "\n" not in text and "\x00" not in text
    assert all(" " <= ch <= "~" for ch in text)
    assert len(text) <= 200


@pytest.mark.parametrize(
    ("builtin", "expected"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("221 Bye", "221 2.0.0 Bye"),
        ("220 Ready to start TLS", "220 2.0.0 Ready to start TLS"),
        ("530 Must issue a STARTTLS command first", "530 5.7.0 Must issue a STARTTLS command first"),
        ("552 Error: message size exceeds fixed maximum message size", "552 5.3.4 Message too big (limit 1000 bytes)"),
        ("503 Error: need RCPT command", "503 5.5.1 Need RCPT command first"),
        ('500 Error: command "FOO" not recognized', '500 5.5.1 command "FOO" not recognized'),
        ('500 Error: command "EHLO\rEHLO" not recognized', '500 5.5.1 command "EHLO?EHLO" not recognized'),
        ("502 Could not VRFY a\rb\x00c", "502 5.5.1 Could not VRFY a?b?c"),
        ("501 Error: BODY can only be one of 7BIT, 8BITMIME", "501 5.5.4 BODY can only be one of 7BIT, 8BITMIME"),
        ("501 Too many values", "501 5.5.4 Too many arguments"),
        ("501 Syntax: MAIL FROM: <address>", "501 5.5.4 Syntax: MAIL FROM: <address>"),
        ("503 Error: send HELO first", "503 5.5.1 Send HELO first"),
        ("535 5.7.8 Authentication credentials invalid", "535 5.7.8 Authentication credentials invalid"),
        ("553 5.1.3 Error: malformed address", "501 5.1.3 Malformed address"),
        ("334 VXNlcm5hbWU6", "334 VXNlcm5hbWU6"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
    ],
)
def test_builtin_replies_become_the_tables(builtin: str, expected: str) -> None:
    assert outgoing(builtin, size_limit=1000) == expected


def test_partial_delivery_replies_say_how_many_were_sent_and_which_failed() -> None:
    deferred = pb.SubmitMessageResponse(
        result=pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED,
        detail="2 of 3 recipients sent; deferred: c@x.test (Cakemail API unavailable)",
    )
    assert reply_for_response(deferred) == (
        "451 4.3.0 Not sent to every recipient, try again: 2 of 3 recipients sent; "
        "deferred: c@x.test (Cakemail API unavailable)"
    )
    unsupported = pb.SubmitMessageResponse(
        result=pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED, detail="attachment 'a.exe' has the extension .exe"
    )
    assert reply_for_response(unsupported).startswith("554 5.6.1 Message content not supported: attachment 'a.exe'")


def test_an_mfa_user_is_told_why_smtp_auth_cannot_work() -> None:
    reply = reply_for_auth_error(grpc.StatusCode.PERMISSION_DENIED)
    assert reply.startswith("535 5.7.8 ") and "multi-factor" in reply and "SMTP AUTH cannot answer" in reply
    assert REPLY.match(reply)
