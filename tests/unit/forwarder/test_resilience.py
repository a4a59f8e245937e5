"""Retry decisions and the circuit breaker, as pure state machines with a controlled clock and RNG."""

from __future__ import annotations

import random

import pytest

from forwarder.api.errors import ApiRateLimited, ApiRejected, ApiUnavailable, Rejection
from forwarder.resilience.breaker import BreakerOpen, BreakerSettings, BreakerState, CircuitBreaker
from forwarder.resilience.retry import RetryPolicy, call_with_retries

POLICY = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0)


@pytest.mark.parametrize(
    ("attempt", "error", "remaining", "retried"),
    [
        (1, ApiUnavailable("connect", retryable=True), None, True),
        (2, ApiUnavailable("503", retryable=True), 10.0, True),
        (3, ApiUnavailable("503", retryable=True), 10.0, False),  # attempts used up
        (1, ApiUnavailable("500", retryable=False), 10.0, False),
        (1, ApiRejected(Rejection.INVALID, "", status=400), 10.0, False),
        (1, ApiRateLimited(2.0), 10.0, True),
        (1, ApiRateLimited(2.0), 2.1, False),  # would leave no time for the call
        (1, ApiUnavailable("connect", retryable=True), 0.2, False),
    ],
)
def test_retry_decisions(attempt: int, error: Exception, remaining: float | None, retried: bool) -> None:
    delay = POLICY.delay_before_retry(attempt, error, remaining, random.Random(7))
    assert (delay is not None) is retried


def test_backoff_is_full_jitter_capped_and_retry_after_is_exact() -> None:
    rng = random.Random(1)
    first = [POLICY.delay_before_retry(1, ApiUnavailable("x", retryable=True), None, rng) for _ in range(200)]
    second = [POLICY.delay_before_retry(2, ApiUnavailable("x", retryable=True), None, rng) for _ in range(200)]
    assert all(d is not None and 0 <= d <= 0.1 for d in first)
    assert all(d is not None and 0 <= d <= 0.2 for d in second)
    assert max(d for d in second if d is not None) > 0.1  # the window doubled
    capped = RetryPolicy(max_attempts=10, base_delay=1, max_delay=2)
    assert all(
        (capped.delay_before_retry(8, ApiUnavailable("x", retryable=True), None, rng) or 0) <= 2 for _ in range(50)
    )
    assert POLICY.delay_before_retry(1, ApiRateLimited(1.5), None, rng) == 1.5


async def test_call_with_retries_stops_at_the_first_success() -> None:
    outcomes: list[Exception | str] = [ApiUnavailable("a", retryable=True), ApiUnavailable("b", retryable=True), "ok"]
    calls = 0

    async def call() -> str:
        nonlocal calls
        outcome = outcomes[calls]
        calls += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    fast = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001)
    assert await call_with_retries(call, fast, deadline=None, rng=random.Random(0)) == "ok"
    assert calls == 3


async def test_call_with_retries_raises_what_it_may_not_retry() -> None:
    async def call() -> str:
        raise ApiRejected(Rejection.INVALID, "bad", status=400)

    with pytest.raises(ApiRejected):
        await call_with_retries(call, POLICY, deadline=None, rng=random.Random(0))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list[tuple[BreakerState, BreakerState]]) -> CircuitBreaker:
    settings = BreakerSettings(window_seconds=10, min_requests=4, failure_ratio=0.5, open_seconds=5, half_open_probes=1)
    return CircuitBreaker(settings, clock=clock, on_change=lambda old, new: changes.append((old, new)))


def test_breaker_needs_the_minimum_request_count() -> None:
    changes: list[tuple[BreakerState, BreakerState]] = []
    b = breaker(Clock(), changes)
    for _ in range(3):
        b.before_call()
        b.record(False)
    assert b.state is BreakerState.CLOSED


def test_breaker_opens_fails_fast_half_opens_and_closes() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for ok in (True, False, True, False):
        b.before_call()
        b.record(ok)
    assert b.state is BreakerState.OPEN
    with pytest.raises(BreakerOpen):
        b.before_call()
    clock.now += 5
    assert b.state is BreakerState.HALF_OPEN
    b.before_call()  # the one probe
    with pytest.raises(BreakerOpen):
        b.before_call()  # no second probe while the first is out
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert changes == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_a_failed_probe_opens_again() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(4):
        b.before_call()
        b.record(False)
    clock.now += 5
    b.before_call()
    b.record(False)
    assert b.state is BreakerState.OPEN
    clock.now += 4.9
    assert b.state is BreakerState.OPEN


def test_old_failures_leave_the_window() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(3):
        b.before_call()
        b.record(False)
    clock.now += 11
    for _ in range(3):
        b.before_call()
        b.record(True)
    b.before_call()
    b.record(False)
    assert b.state is BreakerState.CLOSED  # 1 failure of 4 in the window
