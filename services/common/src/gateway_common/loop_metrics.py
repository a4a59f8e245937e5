"""`asyncio_tasks`: how many asyncio tasks are alive in the process, read at scrape time. Under steady load the count
stays flat; one that keeps climbing is a task leak (`make soak` watches it, docs/performance.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class EventLoopCollector(Collector):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "asyncio_tasks", "asyncio tasks alive in this process", len(asyncio.all_tasks(self._loop))
        )


def watch_event_loop(registry: CollectorRegistry = REGISTRY) -> None:
    """Call from inside the service's running loop."""
    registry.register(EventLoopCollector(asyncio.get_running_loop()))
