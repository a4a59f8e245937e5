"""The HTTP side every service exposes to Kubernetes and Prometheus: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]


class PortUnavailable(RuntimeError):
    """A server could not listen where it was told to (most often: another process holds the port)."""

    def __init__(self, what: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"{what} cannot listen on {host}:{port}: {reason}")
        self.what = what
        self.host = host
        self.port = port


def create_ops_app(readiness: ReadinessCheck, registry: CollectorRegistry = REGISTRY) -> FastAPI:
    """`readiness` says whether this process can take work now (started, not draining). It never follows a
    dependency's health: during an outage clients must still connect and hear a 4xx (docs/deployment.md)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready(response: Response) -> dict[str, str]:
        if await readiness():
            return {"status": "ready"}
        response.status_code = 503
        return {"status": "not ready"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def serve_guarded(server: uvicorn.Server, what: str) -> None:
    """`server.serve()` for a uvicorn embedded in a service's event loop.

    uvicorn answers a bind failure by logging it and calling sys.exit; in a task that SystemExit escapes the event
    loop and ends the whole process with uvicorn's bare status, skipping the service's own cleanup. Here it becomes
    PortUnavailable, naming the address, for the caller to handle like any other startup error.
    """
    try:
        await server.serve()
    except SystemExit as exc:
        # uvicorn calls sys.exit inside its `except OSError`, so the OSError is the SystemExit's context.
        cause = exc.__context__
        reason = _bind_reason(cause) if isinstance(cause, OSError) else f"HTTP server exited with status {exc.code}"
        raise PortUnavailable(what, server.config.host, server.config.port, reason) from None


async def start_guarded(server: uvicorn.Server, what: str, timeout: float = 10.0) -> asyncio.Task[None]:
    """Serves `server` in a task and returns the task once the socket listens.

    Raises PortUnavailable when it cannot listen (`what` names the server in the message, e.g. "smtp-edge HTTP
    (health, metrics)"), TimeoutError when it has not started within `timeout`; either way no task is left behind.
    The caller stops the server with `server.should_exit = True` and then awaits the task.
    """
    task = asyncio.create_task(serve_guarded(server, what), name=what)
    try:
        async with asyncio.timeout(timeout):
            while not server.started:
                if task.done():
                    task.result()  # PortUnavailable
                    raise RuntimeError(f"{what} stopped before it started")
                await asyncio.sleep(0.005)
    except BaseException:
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        raise
    return task


def _bind_reason(error: OSError) -> str:
    return os.strerror(error.errno).lower() if error.errno else str(error)


class _EmbeddedServer(uvicorn.Server):
    """The service handles SIGTERM itself (graceful drain): uvicorn must not take the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OpsServer:
    """uvicorn inside the service's own event loop, so one process serves both its protocol and ops HTTP."""

    def __init__(self, app: FastAPI, host: str, port: int, *, service: str = "ops") -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
        self._server = _EmbeddedServer(config)
        self._what = f"{service} HTTP (health, metrics)"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = await start_guarded(self._server, self._what)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
