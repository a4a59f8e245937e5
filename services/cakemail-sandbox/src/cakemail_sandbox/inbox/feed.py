"""The inbox's changes, fanned out to each open event stream of the web inbox (server-sent events)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from cakemail_sandbox.store import Inbox, Record

MAX_PENDING = 256


class Overflow:
    """A subscriber fell behind: it gets a fresh full list instead of the changes it missed."""


OVERFLOW: Final = Overflow()
Change = Record | None | Overflow  # a record added, the inbox cleared (None), or OVERFLOW


@dataclass(eq=False, slots=True)
class Subscription:
    queue: asyncio.Queue[Change] = field(default_factory=lambda: asyncio.Queue(MAX_PENDING))
    overflowed: bool = False

    def push(self, change: Record | None) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            # Bounded memory for a stalled reader: drop what is pending, ask for a resync.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)

    async def next(self) -> Change:
        change = await self.queue.get()
        if change is OVERFLOW:
            self.overflowed = False
        return change


class InboxFeed:
    def __init__(self, inbox: Inbox) -> None:
        self._subscribers: set[Subscription] = set()
        inbox.listen(self._heard)

    def _heard(self, change: Record | None) -> None:
        for subscriber in self._subscribers:
            subscriber.push(change)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
