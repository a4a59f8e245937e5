"""What can go wrong with an API call, as types the rest of the forwarder maps to gRPC answers."""

from __future__ import annotations

from forwarder.api.wire import ApiErrorBody


class ApiError(Exception):
    """Base class: the API did not accept the call."""


class ApiUnavailable(ApiError):
    """No usable answer: connect error, timeout, 5xx, or a response we cannot read. Temporary.

    `retryable` says whether repeating the call is safe and useful: the request never left (connect errors),
    or the API says so (502/503/504), or the response was lost on a call that is idempotent (every email
    carries an Idempotency-Key; validating credentials changes nothing).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ApiCredentialsRejected(ApiError):
    """401: the credentials (or the token issued for them) are not valid."""


class ApiRateLimited(ApiError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:g} s")
        self.retry_after = retry_after


class ApiRejected(ApiError):
    """A 4xx other than 401/429: the API judged the request and refused it. Permanent."""

    def __init__(self, status: int, body: ApiErrorBody) -> None:
        super().__init__(f"HTTP {status}: {body.error} {body.message}".strip())
        self.status = status
        self.body = body
