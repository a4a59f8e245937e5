"""Pure: the forwarder's answer -> the SMTP reply. A 250 only when Cakemail accepted the message."""

from __future__ import annotations

import grpc

from cakemail.gateway.v1 import forwarder_pb2 as pb

_MAX_DETAIL = 200

AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_TEMPORARY = "454 4.7.0 Temporary authentication failure, try again later"
AUTH_MFA = (
    "535 5.7.8 Authentication failed: this user is protected by multi-factor authentication, "
    "which SMTP AUTH cannot answer"
)
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, message not accepted; try again later"


def safe_text(text: str) -> str:
    """One line of printable ASCII, short: what any SMTP client can show."""
    cleaned = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned[:_MAX_DETAIL]


def _with_detail(prefix: str, detail: str) -> str:
    detail = safe_text(detail)
    return f"{prefix}: {detail}" if detail else prefix


def reply_for_response(response: pb.SubmitMessageResponse) -> str:
    result = response.result
    if result == pb.SUBMIT_RESULT_ACCEPTED and response.message_ids:
        return "250 2.0.0 Ok: queued as " + safe_text(" ".join(response.message_ids))
    if result == pb.SUBMIT_RESULT_REJECTED_INVALID:
        return _with_detail("550 5.6.0 Message rejected", response.detail)
    if result == pb.SUBMIT_RESULT_REJECTED_FORBIDDEN:
        return _with_detail("550 5.7.1 Sending not permitted", response.detail)
    if result == pb.SUBMIT_RESULT_REJECTED_TOO_LARGE:
        return _with_detail("552 5.3.4 Message too big", response.detail)
    if result == pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED:
        return _with_detail("554 5.6.1 Message content not supported", response.detail)
    if result == pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED:
        # Temporary failures dominate: the client resends, and recipients already sent are not sent again.
        return _with_detail("451 4.3.0 Not sent to every recipient, try again", response.detail)
    if result == pb.SUBMIT_RESULT_RECIPIENTS_REFUSED:
        return _with_detail("554 5.0.0 Not sent to every recipient", response.detail)
    if result == pb.SUBMIT_RESULT_RATE_LIMITED:
        wait = response.retry_after_seconds
        return (
            f"451 4.7.1 Rate limited, try again in {wait} seconds"
            if wait
            else "451 4.7.1 Rate limited, try again later"
        )
    # An accepted result without an id, or a result this edge does not know: the client keeps the message.
    return TEMPORARY_FAILURE


def reply_for_submit_error(code: grpc.StatusCode, details: str) -> str:
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AUTH_INVALID
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return "550 5.7.8 Sending not permitted: " + AUTH_MFA.removeprefix("535 5.7.8 Authentication failed: ")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "451 4.3.2 System busy, try again later"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return _with_detail("550 5.6.0 Message could not be processed", details)
    return TEMPORARY_FAILURE


def reply_for_auth_error(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return AUTH_MFA
    return AUTH_INVALID if code == grpc.StatusCode.UNAUTHENTICATED else AUTH_TEMPORARY
