"""Every gRPC failure carries google.rpc rich details: a stable ErrorInfo reason, RetryInfo exactly on what is worth
retrying, BadRequest for malformed input, PreconditionFailure where a precondition is unmet; and the client package
decodes them into the typed exception of the same name (the table is the contract of docs/grpc-api.md)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import status_pb2

from cakemail_gateway import errors as client_errors
from forwarder.api.errors import (
    AccessTokenRejected,
    AccountForbidden,
    ApiCredentialsRejected,
    ApiIntegrationError,
    ApiMfaRequired,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    Rejection,
    SenderNotConfirmed,
    TokenAuthUnsupported,
)
from forwarder.delivery import RecordUnavailable
from forwarder.grpc_api.outcomes import ERROR_DOMAIN, Failure, authenticate_outcome, status_of, submit_outcome
from forwarder.resilience.breaker import BreakerOpen
from forwarder.resilience.bulkhead import Saturated
from forwarder.resilience.pipeline import DeadlinePassed
from forwarder.submission.assembly import MalformedStream, MessageTooLarge
from forwarder.submission.service import DeliveryInFlight
from gateway_mime import AttachmentTooLarge, MessageRejected


class _Rpc(grpc.RpcError):
    """What a failed call looks like to a client: code, details, trailers."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code  # type: ignore[no-any-return]

    def details(self) -> str:
        return self._status.details  # type: ignore[no-any-return]

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(self._status.trailing_metadata)


@pytest.mark.parametrize(
    ("exc", "code", "reason", "retry", "typed"),
    [
        (
            ApiCredentialsRejected("no"),
            "UNAUTHENTICATED",
            "INVALID_CREDENTIALS",
            None,
            client_errors.InvalidCredentials,
        ),
        (ApiMfaRequired("mfa"), "PERMISSION_DENIED", "MFA_REQUIRED", None, client_errors.PermissionDenied),
        (AccessTokenRejected("no"), "UNAUTHENTICATED", "INVALID_TOKEN", None, client_errors.InvalidCredentials),
        (AccountForbidden("7"), "PERMISSION_DENIED", "ACCOUNT_FORBIDDEN", None, client_errors.PermissionDenied),
        (
            TokenAuthUnsupported("v1"),
            "FAILED_PRECONDITION",
            "TOKEN_AUTH_UNSUPPORTED",
            None,
            client_errors.PermissionDenied,
        ),
        (
            MalformedStream("x", field="start"),
            "INVALID_ARGUMENT",
            "MALFORMED_REQUEST",
            None,
            client_errors.InvalidRequest,
        ),
        (Saturated("full"), "RESOURCE_EXHAUSTED", "FORWARDER_SATURATED", 1.0, client_errors.TemporaryError),
        (DeadlinePassed(), "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", 1.0, client_errors.DeadlineExceeded),
        (BreakerOpen(), "UNAVAILABLE", "CIRCUIT_OPEN", 1.0, client_errors.TemporaryError),
        (ApiUnavailable("down"), "UNAVAILABLE", "API_UNAVAILABLE", 1.0, client_errors.TemporaryError),
        (ApiIntegrationError("404", status=404), "UNAVAILABLE", "API_UNAVAILABLE", 1.0, client_errors.TemporaryError),
        (RecordUnavailable("redis"), "UNAVAILABLE", "DELIVERY_RECORD_UNAVAILABLE", 1.0, client_errors.TemporaryError),
        (DeliveryInFlight("busy"), "UNAVAILABLE", "DELIVERY_IN_FLIGHT", 1.0, client_errors.TemporaryError),
        (RuntimeError("bug"), "INTERNAL", "INTERNAL", None, client_errors.GatewayError),
    ],
)
def test_status_failures_carry_rich_details(
    exc: Exception, code: str, reason: str, retry: float | None, typed: type[Exception]
) -> None:
    failure = submit_outcome(exc)
    assert isinstance(failure, Failure)
    status = status_of(failure)
    assert status.code.name == code
    decoded = client_errors.from_rpc_error(_Rpc(status))
    assert type(decoded) is typed
    assert (decoded.reason, decoded.details.domain, decoded.retry_after) == (reason, ERROR_DOMAIN, retry)
    assert decoded.message == failure.details


