"""EVENT_LOOP picks the loop a service runs on: uvloop by default, asyncio's own for an A/B."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from forwarder.config import ForwarderSettings
from gateway_common import event_loop
from smtp_edge.config import EdgeSettings


@pytest.mark.parametrize(("name", "expected"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_the_service_runs_on_the_loop_it_was_told(name: event_loop.EventLoop, expected: type) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    event_loop.run(main(), name)
    assert isinstance(seen[0], expected)
    assert isinstance(seen[0], uvloop.Loop) == (name == "uvloop")


def test_both_services_default_to_uvloop_and_read_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ForwarderSettings().event_loop == EdgeSettings().event_loop == "uvloop"
    monkeypatch.setenv("EVENT_LOOP", "asyncio")
    assert ForwarderSettings().event_loop == EdgeSettings().event_loop == "asyncio"
