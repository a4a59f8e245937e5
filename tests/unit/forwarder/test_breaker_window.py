"""The breaker's bucketed window: the same decisions as counting every call in the window (with times rounded to
bucket boundaries), in constant memory whatever the call rate."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.resilience.breaker import BreakerSettings, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


SETTINGS = BreakerSettings(window_seconds=10, min_requests=4, failure_ratio=0.5, open_seconds=5, buckets=10)


def reference_counts(history: list[tuple[float, bool]], now: float) -> tuple[int, int]:
    """Every call whose 1-second bucket is one of the last 10 at `now`: the per-call scan the buckets replace."""
    current = int(now // 1.0)
    kept = [ok for at, ok in history if int(at // 1.0) > current - 10]
    return len(kept), sum(1 for ok in kept if not ok)


steps = st.lists(st.tuples(st.floats(min_value=0, max_value=4, allow_nan=False), st.booleans()), max_size=200)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_bucketed_counts_match_a_scan_of_every_call(calls: list[tuple[float, bool]]) -> None:
    clock = Clock()
    # A breaker that never opens (min_requests out of reach), so every outcome lands in the window.
    b = CircuitBreaker(BreakerSettings(window_seconds=10, min_requests=10**9, buckets=10), clock=clock)
    history: list[tuple[float, bool]] = []
    for advance, ok in calls:
        clock.now += advance
        b.record(ok)
        history.append((clock.now, ok))
        assert b.window_counts == reference_counts(history, clock.now)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_opens_exactly_when_the_reference_window_says_so(calls: list[tuple[float, bool]]) -> None:
    clock = Clock()
    b = CircuitBreaker(SETTINGS, clock=clock)
    history: list[tuple[float, bool]] = []
    for advance, ok in calls:
        clock.now += advance
        if b.state is not BreakerState.CLOSED:
            break
        b.before_call()
        b.record(ok)
        history.append((clock.now, ok))
        total, failures = reference_counts(history, clock.now)
        should_open = total >= SETTINGS.min_requests and failures / total >= SETTINGS.failure_ratio
        assert (b.state is BreakerState.OPEN) == should_open


def test_memory_is_bounded_by_the_bucket_count_not_the_call_rate() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerSettings(window_seconds=30, min_requests=10**9, buckets=10), clock=clock)
    for n in range(50_000):
        clock.now = n * 0.001  # 1,000 calls/s for 50 s
        b.record(n % 7 != 0)
    assert len(b._window.slices) <= 10
    calls, failures = b.window_counts
    assert 27_000 <= calls <= 30_000  # the last 27-30 s of calls, nothing older
    assert failures == sum(1 for n in range(50_000 - calls, 50_000) if n % 7 == 0)


def test_closing_forgets_the_window() -> None:
    clock = Clock()
    b = CircuitBreaker(SETTINGS, clock=clock)
    for _ in range(4):
        b.before_call()
        b.record(False)
    assert b.state is BreakerState.OPEN
    clock.now += 5
    b.before_call()
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert b.window_counts == (0, 0)
