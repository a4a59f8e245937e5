"""One table from failures to gRPC answers (docs/errors.md)."""

from __future__ import annotations

import grpc
import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.errors import ApiCredentialsRejected, ApiRateLimited, ApiRejected, ApiUnavailable
from forwarder.api.wire import ApiErrorBody
from forwarder.grpc_api.outcomes import Failure, authenticate_outcome, submit_outcome
from forwarder.resilience.bulkhead import Saturated
from forwarder.submission.assembly import MalformedStream, MessageTooLarge
from forwarder.submission.service import DeadlinePassed


def rejected(status: int, message: str = "bad", field: str = "") -> ApiRejected:
    return ApiRejected(status, ApiErrorBody(error="validation_error", message=message, field=field))


@pytest.mark.parametrize(
    ("exc", "result", "detail"),
    [
        (rejected(400, "missing from", "from"), pb.SUBMIT_RESULT_REJECTED_INVALID, "missing from (field: from)"),
        (rejected(422, "unprocessable"), pb.SUBMIT_RESULT_REJECTED_INVALID, "unprocessable"),
        (rejected(403, "not allowed"), pb.SUBMIT_RESULT_REJECTED_FORBIDDEN, "not allowed"),
        (rejected(413, "too big"), pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, "too big"),
        (MessageTooLarge(100), pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, "exceeds the 100-byte limit"),
    ],
)
def test_judged_messages_get_a_result(exc: Exception, result: int, detail: str) -> None:
    outcome = submit_outcome(exc)
    assert isinstance(outcome, pb.SubmitMessageResponse)
    assert outcome.result == result
    assert detail in outcome.detail


def test_rate_limit_carries_retry_after_rounded_up() -> None:
    outcome = submit_outcome(ApiRateLimited(2.2))
    assert isinstance(outcome, pb.SubmitMessageResponse)
    assert (outcome.result, outcome.retry_after_seconds) == (pb.SUBMIT_RESULT_RATE_LIMITED, 3)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ApiCredentialsRejected("401"), grpc.StatusCode.UNAUTHENTICATED),
        (ApiUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (Saturated("full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (MalformedStream("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (DeadlinePassed("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (TimeoutError(), grpc.StatusCode.DEADLINE_EXCEEDED),
        (rejected(404), grpc.StatusCode.UNAVAILABLE),
        (RuntimeError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_unjudged_submissions_get_a_status(exc: Exception, code: grpc.StatusCode) -> None:
    outcome = submit_outcome(exc)
    assert isinstance(outcome, Failure)
    assert outcome.code == code


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ApiCredentialsRejected("401"), grpc.StatusCode.UNAUTHENTICATED),
        (rejected(400), grpc.StatusCode.UNAUTHENTICATED),
        (ApiRateLimited(1), grpc.StatusCode.UNAVAILABLE),
        (ApiUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (Saturated("full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_authenticate_outcomes(exc: Exception, code: grpc.StatusCode) -> None:
    assert authenticate_outcome(exc).code == code


def test_internal_errors_do_not_leak_their_text() -> None:
    outcome = submit_outcome(RuntimeError("password=hunter2"))
    assert isinstance(outcome, Failure)
    assert "hunter2" not in outcome.details
