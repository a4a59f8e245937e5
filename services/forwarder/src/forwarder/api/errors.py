"""What can go wrong with an API call, as types: each flavor's wire module decides which answer is which, once;
resilience/ reads `retryable`, grpc_api/ reads the type and `kind`, nobody looks at HTTP statuses again."""

from __future__ import annotations

import enum


class ApiError(Exception):
    """Base class: the API did not accept the call."""

    outcome = "error"  # the metrics label of this failure


class ApiUnavailable(ApiError):
    """No usable answer: connect error, timeout, 5xx, or a response we cannot read. Temporary.

    `retryable`: repeating the call is safe and useful (the request never left, the API said so, or the call is
    idempotent). `ambiguous`: the request was sent and its answer lost, so the API may have acted on it.
    """

    outcome = "unavailable"

    def __init__(self, message: str, *, retryable: bool = False, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.ambiguous = ambiguous


class ApiDeadlineExceeded(ApiUnavailable):
    """The caller's deadline ran out while the API had the call (the read timeout was what was left of it): the
    caller hears DEADLINE_EXCEEDED, as it would from its own clock, not UNAVAILABLE a moment before it. Counted as
    `unavailable` in the metrics, like every timeout."""


class ApiCredentialsRejected(ApiError):
    """The credentials (or the token issued for them) are not valid."""

    outcome = "http_401"


class ApiMfaRequired(ApiCredentialsRejected):
    """The user's login needs a multi-factor challenge, which an SMTP client cannot answer."""

    outcome = "mfa_required"


class AccessTokenRejected(ApiCredentialsRejected):
    """A direct gRPC caller's Cakemail access token is unknown, expired or revoked (the API answered 401)."""

    outcome = "invalid_token"


class AccountForbidden(ApiError):
    """The access token is valid but may not act for the account the caller named (the API answered 403)."""

    outcome = "account_forbidden"

    def __init__(self, account: str) -> None:
        super().__init__(f"the access token may not act for account {account}")
        self.account = account


class TokenAuthUnsupported(ApiError):
    """The configured API flavor cannot check an access token (v1 knows only credentials): use credentials."""

    outcome = "token_unsupported"

    def __init__(self, flavor: str) -> None:
        super().__init__(
            f"access tokens need the v2 Cakemail API; this forwarder speaks {flavor}: send credentials instead"
        )
        self.flavor = flavor


class ApiRateLimited(ApiError):
    outcome = "http_429"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:g} s")
        self.retry_after = retry_after


class Rejection(enum.Enum):
    """Why the API (or the gateway, on the API's rules) refused a message for good."""

    INVALID = "invalid"  # the content or a control header breaks the API's rules (HTTP 400/422)
    FORBIDDEN = "forbidden"  # the account may not send this (HTTP 403, an unconfirmed sender, a foreign account)
    TOO_LARGE = "too_large"  # HTTP 413
    UNSUPPORTED = "unsupported"  # the message holds something the API cannot carry (an attachment type)
    RECIPIENT = "recipient"  # the API took the call but refused this recipient (201 with status rejected/error)


class ApiRejected(ApiError):
    """The API (or the gateway on its documented rules) judged the request and refused it. Permanent."""

    def __init__(self, kind: Rejection, detail: str, *, status: int = 0) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status

    @property
    def outcome(self) -> str:  # type: ignore[override]
        return f"http_{self.status}" if self.status else f"refused_{self.kind.value}"


class SenderNotConfirmed(ApiRejected):
    """The From address (or X-Sender-Id) is not a confirmed sender of the account: a precondition the account's
    owner can meet (confirm the sender), reported to gRPC callers as a google.rpc.PreconditionFailure."""

    def __init__(self, detail: str, *, sender: str, account: str) -> None:
        super().__init__(Rejection.FORBIDDEN, detail)
        self.sender = sender
        self.account = account


class ApiIntegrationError(ApiError):
    """A 4xx we have no meaning for (404, 405, 409...): our integration is wrong, not the message. Temporary."""

    outcome = "integration"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
