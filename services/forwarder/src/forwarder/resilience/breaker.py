"""A circuit breaker for the API host: when most recent calls fail, fail fast for a while instead of making
every SMTP client wait for a timeout; then let a few probes through and close again on success.

The sliding window is kept as counts per time bucket (`BreakerSettings.buckets` of them), not as one entry per call:
`record` runs on every API call, and scanning a per-call window cost O(calls in the window) each time (at 1,000
calls/s and a 30 s window, 30,000 entries per call). With buckets, `record` does O(1) work and memory is bounded by
the bucket count. The price is granularity: an outcome leaves the window between (buckets - 1) and `buckets` bucket
widths after it was recorded (27-30 s with the defaults), instead of exactly `window_seconds` after.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class BreakerOpen(Exception):
    """The API is considered down; the call was not made."""


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    window_seconds: float = 30.0
    min_requests: int = 10
    failure_ratio: float = 0.5
    open_seconds: float = 15.0
    half_open_probes: int = 2
    buckets: int = 10


StateListener = Callable[[BreakerState, BreakerState], None]


@dataclass(slots=True)
class _Bucket:
    index: int  # which bucket-width slice of the clock this counts (clock // width)
    calls: int = 0
    failures: int = 0


@dataclass(slots=True)
class _Window:
    """Call and failure counts over the last `buckets` bucket widths, with running totals."""

    width: float
    buckets: int
    slices: deque[_Bucket] = field(default_factory=deque)
    calls: int = 0
    failures: int = 0

    def add(self, now: float, success: bool) -> None:
        index = int(now // self.width)
        self.expire(index)
        if not self.slices or self.slices[-1].index < index:  # (a clock that steps back counts in the newest)
            self.slices.append(_Bucket(index))
        bucket = self.slices[-1]
        bucket.calls += 1
        self.calls += 1
        if not success:
            bucket.failures += 1
            self.failures += 1

    def expire(self, index: int) -> None:
        # At most `buckets` slices are ever held, each appended once and dropped once: O(1) amortised per call.
        while self.slices and self.slices[0].index <= index - self.buckets:
            old = self.slices.popleft()
            self.calls -= old.calls
            self.failures -= old.failures

    def clear(self) -> None:
        self.slices.clear()
        self.calls = self.failures = 0


class CircuitBreaker:
    def __init__(
        self,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener = lambda *_: None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._window = _Window(width=settings.window_seconds / settings.buckets, buckets=settings.buckets)
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probes_in_flight = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._settings.open_seconds:
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        if new is not BreakerState.HALF_OPEN:
            self._probes_in_flight = 0
        if new is BreakerState.CLOSED:
            self._window.clear()
        if old is not new:
            self._on_change(old, new)

    def before_call(self) -> None:
        """Raises BreakerOpen when the call must not be made; otherwise the caller must record its outcome."""
        state = self.state
        if state is BreakerState.OPEN:
            raise BreakerOpen("Cakemail API circuit is open")
        if state is BreakerState.HALF_OPEN:
            if self._probes_in_flight >= self._settings.half_open_probes:
                raise BreakerOpen("Cakemail API circuit is half-open; probes in flight")
            self._probes_in_flight += 1

    def record(self, success: bool) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._move(BreakerState.CLOSED if success else BreakerState.OPEN)
            return
        if self._state is BreakerState.OPEN:
            return  # a call that started before the breaker opened
        window = self._window
        window.add(self._clock(), success)
        if (
            window.calls >= self._settings.min_requests
            and window.failures / window.calls >= self._settings.failure_ratio
        ):
            self._move(BreakerState.OPEN)

    @property
    def window_counts(self) -> tuple[int, int]:
        """(calls, failures) currently in the sliding window."""
        return self._window.calls, self._window.failures
