"""The forwarder's core use cases, free of gRPC: authenticate a user, submit one message."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from forwarder.api.client import CakemailClient
from forwarder.api.errors import ApiCredentialsRejected, ApiError, ApiRateLimited, ApiRejected, ApiUnavailable
from forwarder.api.wire import ApiToken, OutgoingEmail
from forwarder.credentials.token_cache import TokenCache
from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.breaker import CircuitBreaker
from forwarder.resilience.bulkhead import Bulkhead
from forwarder.resilience.retry import RetryPolicy, call_with_retries
from forwarder.submission.assembly import AssembledMessage
from forwarder.submission.mapping import to_outgoing_email
from gateway_common.correlation import current_request_id

T = TypeVar("T")
ApiCall = Callable[[float | None], Awaitable[T]]

log = structlog.get_logger(__name__)


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


@dataclass(frozen=True, slots=True)
class Resilience:
    bulkhead: Bulkhead
    breaker: CircuitBreaker
    retry: RetryPolicy
    rng: random.Random


class SubmissionService:
    def __init__(
        self,
        client: CakemailClient,
        resilience: Resilience,
        metrics: ForwarderMetrics,
        *,
        token_ttl_cap_seconds: float,
        token_cache_max_entries: int,
    ) -> None:
        self._client = client
        self._resilience = resilience
        self._metrics = metrics
        self.tokens = TokenCache(
            self._fetch_token,
            ttl_cap_seconds=token_ttl_cap_seconds,
            max_entries=token_cache_max_entries,
            metrics=metrics,
        )

    async def _attempt(self, route: str, call: ApiCall[T], deadline: float | None) -> T:
        """One try: a bulkhead slot, the breaker's permission, the call bounded by what is left of the deadline."""
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise DeadlinePassed("no time left for the API call")
        breaker = self._resilience.breaker
        started = time.perf_counter()
        error: BaseException | None = None
        async with self._resilience.bulkhead.slot():
            breaker.before_call()
            try:
                return await call(timeout)
            except BaseException as exc:
                error = exc
                raise
            finally:
                # The API answering 4xx is the API being up; only no usable answer counts against it.
                breaker.record(not isinstance(error, ApiUnavailable | asyncio.CancelledError))
                self._metrics.api_latency.labels(route).observe(time.perf_counter() - started)
                self._metrics.api_requests.labels(route, _outcome(error)).inc()

    async def _call(self, route: str, call: ApiCall[T], deadline: float | None) -> T:
        def on_retry(attempt: int, error: BaseException, delay: float) -> None:
            self._metrics.api_retries.labels(route).inc()
            log.info("retrying api call", route=route, attempt=attempt, reason=str(error), delay=round(delay, 3))

        return await call_with_retries(
            lambda: self._attempt(route, call, deadline),
            self._resilience.retry,
            deadline=deadline,
            rng=self._resilience.rng,
            on_retry=on_retry,
        )

    async def _fetch_token(self, username: str, password: str) -> ApiToken:
        request_id = current_request_id.get()
        return await self._call(
            "auth",
            lambda timeout: self._client.validate_credentials(
                username, password, request_id=request_id, timeout=timeout
            ),
            None,
        )

    async def _send(
        self, api_key: str, email: OutgoingEmail, idempotency_key: str, request_id: str, timeout: float | None
    ) -> str:
        return await self._client.send_email(
            api_key, email, idempotency_key=idempotency_key, request_id=request_id, timeout=timeout
        )

    async def authenticate(self, username: str, password: str) -> ApiToken:
        return await self.tokens.token_for(username, password)

    async def submit(self, message: AssembledMessage, *, deadline: float | None) -> str:
        """Sends the message in one API call (retried when safe); returns the Cakemail message id."""
        credentials = message.start.credentials
        email = to_outgoing_email(message)
        request_id = current_request_id.get()
        for attempt in (1, 2):
            token = await self.tokens.token_for(credentials.username, credentials.password)
            send: ApiCall[str] = functools.partial(
                self._send, token.api_key, email, message.idempotency_key, request_id
            )
            try:
                return await self._call("emails", send, deadline)
            except ApiCredentialsRejected:
                # The cached token went stale (revoked, expired early): validate once more, then give up.
                self.tokens.invalidate(credentials.username, credentials.password)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
