"""The bulkhead: a free slot is taken at once, a full bulkhead fails fast after the queue wait, a slot freed within
the wait goes to the caller who was waiting (before a newcomer), and the in-flight gauge follows."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.bulkhead import Bulkhead, Saturated


def _inflight(metrics: ForwarderMetrics) -> float:
    return metrics.inflight_api_calls._value.get()  # type: ignore[attr-defined]


async def test_full_bulkhead_fails_fast_and_slots_come_back() -> None:
    metrics = ForwarderMetrics(CollectorRegistry())
    bulkhead = Bulkhead(2, metrics, queue_wait_seconds=0.01)
    async with bulkhead.slot(), bulkhead.slot():
        assert _inflight(metrics) == 2
        with pytest.raises(Saturated):
            async with bulkhead.slot():
                pytest.fail("a third slot was handed out")
    assert _inflight(metrics) == 0
    async with bulkhead.slot(), bulkhead.slot():
        assert _inflight(metrics) == 2


async def test_a_slot_freed_during_the_wait_goes_to_the_waiter_not_to_a_newcomer() -> None:
    metrics = ForwarderMetrics(CollectorRegistry())
    bulkhead = Bulkhead(1, metrics, queue_wait_seconds=5.0)
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with bulkhead.slot():
            order.append("holder")
            await release.wait()

    async def user(name: str) -> None:
        async with bulkhead.slot():
            order.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(user("waiter"))
    await asyncio.sleep(0.01)  # the waiter is queued on the full bulkhead
    release.set()
    await first
    # The slot is free again but the waiter has not run yet: a newcomer must queue behind it.
    newcomer = asyncio.create_task(user("newcomer"))
    await asyncio.gather(waiter, newcomer)
    assert order == ["holder", "waiter", "newcomer"]
