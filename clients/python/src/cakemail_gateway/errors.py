"""Every failure as a typed exception carrying the server's google.rpc rich details (docs/grpc-api.md, Errors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """The decoded google.rpc details of one answer."""

    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # RetryInfo.retry_delay in seconds; None: the server did not say retrying may help.
    retry_after: float | None = None
    field_violations: tuple[FieldViolation, ...] = ()
    preconditions: tuple[PreconditionViolation, ...] = ()


def decode_details(details: Sequence[any_pb2.Any]) -> ErrorDetails:
    reason, domain, metadata = "", "", {}
    retry_after: float | None = None
    violations: list[FieldViolation] = []
    preconditions: list[PreconditionViolation] = []
    for packed in details:
        info = error_details_pb2.ErrorInfo()
        retry = error_details_pb2.RetryInfo()
        bad = error_details_pb2.BadRequest()
        failure = error_details_pb2.PreconditionFailure()
        if packed.Unpack(info):
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif packed.Unpack(retry):
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        elif packed.Unpack(bad):
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif packed.Unpack(failure):
            preconditions += [PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations]
    return ErrorDetails(reason, domain, metadata, retry_after, tuple(violations), tuple(preconditions))


class GatewayError(Exception):
    """The gateway did not accept the message (or the call). `retryable`: sending again later may succeed."""

    def __init__(self, message: str, *, code: grpc.StatusCode | None, details: ErrorDetails, result: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        # The SubmitResult name (without prefix) when the API judged the message; "" for a status error.
        self.result = result

    @property
    def reason(self) -> str:
        return self.details.reason

    @property
    def retry_after(self) -> float | None:
        return self.details.retry_after

    @property
    def retryable(self) -> bool:
        return self.details.retry_after is not None


class TemporaryError(GatewayError):
    """The gateway or the Cakemail API cannot take the message now (UNAVAILABLE, RESOURCE_EXHAUSTED, ...)."""


class RateLimited(TemporaryError):
    """The Cakemail API is rate limiting the account; retry_after says how long to wait."""


class RecipientsDeferred(TemporaryError):
    """Some recipients failed temporarily: send the same message again (sent recipients are not sent twice)."""


class DeadlineExceeded(TemporaryError):
    """The call's deadline passed before the API answered."""


class InvalidCredentials(GatewayError):
    """The credentials (or the access token) are not valid."""


class PermissionDenied(GatewayError):
    """The credentials are valid but cannot be used here (an MFA-protected user, an access token used for an account
    it may not act for, or a forwarder whose API flavor cannot check tokens): see details.reason and
    details.preconditions."""


class InvalidRequest(GatewayError):
    """The request was malformed: details.field_violations name the fields."""


class MessageRefused(GatewayError):
    """The API refused the message for good (invalid, forbidden, too large, unsupported, recipients refused)."""


class SenderNotConfirmed(MessageRefused):
    """The From address is not a confirmed sender of the account: details.preconditions says which."""


class MessageTooLarge(MessageRefused):
    """Over the size limits (those of SMTP)."""


_BY_REASON: dict[str, type[GatewayError]] = {
    "RATE_LIMITED": RateLimited,
    "RECIPIENTS_DEFERRED": RecipientsDeferred,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "INVALID_CREDENTIALS": InvalidCredentials,
    "INVALID_TOKEN": InvalidCredentials,
    "ACCOUNT_FORBIDDEN": PermissionDenied,
    "TOKEN_AUTH_UNSUPPORTED": PermissionDenied,
    "MFA_REQUIRED": PermissionDenied,
    "MALFORMED_REQUEST": InvalidRequest,
    "SENDER_NOT_CONFIRMED": SenderNotConfirmed,
    "MESSAGE_TOO_LARGE": MessageTooLarge,
    "MESSAGE_INVALID": MessageRefused,
    "SENDING_FORBIDDEN": MessageRefused,
    "CONTENT_UNSUPPORTED": MessageRefused,
    "RECIPIENTS_REFUSED": MessageRefused,
}
_BY_CODE: dict[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.UNAUTHENTICATED: InvalidCredentials,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: TemporaryError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TemporaryError,
}


def from_rpc_error(error: grpc.RpcError) -> GatewayError:
    """A failed call -> its typed exception, details read from the status's trailers."""
    code: grpc.StatusCode = error.code()
    text: str = error.details() or code.name
    details = ErrorDetails()
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY:
            details = decode_details(status_pb2.Status.FromString(value).details)
    if not details.reason and code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        # No rich details (the forwarder is unreachable, a proxy answered): still worth a retry.
        details = ErrorDetails(retry_after=1.0)
    kind = _BY_REASON.get(details.reason) or _BY_CODE.get(code, GatewayError)
    return kind(text, code=code, details=details)


def from_judged(result: str, detail: str, details: Sequence[any_pb2.Any]) -> GatewayError:
    """A response the API judged but did not accept -> its typed exception."""
    decoded = decode_details(details)
    kind = _BY_REASON.get(decoded.reason, TemporaryError if decoded.retry_after is not None else MessageRefused)
    return kind(detail or result, code=None, details=decoded, result=result)
