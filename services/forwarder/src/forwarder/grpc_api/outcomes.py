"""One table from what went wrong to what the gRPC caller is told. The edge maps these to SMTP replies.

Failures arrive already classified (forwarder.api's typed errors, decided once next to each flavor's wire format);
this module only chooses the gRPC face of each class (status code, and the google.rpc rich details: a stable
ErrorInfo reason, RetryInfo, BadRequest, PreconditionFailure), and how a message's per-recipient outcomes add up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.errors import (
    AccessTokenRejected,
    AccountForbidden,
    ApiCredentialsRejected,
    ApiDeadlineExceeded,
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
from forwarder.resilience.breaker import BreakerOpen
from forwarder.resilience.bulkhead import Saturated
from forwarder.resilience.pipeline import DeadlinePassed
from forwarder.submission.assembly import MalformedStream, MessageTooLarge
from forwarder.submission.service import DeliveryInFlight, RecipientOutcome
from gateway_mime import AttachmentTooLarge, MessageRejected
from gateway_mime.frames import HeadersTooLarge

# google.rpc.ErrorInfo.domain of every error this service reports.
ERROR_DOMAIN = "gateway.cakemail.com"
# RetryInfo's delay when nothing better is known (the API gave no Retry-After).
DEFAULT_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Failure:
    """An unjudged call: a gRPC status code, a text, and the rich details that make it actionable."""

    code: grpc.StatusCode
    details: str
    # ErrorInfo.reason: stable, UPPER_SNAKE_CASE, documented in docs/grpc-api.md.
    reason: str = "INTERNAL"
    # RetryInfo.retry_delay when retrying may help; None: no RetryInfo (retrying the same call will not help).
    retry_after: float | None = None
    # BadRequest field violations: (field path, description).
    field_violations: tuple[tuple[str, str], ...] = ()
    # PreconditionFailure violations: (type, subject, description).
    preconditions: tuple[tuple[str, str, str], ...] = ()
    # ErrorInfo.metadata: (key, value); never a secret.
    metadata: tuple[tuple[str, str], ...] = ()


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def rich_details(
    reason: str,
    *,
    retry_after: float | None = None,
    field_violations: Sequence[tuple[str, str]] = (),
    preconditions: Sequence[tuple[str, str, str]] = (),
    metadata: dict[str, str] | None = None,
) -> list[any_pb2.Any]:
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {}))]
    if retry_after is not None:
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=_duration(retry_after))))
    if field_violations:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in field_violations
        ]
        details.append(_pack(error_details_pb2.BadRequest(field_violations=violations)))
    if preconditions:
        failures = [
            error_details_pb2.PreconditionFailure.Violation(type=kind, subject=subject, description=description)
            for kind, subject, description in preconditions
        ]
        details.append(_pack(error_details_pb2.PreconditionFailure(violations=failures)))
    return details


def status_of(failure: Failure) -> grpc.Status:
    """The failure as a gRPC status whose trailers carry the google.rpc.Status with its details."""
    status = status_pb2.Status(
        code=getattr(code_pb2, failure.code.name),
        message=failure.details,
        details=rich_details(
            failure.reason,
            retry_after=failure.retry_after,
            field_violations=failure.field_violations,
            preconditions=failure.preconditions,
            metadata=dict(failure.metadata),
        ),
    )
    return rpc_status.to_status(status)


_REJECTION_RESULTS = {
    Rejection.INVALID: pb.SUBMIT_RESULT_REJECTED_INVALID,
    Rejection.FORBIDDEN: pb.SUBMIT_RESULT_REJECTED_FORBIDDEN,
    Rejection.TOO_LARGE: pb.SUBMIT_RESULT_REJECTED_TOO_LARGE,
    Rejection.UNSUPPORTED: pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED,
    Rejection.RECIPIENT: pb.SUBMIT_RESULT_RECIPIENTS_REFUSED,
}
# ErrorInfo.reason of each judged result (SubmitMessageResponse.details).
RESULT_REASONS = {
    pb.SUBMIT_RESULT_REJECTED_INVALID: "MESSAGE_INVALID",
    pb.SUBMIT_RESULT_REJECTED_FORBIDDEN: "SENDING_FORBIDDEN",
    pb.SUBMIT_RESULT_REJECTED_TOO_LARGE: "MESSAGE_TOO_LARGE",
    pb.SUBMIT_RESULT_RATE_LIMITED: "RATE_LIMITED",
    pb.SUBMIT_RESULT_REJECTED_UNSUPPORTED: "CONTENT_UNSUPPORTED",
    pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED: "RECIPIENTS_DEFERRED",
    pb.SUBMIT_RESULT_RECIPIENTS_REFUSED: "RECIPIENTS_REFUSED",
}
MFA_DETAIL = "the user is protected by multi-factor authentication, which SMTP AUTH cannot answer"


def _judged(
    result: pb.SubmitResult.ValueType,
    detail: str,
    *,
    retry_after: float | None = None,
    reason: str = "",
    preconditions: Sequence[tuple[str, str, str]] = (),
    metadata: dict[str, str] | None = None,
) -> pb.SubmitMessageResponse:
    response = pb.SubmitMessageResponse(
        result=result, detail=detail, retry_after_seconds=math.ceil(retry_after) if retry_after else 0
    )
    response.details.extend(
        rich_details(
            reason or RESULT_REASONS[result], retry_after=retry_after, preconditions=preconditions, metadata=metadata
        )
    )
    return response


def submit_outcome(exc: Exception) -> pb.SubmitMessageResponse | Failure:
    """Map a failed submission; a judged message gets a response, an unjudged one a status."""
    if isinstance(exc, SenderNotConfirmed):
        return _judged(
            pb.SUBMIT_RESULT_REJECTED_FORBIDDEN,
            exc.detail,
            reason="SENDER_NOT_CONFIRMED",
            preconditions=[("SENDER_CONFIRMATION", f"account/{exc.account}/sender/{exc.sender}", exc.detail)],
        )
    if isinstance(exc, ApiRejected):
        return _judged(_REJECTION_RESULTS[exc.kind], exc.detail)
    if isinstance(exc, MessageTooLarge):
        return _judged(pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, str(exc), metadata={"limit_bytes": str(exc.limit)})
    if isinstance(exc, AttachmentTooLarge | HeadersTooLarge):
        return _judged(pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, getattr(exc, "reason", str(exc)))
    if isinstance(exc, MessageRejected):
        # What the MIME core refuses (raw submissions): the edge answers these 550 5.6.0, as over SMTP.
        return _judged(pb.SUBMIT_RESULT_REJECTED_INVALID, exc.reason)
    if isinstance(exc, ApiRateLimited):
        return _judged(pb.SUBMIT_RESULT_RATE_LIMITED, str(exc), retry_after=max(exc.retry_after, 1.0))
    return _status_failure(exc)


def is_temporary(exc: Exception) -> bool:
    outcome = submit_outcome(exc)
    return isinstance(outcome, Failure) or outcome.result == pb.SUBMIT_RESULT_RATE_LIMITED


def authenticate_outcome(exc: Exception) -> Failure:
    if isinstance(exc, ApiRateLimited):
        return Failure(
            grpc.StatusCode.UNAVAILABLE,
            f"credential check {exc}",
            reason="RATE_LIMITED",
            retry_after=max(exc.retry_after, DEFAULT_RETRY_SECONDS),
        )
    if isinstance(exc, ApiRejected):
        # The API would not even consider these credentials (empty or malformed): they are invalid.
        return Failure(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials", reason="INVALID_CREDENTIALS")
    return _status_failure(exc)


def _status_failure(exc: Exception) -> Failure:
    unavailable = grpc.StatusCode.UNAVAILABLE
    retry = DEFAULT_RETRY_SECONDS
    if isinstance(exc, ApiMfaRequired):
        mfa = ("MFA_FREE_LOGIN", "user", "SMTP AUTH and gRPC credentials cannot answer a multi-factor challenge")
        return Failure(grpc.StatusCode.PERMISSION_DENIED, MFA_DETAIL, reason="MFA_REQUIRED", preconditions=(mfa,))
    if isinstance(exc, AccessTokenRejected):
        return Failure(
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid access token: unknown, expired or revoked",
            reason="INVALID_TOKEN",
        )
    if isinstance(exc, ApiCredentialsRejected):
        return Failure(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials", reason="INVALID_CREDENTIALS")
    if isinstance(exc, AccountForbidden):
        return Failure(
            grpc.StatusCode.PERMISSION_DENIED,
            str(exc),
            reason="ACCOUNT_FORBIDDEN",
            metadata=(("account_id", exc.account),),
        )
    if isinstance(exc, TokenAuthUnsupported):
        flavor = (
            "CAKEMAIL_API_FLAVOR",
            f"forwarder/api_flavor/{exc.flavor}",
            "access tokens need CAKEMAIL_API_FLAVOR=v2; this forwarder accepts credentials only",
        )
        return Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            str(exc),
            reason="TOKEN_AUTH_UNSUPPORTED",
            preconditions=(flavor,),
            metadata=(("api_flavor", exc.flavor),),
        )
    if isinstance(exc, MalformedStream):
        violation = ((exc.field or "request", exc.description),)
        return Failure(
            grpc.StatusCode.INVALID_ARGUMENT, str(exc), reason="MALFORMED_REQUEST", field_violations=violation
        )
    if isinstance(exc, Saturated):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), reason="FORWARDER_SATURATED", retry_after=retry)
    if isinstance(exc, DeadlinePassed | TimeoutError | ApiDeadlineExceeded):
        return Failure(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "deadline passed before the Cakemail API answered",
            reason="DEADLINE_EXCEEDED",
            retry_after=retry,
        )
    if isinstance(exc, BreakerOpen):
        return Failure(unavailable, f"Cakemail API unavailable: {exc}", reason="CIRCUIT_OPEN", retry_after=retry)
    if isinstance(exc, ApiUnavailable | ApiIntegrationError):
        return Failure(unavailable, f"Cakemail API unavailable: {exc}", reason="API_UNAVAILABLE", retry_after=retry)
    if isinstance(exc, RecordUnavailable):
        return Failure(
            unavailable, "delivery record unavailable", reason="DELIVERY_RECORD_UNAVAILABLE", retry_after=retry
        )
    if isinstance(exc, DeliveryInFlight):
        return Failure(
            unavailable,
            "another attempt of this message is being delivered",
            reason="DELIVERY_IN_FLIGHT",
            retry_after=retry,
        )
    return Failure(grpc.StatusCode.INTERNAL, "internal error", reason="INTERNAL")


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
    result = pb.SUBMIT_RESULT_RECIPIENTS_DEFERRED if deferred else pb.SUBMIT_RESULT_RECIPIENTS_REFUSED
    return pb.SubmitMessageResponse(
        result=result,
        message_ids=[o.email_id for o in sent if o.email_id],
        detail="; ".join(parts),
        recipients=results,
        details=rich_details(RESULT_REASONS[result], retry_after=DEFAULT_RETRY_SECONDS if deferred else None),
    )
