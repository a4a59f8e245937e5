"""The forwarder's core use cases, free of gRPC: authenticate a user, submit one message."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from forwarder.api.client import CakemailClient
from forwarder.api.errors import ApiCredentialsRejected, ApiError, ApiRateLimited, ApiRejected
from forwarder.api.wire import ApiToken
from forwarder.credentials.token_cache import TokenCache
from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.bulkhead import Bulkhead
from forwarder.submission.assembly import AssembledMessage
from forwarder.submission.mapping import to_outgoing_email
from gateway_common.correlation import current_request_id

T = TypeVar("T")


class DeadlinePassed(Exception):
    """The caller's deadline left no time for the next API call."""


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, ApiRejected):
        return f"http_{exc.status}"
    if isinstance(exc, ApiCredentialsRejected):
        return "http_401"
    if isinstance(exc, ApiRateLimited):
        return "http_429"
    if isinstance(exc, ApiError):
        return "unavailable"
    return "error"


class SubmissionService:
    def __init__(
        self,
        client: CakemailClient,
        bulkhead: Bulkhead,
        metrics: ForwarderMetrics,
        *,
        token_ttl_cap_seconds: float,
        token_cache_max_entries: int,
    ) -> None:
        self._client = client
        self._bulkhead = bulkhead
        self._metrics = metrics
        self.tokens = TokenCache(
            self._fetch_token,
            ttl_cap_seconds=token_ttl_cap_seconds,
            max_entries=token_cache_max_entries,
            metrics=metrics,
        )

    async def _observed(self, route: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            async with self._bulkhead.slot():
                return await call()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._metrics.api_latency.labels(route).observe(time.perf_counter() - started)
            self._metrics.api_requests.labels(route, _outcome(error)).inc()

    async def _fetch_token(self, username: str, password: str) -> ApiToken:
        return await self._observed(
            "auth",
            lambda: self._client.validate_credentials(username, password, request_id=current_request_id.get()),
        )

    async def authenticate(self, username: str, password: str) -> ApiToken:
        return await self.tokens.token_for(username, password)

    async def submit(self, message: AssembledMessage, *, deadline: float | None) -> str:
        """Sends the message in one API call; returns the Cakemail message id."""
        credentials = message.start.credentials
        email = to_outgoing_email(message)
        for attempt in (1, 2):
            token = await self.tokens.token_for(credentials.username, credentials.password)
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise DeadlinePassed("no time left for the API call")
            try:
                return await self._observed(
                    "emails",
                    functools.partial(
                        self._client.send_email,
                        token.api_key,
                        email,
                        idempotency_key=message.idempotency_key,
                        request_id=current_request_id.get(),
                        timeout=timeout,
                    ),
                )
            except ApiCredentialsRejected:
                # The cached token went stale (revoked, expired early): validate once more, then give up.
                self.tokens.invalidate(credentials.username, credentials.password)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
