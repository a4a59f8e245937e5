"""One table from what went wrong to what the gRPC caller is told. The edge maps these to SMTP replies.

Failures arrive already classified (forwarder.api's typed errors, decided once next to each flavor's wire format);
this module only chooses the gRPC face of each class, and how a message's per-recipient outcomes add up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiIntegrationError,
    ApiMfaRequired,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    Rejection,
)
from forwarder.delivery import RecordUnavailable
from forwarder.resilience.breaker import BreakerOpen
from forwarder.resilience.bulkhead import Saturated
from forwarder.resilience.pipeline import DeadlinePassed
from forwarder.submission.assembly import MalformedStream, MessageTooLarge
from forwarder.submission.service import DeliveryInFlight, RecipientOutcome


@dataclass(frozen=True, slots=True)
class Failure:
    code: grpc.StatusCode
    details: str


_REJECTION_RESULTS = {
    Rejection.INVALID: pb.SUBMIT_RESULT_REJECTED_INVALID,
    Rejection.FORBIDDEN: pb.SUBMIT_RESULT_REJECTED_FORBIDDEN,
    Rejection.TOO_LARGE: pb.SUBMIT_RESULT_REJECTED_TOO_LARGE,
    Rejection.UNSUPPORTED: pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED,
    Rejection.RECIPIENT: pb.SUBMIT_RESULT_RECIPIENTS_REFUSED,
}
MFA_DETAIL = "the user is protected by multi-factor authentication, which SMTP AUTH cannot answer"


def submit_outcome(exc: Exception) -> pb.SubmitMessageResponse | Failure:
    """Map a failed submission; a judged message gets a response, an unjudged one a status."""
    if isinstance(exc, ApiRejected):
        return pb.SubmitMessageResponse(result=_REJECTION_RESULTS[exc.kind], detail=exc.detail)
    if isinstance(exc, MessageTooLarge):
        return pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, detail=str(exc))
    if isinstance(exc, ApiRateLimited):
        return pb.SubmitMessageResponse(
            result=pb.SUBMIT_RESULT_RATE_LIMITED,
            detail=str(exc),
            retry_after_seconds=math.ceil(exc.retry_after),
        )
    return _status_failure(exc)


def is_temporary(exc: Exception) -> bool:
    outcome = submit_outcome(exc)
    return isinstance(outcome, Failure) or outcome.result == pb.SUBMIT_RESULT_RATE_LIMITED


def authenticate_outcome(exc: Exception) -> Failure:
    if isinstance(exc, ApiRateLimited):
        return Failure(grpc.StatusCode.UNAVAILABLE, f"credential check {exc}")
    if isinstance(exc, ApiRejected):
        # The API would not even consider these credentials (empty or malformed): they are invalid.
        return Failure(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    return _status_failure(exc)


def _status_failure(exc: Exception) -> Failure:
    if isinstance(exc, ApiMfaRequired):
        return Failure(grpc.StatusCode.PERMISSION_DENIED, MFA_DETAIL)
    if isinstance(exc, ApiCredentialsRejected):
        return Failure(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    if isinstance(exc, MalformedStream):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, Saturated):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, DeadlinePassed | TimeoutError):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the Cakemail API answered")
    if isinstance(exc, BreakerOpen | ApiUnavailable | ApiIntegrationError):
        return Failure(grpc.StatusCode.UNAVAILABLE, f"Cakemail API unavailable: {exc}")
    if isinstance(exc, RecordUnavailable):
        return Failure(grpc.StatusCode.UNAVAILABLE, "delivery record unavailable")
    if isinstance(exc, DeliveryInFlight):
        return Failure(grpc.StatusCode.UNAVAILABLE, "another attempt of this message is being delivered")
    return Failure(grpc.StatusCode.INTERNAL, "internal error")


def _reason(outcome: pb.SubmitMessageResponse | Failure) -> str:
    return outcome.details if isinstance(outcome, Failure) else outcome.detail


def _recipient_result(recipient: RecipientOutcome) -> pb.RecipientResult:
    if recipient.error is None:
        return pb.RecipientResult(
            recipient=recipient.recipient, result=pb.SUBMIT_RESULT_ACCEPTED, message_id=recipient.email_id or ""
        )
    outcome = submit_outcome(recipient.error)
    if isinstance(outcome, Failure):
        return pb.RecipientResult(
            recipient=recipient.recipient, result=pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED, detail=outcome.details
        )
    return pb.RecipientResult(recipient=recipient.recipient, result=outcome.result, detail=outcome.detail)


def _grouped(failures: Sequence[tuple[RecipientOutcome, pb.SubmitMessageResponse | Failure]]) -> str:
    """'a@x, b@x (reason); c@x (other reason)': the recipients first, so that a cut-short reply still names them."""
    by_reason: dict[str, list[str]] = {}
    for recipient, outcome in failures:
        by_reason.setdefault(_reason(outcome), []).append(recipient.recipient)
    return "; ".join(f"{', '.join(recipients)} ({reason})" for reason, recipients in by_reason.items())


def submit_response(outcomes: Sequence[RecipientOutcome]) -> pb.SubmitMessageResponse | Failure:
    """The message's answer from its recipients' outcomes (docs/errors.md, "Several recipients"):
    all sent -> ACCEPTED; all failed the same way -> that failure, as for a message judged whole; otherwise a
    temporary failure dominates (RECIPIENTS_DEFERRED: the client resends, sent recipients are not sent again) and
    permanent ones answer once none is temporary (RECIPIENTS_REFUSED). The detail says how many were sent and
    which failed."""
    results = [_recipient_result(o) for o in outcomes]
    sent = [o for o in outcomes if o.error is None]
    if len(sent) == len(outcomes):
        ids = list(dict.fromkeys(o.email_id or "" for o in sent if o.email_id))
        return pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_ACCEPTED, message_ids=ids, recipients=results)
    failed = [(o, submit_outcome(o.error)) for o in outcomes if o.error is not None]
    signatures = {
        (o.code, o.details) if isinstance(o, Failure) else (o.result, o.detail, o.retry_after_seconds)
        for _, o in failed
    }
    if not sent and len(signatures) == 1:
        whole = failed[0][1]
        if isinstance(whole, Failure):
            return whole
        whole.recipients.extend(results)
        return whole
    deferred: list[tuple[RecipientOutcome, pb.SubmitMessageResponse | Failure]] = []
    refused: list[tuple[RecipientOutcome, pb.SubmitMessageResponse | Failure]] = []
    for recipient, outcome in failed:
        temporary = isinstance(outcome, Failure) or outcome.result == pb.SUBMIT_RESULT_RATE_LIMITED
        (deferred if temporary else refused).append((recipient, outcome))
    parts = [f"{len(sent)} of {len(outcomes)} recipients sent"]
    if deferred:
        parts.append("deferred: " + _grouped(deferred))
    if refused:
        parts.append("refused: " + _grouped(refused))
    return pb.SubmitMessageResponse(
        result=pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED if deferred else pb.SUBMIT_RESULT_RECIPIENTS_REFUSED,
        message_ids=[o.email_id for o in sent if o.email_id],
        detail="; ".join(parts),
        recipients=results,
    )
