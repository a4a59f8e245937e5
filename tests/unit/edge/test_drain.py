"""The drain's bookkeeping with stand-in sessions (the e2e tests drive it through a real SIGTERM)."""

from __future__ import annotations

import asyncio

from smtp_edge.smtp.drain import SHUTTING_DOWN, LiveSessions


class FakeSession:
    def __init__(self, live: LiveSessions, *, in_transaction: bool = False) -> None:
        self.live = live
        self.in_transaction = in_transaction
        self.told: list[str] = []
        self.closing_soon = False
        live.add(self)

    def close_soon(self) -> None:
        self.closing_soon = True

    async def say_goodbye(self, reply: str) -> None:
        self.told.append(reply)
        self.live.discard(self)


async def test_idle_sessions_may_still_quit_and_the_drain_ends_when_they_are_gone() -> None:
    live = LiveSessions()
    idle = FakeSession(live)
    busy = FakeSession(live, in_transaction=True)
    live.transaction_started()
    drain = asyncio.create_task(live.drain(grace_seconds=5))
    await asyncio.sleep(0.01)
    assert (idle.closing_soon, busy.closing_soon) == (True, False)  # the busy one finishes its transaction first
    assert not drain.done()
    live.discard(idle)  # it said QUIT
    busy.in_transaction = False
    live.transaction_ended()
    live.discard(busy)
    assert await drain == 0
    assert idle.told == busy.told == []  # nobody had to be cut off


async def test_the_grace_period_cuts_off_what_is_left() -> None:
    live = LiveSessions()
    busy = FakeSession(live, in_transaction=True)
    live.transaction_started()
    assert await live.drain(grace_seconds=0.05) == 1
    assert busy.told == [SHUTTING_DOWN]
    late = FakeSession(live)  # accepted just before the listeners closed
    assert late.closing_soon
