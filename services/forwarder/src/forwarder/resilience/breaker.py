"""A circuit breaker for the API host: when most recent calls fail, fail fast for a while instead of making
every SMTP client wait for a timeout; then let a few probes through and close again on success."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


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


StateListener = Callable[[BreakerState, BreakerState], None]


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
        self._outcomes: deque[tuple[float, bool]] = deque()
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
            self._outcomes.clear()
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
        now = self._clock()
        self._outcomes.append((now, success))
        while self._outcomes and self._outcomes[0][0] <= now - self._settings.window_seconds:
            self._outcomes.popleft()
        total = len(self._outcomes)
        failures = sum(1 for _, ok in self._outcomes if not ok)
        if total >= self._settings.min_requests and failures / total >= self._settings.failure_ratio:
            self._move(BreakerState.OPEN)
