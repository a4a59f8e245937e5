"""uvicorn around create_app, inside the caller's event loop: `python -m cakemail_sandbox` and tests use the same.

Port 0 binds a free port; `base_url` tells which. Signals are the caller's business (see `serve`), never
uvicorn's: uvicorn re-raises a captured SIGTERM after shutdown, which would turn a clean stop into exit -15.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import structlog
import uvicorn
from fastapi import FastAPI

from cakemail_sandbox.app import create_app, sandbox_state
from cakemail_sandbox.config import SandboxSettings
from gateway_common.lifecycle import EXIT_CANNOT_START
from gateway_common.ops_http import PortUnavailable, start_guarded

log = structlog.get_logger(__name__)


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._sandbox_app = app

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Release `hang` faults first, or shutdown would wait for them until its grace period runs out.
        sandbox_state(self._sandbox_app).stopping.set()
        await super().shutdown(sockets)


class SandboxServer:
    """One sandbox on host:port; `async with SandboxServer(settings) as server:` serves until the block ends."""

    def __init__(self, settings: SandboxSettings, *, app: FastAPI | None = None) -> None:
        self.settings = settings
        self.app = app if app is not None else create_app(settings)
        config = uvicorn.Config(
            self.app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
        self._server = _Uvicorn(config, self.app)
        self._task: asyncio.Task[None] | None = None
        self.port = settings.port

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self, timeout: float = 10.0) -> None:
        """Returns once the socket listens; raises PortUnavailable (naming the address) or TimeoutError."""
        self._task = await start_guarded(self._server, "cakemail-sandbox HTTP (API, health, metrics)", timeout)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        log.info("sandbox.started", url=self.base_url)

    async def wait(self) -> None:
        """Returns when the server stops (for whatever reason)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(settings: SandboxSettings) -> None:
    """Serves until SIGTERM or SIGINT (or cancellation), then stops cleanly: `python -m cakemail_sandbox`."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = (signal.SIGTERM, signal.SIGINT)
    server = SandboxServer(settings)
    try:
        await server.start()
    except PortUnavailable as exc:
        log.error("cannot start", reason=str(exc))
        raise SystemExit(EXIT_CANNOT_START) from None
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    waiters = [asyncio.ensure_future(server.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)
        log.info("sandbox.stopping")
        await server.stop()
