"""Graceful shutdown: the open sessions of one edge, drained so no accepted DATA is cut off."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


class Session(Protocol):
    in_transaction: bool

    async def say_goodbye(self, reply: str) -> None: ...


class LiveSessions:
    """The open connections of one edge, so a shutdown can drain them: idle ones are told goodbye at once,
    busy ones as soon as their transaction's reply has been sent."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self._busy = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.draining = False

    def add(self, session: Session) -> None:
        self._sessions.add(session)

    def discard(self, session: Session) -> None:
        self._sessions.discard(session)

    def __len__(self) -> int:
        return len(self._sessions)

    def transaction_started(self) -> None:
        self._busy += 1
        self._quiet.clear()

    def transaction_ended(self) -> None:
        self._busy -= 1
        if not self._busy:
            self._quiet.set()

    async def drain(self, grace_seconds: float) -> int:
        """Waits for transactions in flight (up to the grace period), then closes every session.
        Returns how many transactions were still running when the grace period ran out."""
        self.draining = True
        for session in [s for s in self._sessions if not s.in_transaction]:
            await session.say_goodbye(SHUTTING_DOWN)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), grace_seconds)
        cut_off = self._busy
        for session in list(self._sessions):
            await session.say_goodbye(SHUTTING_DOWN)
        return cut_off
