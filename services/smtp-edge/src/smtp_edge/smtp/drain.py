"""Graceful shutdown: the open sessions of one edge, drained so no accepted DATA is cut off and no client hears
an error for mail that was delivered."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from smtp_edge.smtp import replies

SHUTTING_DOWN = replies.SHUTTING_DOWN
# How long a draining session may still send its QUIT (answered 221) before it is told 421: a client that just got
# its 250 says QUIT within a round trip, and Python's `with smtplib.SMTP(...)` raises on any QUIT reply but 221.
DRAIN_LINGER_SECONDS = 2.0


class Session(Protocol):
    in_transaction: bool

    def close_soon(self) -> None: ...

    async def say_goodbye(self, reply: str) -> None: ...


class LiveSessions:
    """The open connections of one edge, so a shutdown can drain them: every session may still QUIT cleanly, any
    other command gets a 421; a transaction in flight finishes first (its reply is sent), then the same applies."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self._busy = 0
        self._none_left = asyncio.Event()
        self._none_left.set()
        self.draining = False

    def add(self, session: Session) -> None:
        self._sessions.add(session)
        self._none_left.clear()
        if self.draining:  # accepted just before the listeners closed
            session.close_soon()

    def discard(self, session: Session) -> None:
        self._sessions.discard(session)
        if not self._sessions:
            self._none_left.set()

    def __len__(self) -> int:
        return len(self._sessions)

    def transaction_started(self) -> None:
        self._busy += 1

    def transaction_ended(self) -> None:
        self._busy -= 1

    async def drain(self, grace_seconds: float) -> int:
        """Waits (up to the grace period) for every session to end: idle ones within DRAIN_LINGER_SECONDS, busy ones
        after their transaction. Then closes the rest. Returns how many transactions were still running when the
        grace period ran out."""
        self.draining = True
        for session in [s for s in self._sessions if not s.in_transaction]:
            session.close_soon()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_left.wait(), grace_seconds)
        cut_off = self._busy
        for session in list(self._sessions):
            await session.say_goodbye(SHUTTING_DOWN)
        return cut_off
