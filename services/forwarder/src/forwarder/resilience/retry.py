"""When to try an API call again, as one pure decision: only failures that are safe to repeat, with full-jitter
exponential backoff (or the API's Retry-After), never past the caller's deadline.

Hand-written rather than tenacity: the decision needs the coming delay and the caller's deadline together, which
tenacity's separate stop and wait hooks never see at once; the loop around it is ten lines.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from forwarder.api.errors import ApiRateLimited, ApiUnavailable

T = TypeVar("T")

# A retry that would leave less than this for the call itself is not worth starting.
MIN_CALL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0

    def delay_before_retry(
        self, attempt: int, error: BaseException, remaining: float | None, rng: random.Random
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up and raise `error`."""
        if attempt >= self.max_attempts:
            return None
        if isinstance(error, ApiRateLimited):
            delay = error.retry_after
        elif isinstance(error, ApiUnavailable) and error.retryable:
            delay = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        else:
            return None
        if remaining is not None and delay + MIN_CALL_SECONDS > remaining:
            return None
        return delay


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float | None,
    rng: random.Random,
    on_retry: Callable[[int, BaseException, float], None] = lambda *_: None,
) -> T:
    attempt = 1
    while True:
        try:
            return await call()
        except (ApiUnavailable, ApiRateLimited) as error:
            remaining = None if deadline is None else deadline - time.monotonic()
            delay = policy.delay_before_retry(attempt, error, remaining, rng)
            if delay is None:
                raise
            on_retry(attempt, error, delay)
            await asyncio.sleep(delay)
            attempt += 1
