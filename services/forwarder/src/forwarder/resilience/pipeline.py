"""Every API call goes through one pipeline: bulkhead slot, breaker permission, the call bounded by the deadline,
retried when the flavor said it is safe; each attempt counted by route and outcome."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from forwarder.api.context import CallContext
from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiError,
    ApiIntegrationError,
    ApiMfaRequired,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
)
from forwarder.api.http import LAST_STATUS
from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.breaker import CircuitBreaker
from forwarder.resilience.bulkhead import Bulkhead
from forwarder.resilience.retry import RetryPolicy, call_with_retries
from gateway_common import tracing

T = TypeVar("T")
ApiAttempt = Callable[[CallContext], Awaitable[T]]

log = structlog.get_logger(__name__)


class DeadlinePassed(Exception):
    """The caller's deadline left no time for the next API call."""


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, ApiError):
        return exc.outcome
    return "error"


# smtp_api_errors_total's error_type, most specific class first; anything else is "error".
_ERROR_TYPES: tuple[tuple[type[ApiError], str], ...] = (
    (ApiMfaRequired, "mfa_required"),
    (ApiCredentialsRejected, "credentials_rejected"),
    (ApiRateLimited, "rate_limited"),
    (ApiRejected, "rejected"),
    (ApiIntegrationError, "integration"),
    (ApiUnavailable, "unavailable"),
)


def error_type(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return next((name for kind, name in _ERROR_TYPES if isinstance(exc, kind)), "error")


@dataclass(frozen=True, slots=True)
class ApiPipeline:
    bulkhead: Bulkhead
    breaker: CircuitBreaker
    retry: RetryPolicy
    rng: random.Random
    metrics: ForwarderMetrics

    async def _attempt(self, route: str, call: ApiAttempt[T], ctx: CallContext) -> T:
        remaining = ctx.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlinePassed("no time left for the API call")
        started = time.perf_counter()
        error: BaseException | None = None
        async with self.bulkhead.slot():
            self.breaker.before_call()
            LAST_STATUS.set(None)
            try:
                with tracing.span(f"cakemail api {route}", {"cakemail.endpoint": route}) as span:
                    try:
                        return await call(ctx)
                    finally:
                        if (answered := LAST_STATUS.get()) is not None:
                            span.set_attribute("http.response.status_code", answered)
            except BaseException as exc:
                error = exc
                raise
            finally:
                # The API answering 4xx is the API being up; only no usable answer counts against it.
                self.breaker.record(not isinstance(error, ApiUnavailable | asyncio.CancelledError))
                status = LAST_STATUS.get()
                status_code = "none" if status is None else str(status)
                self.metrics.api_latency.labels(route, status_code).observe(time.perf_counter() - started)
                self.metrics.api_requests.labels(route, _outcome(error)).inc()
                if error is not None:
                    self.metrics.api_errors.labels(error_type(error), status_code).inc()

    async def run(self, route: str, call: ApiAttempt[T], ctx: CallContext) -> T:
        def on_retry(attempt: int, error: BaseException, delay: float) -> None:
            self.metrics.api_retries.labels(route).inc()
            log.info("retrying api call", route=route, attempt=attempt, reason=str(error), delay=round(delay, 3))

        return await call_with_retries(
            lambda: self._attempt(route, call, ctx),
            self.retry,
            deadline=ctx.deadline,
            rng=self.rng,
            on_retry=on_retry,
        )
