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
from forwarder.api.errors import ApiError, ApiUnavailable
from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.breaker import CircuitBreaker
from forwarder.resilience.bulkhead import Bulkhead
from forwarder.resilience.retry import RetryPolicy, call_with_retries

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
            try:
                return await call(ctx)
            except BaseException as exc:
                error = exc
                raise
            finally:
                # The API answering 4xx is the API being up; only no usable answer counts against it.
                self.breaker.record(not isinstance(error, ApiUnavailable | asyncio.CancelledError))
                self.metrics.api_latency.labels(route).observe(time.perf_counter() - started)
                self.metrics.api_requests.labels(route, _outcome(error)).inc()

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
