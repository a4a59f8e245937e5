"""One table from failures to gRPC answers (docs/errors.md)."""

from __future__ import annotations

import grpc
import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiDeadlineExceeded,
    ApiIntegrationError,
    ApiMfaRequired,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    Rejection,
)
from forwarder.api.v1.wire import classify
from forwarder.delivery import RecordUnavailable
from forwarder.grpc_api.outcomes import Failure, authenticate_outcome, submit_outcome, submit_response
from forwarder.resilience.bulkhead import Saturated
from forwarder.resilience.pipeline import DeadlinePassed
from forwarder.submission.assembly import MalformedStream, MessageTooLarge
from forwarder.submission.service import DeliveryInFlight, RecipientOutcome


def rejected(status: int, message: str = "bad", field: str = "") -> Exception:
    """What the v1 wire format makes of such an answer (classified there, once)."""
    error = classify("/v1/emails", status, None, {"error": "validation_error", "message": message, "field": field})
    assert error is not None
    return error


@pytest.mark.parametrize(
    ("exc", "result", "detail"),
    [
        (rejected(400, "missing from", "from"), pb.SUBMIT_RESULT_REJECTED_INVALID, "missing from (field: from)"),
        (rejected(422, "unprocessable"), pb.SUBMIT_RESULT_REJECTED_INVALID, "unprocessable"),
        (rejected(403, "not allowed"), pb.SUBMIT_RESULT_REJECTED_FORBIDDEN, "not allowed"),
        (rejected(413, "too big"), pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, "too big"),
        (MessageTooLarge(100), pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, "exceeds the 100-byte limit"),
        (ApiRejected(Rejection.UNSUPPORTED, "a.exe"), pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED, "a.exe"),
        (ApiRejected(Rejection.RECIPIENT, "x: rejected"), pb.SUBMIT_RESULT_RECIPIENTS_REFUSED, "x: rejected"),
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
        (ApiDeadlineExceeded("/v2/emails: deadline passed", ambiguous=True), grpc.StatusCode.DEADLINE_EXCEEDED),
        (rejected(404), grpc.StatusCode.UNAVAILABLE),
        (ApiIntegrationError("405", status=405), grpc.StatusCode.UNAVAILABLE),
        (RecordUnavailable("redis down"), grpc.StatusCode.UNAVAILABLE),
        (DeliveryInFlight("busy"), grpc.StatusCode.UNAVAILABLE),
        (ApiMfaRequired("mfa"), grpc.StatusCode.PERMISSION_DENIED),
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
        (ApiMfaRequired("mfa"), grpc.StatusCode.PERMISSION_DENIED),
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


def _sent(recipient: str, email_id: str) -> RecipientOutcome:
    return RecipientOutcome(recipient, email_id=email_id)


def _failed(recipient: str, error: Exception) -> RecipientOutcome:
    return RecipientOutcome(recipient, error=error)


def test_every_recipient_sent_is_accepted_with_every_id() -> None:
    answer = submit_response([_sent("a@x", "e1"), RecipientOutcome("b@x", email_id="e0", already_sent=True)])
    assert isinstance(answer, pb.SubmitMessageResponse)
    assert (answer.result, list(answer.message_ids)) == (pb.SUBMIT_RESULT_ACCEPTED, ["e1", "e0"])
    assert [r.result for r in answer.recipients] == [pb.SUBMIT_RESULT_ACCEPTED] * 2


def test_all_failing_the_same_way_answers_as_for_a_message_judged_whole() -> None:
    down = ApiUnavailable("emails: HTTP 503")
    answer = submit_response([_failed("a@x", down), _failed("b@x", down)])
    assert isinstance(answer, Failure) and answer.code == grpc.StatusCode.UNAVAILABLE
    invalid = ApiRejected(Rejection.INVALID, "content.subject: too short", status=422)
    judged = submit_response([_failed("a@x", invalid), _failed("b@x", invalid)])
    assert isinstance(judged, pb.SubmitMessageResponse)
    assert (judged.result, judged.detail) == (pb.SUBMIT_RESULT_REJECTED_INVALID, "content.subject: too short")


def test_a_temporary_failure_dominates_and_the_detail_counts_and_names() -> None:
    answer = submit_response(
        [
            _sent("a@x", "e1"),
            _failed("b@x", ApiUnavailable("emails: HTTP 503")),
            _failed("c@x", ApiRejected(Rejection.RECIPIENT, "c@x: Cakemail answered rejected")),
            _failed("d@x", RecordUnavailable("down")),
        ]
    )
    assert isinstance(answer, pb.SubmitMessageResponse)
    assert answer.result == pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED
    assert answer.detail == (
        "1 of 4 recipients sent; deferred: b@x (Cakemail API unavailable: emails: HTTP 503); "
        "d@x (delivery record unavailable); refused: c@x (c@x: Cakemail answered rejected)"
    )
    assert list(answer.message_ids) == ["e1"]
    assert [r.result for r in answer.recipients] == [
        pb.SUBMIT_RESULT_ACCEPTED,
        pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED,
        pb.SUBMIT_RESULT_RECIPIENTS_REFUSED,
        pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED,
    ]


def test_permanent_failures_answer_once_no_temporary_one_remains() -> None:
    answer = submit_response(
        [_sent("a@x", "e1"), _failed("c@x", ApiRejected(Rejection.RECIPIENT, "c@x: Cakemail answered rejected"))]
    )
    assert isinstance(answer, pb.SubmitMessageResponse)
    assert answer.result == pb.SUBMIT_RESULT_RECIPIENTS_REFUSED
    assert answer.detail == "1 of 2 recipients sent; refused: c@x (c@x: Cakemail answered rejected)"
