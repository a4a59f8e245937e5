"""Each account's senders, fetched once (all pages) and kept for a while: most messages cost no sender lookup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cachetools import TTLCache

from forwarder.api.v2.wire import Sender

SendersFetcher = Callable[[], Coroutine[Any, Any, tuple[Sender, ...]]]


class SenderDirectory:
    def __init__(self, *, ttl_seconds: float, max_entries: int, timer: Callable[[], float] = time.monotonic) -> None:
        self._entries: TTLCache[str, tuple[Sender, ...]] = TTLCache(max_entries, ttl_seconds, timer=timer)
        self._inflight: dict[str, asyncio.Task[tuple[Sender, ...]]] = {}

    async def senders(self, account_id: str, fetch: SendersFetcher) -> tuple[Sender, ...]:
        """The account's senders; one fetch however many callers ask at the same moment; failures never cached."""
        cached = self._entries.get(account_id)
        if cached is not None:
            return cached
        task = self._inflight.get(account_id)
        if task is None:
            task = asyncio.create_task(fetch())
            self._inflight[account_id] = task
            task.add_done_callback(lambda done: self._settle(account_id, done))
        return await asyncio.shield(task)

    def _settle(self, account_id: str, task: asyncio.Task[tuple[Sender, ...]]) -> None:
        self._inflight.pop(account_id, None)
        if not task.cancelled() and task.exception() is None:
            self._entries[account_id] = task.result()

    def forget(self, account_id: str) -> None:
        """Drop an account's senders: a sender the cache calls unknown may have been confirmed since."""
        self._entries.pop(account_id, None)