def test_token_failures_say_which_account_or_flavor() -> None:
    forbidden = client_errors.from_rpc_error(_Rpc(status_of(authenticate_outcome(AccountForbidden("1002")))))
    assert forbidden.details.metadata == {"account_id": "1002"}
    unsupported = client_errors.from_rpc_error(_Rpc(status_of(authenticate_outcome(TokenAuthUnsupported("v1")))))
    assert unsupported.details.metadata == {"api_flavor": "v1"}
    assert [v.type for v in unsupported.details.preconditions] == ["CAKEMAIL_API_FLAVOR"]


def test_too_large_names_the_limit() -> None:
    response = submit_outcome(MessageTooLarge(1234))
    assert not isinstance(response, Failure)
    decoded = client_errors.from_judged("REJECTED_TOO_LARGE", response.detail, list(response.details))
    assert decoded.details.metadata == {"limit_bytes": "1234"}
    assert "1234-byte limit" in decoded.message


def test_malformed_input_names_the_field() -> None:
    status = status_of(authenticate_outcome(MalformedStream("bad", field="start.envelope.rcpt_tos")))
    (trailer,) = [value for key, value in status.trailing_metadata if key == "grpc-status-details-bin"]
    assert status_pb2.Status.FromString(trailer).message == "bad"
    decoded = client_errors.from_rpc_error(_Rpc(status))
    assert [(v.field, v.description) for v in decoded.details.field_violations] == [("start.envelope.rcpt_tos", "bad")]


def test_authenticate_rate_limit_keeps_the_api_retry_after() -> None:
    decoded = client_errors.from_rpc_error(_Rpc(status_of(authenticate_outcome(ApiRateLimited(7.5)))))
    assert (decoded.reason, decoded.retry_after, decoded.retryable) == ("RATE_LIMITED", 7.5, True)


@pytest.mark.parametrize(
    ("exc", "result", "reason", "retry", "typed"),
    [
        (
            ApiRejected(Rejection.INVALID, "bad"),
            "REJECTED_INVALID",
            "MESSAGE_INVALID",
            None,
            client_errors.MessageRefused,
        ),
        (
            ApiRejected(Rejection.FORBIDDEN, "no"),
            "REJECTED_FORBIDDEN",
            "SENDING_FORBIDDEN",
            None,
            client_errors.MessageRefused,
        ),
        (MessageTooLarge(10), "REJECTED_TOO_LARGE", "MESSAGE_TOO_LARGE", None, client_errors.MessageTooLarge),
        (AttachmentTooLarge("big"), "REJECTED_TOO_LARGE", "MESSAGE_TOO_LARGE", None, client_errors.MessageTooLarge),
        (MessageRejected("nested"), "REJECTED_INVALID", "MESSAGE_INVALID", None, client_errors.MessageRefused),
        (
            ApiRejected(Rejection.UNSUPPORTED, "exe"),
            "REJECTED_UNSUPPORTED",
            "CONTENT_UNSUPPORTED",
            None,
            client_errors.MessageRefused,
        ),
        (ApiRateLimited(12), "RATE_LIMITED", "RATE_LIMITED", 12.0, client_errors.RateLimited),
    ],
)
def test_judged_results_carry_the_same_details(
    exc: Exception, result: str, reason: str, retry: float | None, typed: type[Exception]
) -> None:
    response = submit_outcome(exc)
    assert not isinstance(response, Failure)
    decoded = client_errors.from_judged(result, response.detail, list(response.details))
    assert type(decoded) is typed
    assert (decoded.reason, decoded.retry_after) == (reason, retry)


def test_unconfirmed_sender_is_a_precondition_failure() -> None:
    response = submit_outcome(SenderNotConfirmed("x is not confirmed", sender="x@example.com", account="1001"))
    assert not isinstance(response, Failure)
    decoded = client_errors.from_judged("REJECTED_FORBIDDEN", response.detail, list(response.details))
    assert isinstance(decoded, client_errors.SenderNotConfirmed)
    assert [(v.type, v.subject) for v in decoded.details.preconditions] == [
        ("SENDER_CONFIRMATION", "account/1001/sender/x@example.com")
    ]
