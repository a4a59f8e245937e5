"""Bounded in-flight API calls: when full, fail fast instead of queueing without bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from forwarder.metrics import ForwarderMetrics


class Saturated(Exception):
    """Every slot is taken; the caller should try again shortly."""


class Bulkhead:
    def __init__(self, limit: int, metrics: ForwarderMetrics, *, queue_wait_seconds: float = 0.05) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._queue_wait = queue_wait_seconds
        self._metrics = metrics

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self._queue_wait)
            except TimeoutError:
                raise Saturated("too many Cakemail API calls in flight") from None
        else:
            # A free slot: taken without wait_for's task and timer (once per API call, one call per recipient).
            await self._slots.acquire()
        self._metrics.inflight_api_calls.inc()
        try:
            yield
        finally:
            self._metrics.inflight_api_calls.dec()
            self._slots.release()
