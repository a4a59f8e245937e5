"""One table from what went wrong to what the gRPC caller is told. The edge maps these to SMTP replies."""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.errors import ApiCredentialsRejected, ApiRateLimited, ApiRejected, ApiUnavailable
from forwarder.resilience.breaker import BreakerOpen
from forwarder.resilience.bulkhead import Saturated
from forwarder.submission.assembly import MalformedStream, MessageTooLarge
from forwarder.submission.service import DeadlinePassed


@dataclass(frozen=True, slots=True)
class Failure:
    code: grpc.StatusCode
    details: str


_REJECTION_RESULTS = {
    400: pb.SUBMIT_RESULT_REJECTED_INVALID,
    422: pb.SUBMIT_RESULT_REJECTED_INVALID,
    403: pb.SUBMIT_RESULT_REJECTED_FORBIDDEN,
    413: pb.SUBMIT_RESULT_REJECTED_TOO_LARGE,
}


def _rejection_detail(exc: ApiRejected) -> str:
    detail = exc.body.message or exc.body.error or f"HTTP {exc.status}"
    return f"{detail} (field: {exc.body.field})" if exc.body.field else detail


def submit_outcome(exc: Exception) -> pb.SubmitMessageResponse | Failure:
    """Map a failed submission; a judged message gets a response, an unjudged one a status."""
    if isinstance(exc, ApiRejected) and exc.status in _REJECTION_RESULTS:
        return pb.SubmitMessageResponse(result=_REJECTION_RESULTS[exc.status], detail=_rejection_detail(exc))
    if isinstance(exc, MessageTooLarge):
        return pb.SubmitMessageResponse(result=pb.SUBMIT_RESULT_REJECTED_TOO_LARGE, detail=str(exc))
    if isinstance(exc, ApiRateLimited):
        return pb.SubmitMessageResponse(
            result=pb.SUBMIT_RESULT_RATE_LIMITED,
            detail=str(exc),
            retry_after_seconds=math.ceil(exc.retry_after),
        )
    return _status_failure(exc)


def authenticate_outcome(exc: Exception) -> Failure:
    if isinstance(exc, ApiRejected) and exc.status in (400, 422):
        # The API would not even consider these credentials (empty or malformed): they are invalid.
        return Failure(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    if isinstance(exc, ApiRateLimited):
        return Failure(grpc.StatusCode.UNAVAILABLE, f"credential check {exc}")
    return _status_failure(exc)


def _status_failure(exc: Exception) -> Failure:
    if isinstance(exc, ApiCredentialsRejected):
        return Failure(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    if isinstance(exc, MalformedStream):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, Saturated):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, DeadlinePassed | TimeoutError):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the Cakemail API answered")
    if isinstance(exc, BreakerOpen):
        return Failure(grpc.StatusCode.UNAVAILABLE, f"Cakemail API unavailable: {exc}")
    if isinstance(exc, ApiUnavailable):
        return Failure(grpc.StatusCode.UNAVAILABLE, f"Cakemail API unavailable: {exc}")
    if isinstance(exc, ApiRejected):
        # A 4xx we have no meaning for (404, 405, 409...): our integration is wrong, not the message.
        return Failure(grpc.StatusCode.UNAVAILABLE, f"Cakemail API refused the call: {exc}")
    return Failure(grpc.StatusCode.INTERNAL, "internal error")
