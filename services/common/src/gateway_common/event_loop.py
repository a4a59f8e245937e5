"""The event loop each service runs on: uvloop (libuv, in C) by default, asyncio's own for a same-run A/B
(`EVENT_LOOP`, docs/configuration.md; figures in docs/performance.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal

import uvloop

EventLoop = Literal["uvloop", "asyncio"]


def run(main: Coroutine[Any, Any, None], loop: EventLoop) -> None:
    # TLS, STARTTLS and grpc.aio run on either unchanged (tests/e2e/test_event_loop.py).
    if loop == "asyncio":
        asyncio.run(main)
    else:
        uvloop.run(main)
