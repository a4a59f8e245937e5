"""The ops HTTP server inside a service's loop: a busy port is an exception naming it, never a process exit."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Iterator

import pytest
import uvicorn

from gateway_common.lifecycle import EXIT_CANNOT_START, serve_until_signalled
from gateway_common.ops_http import OpsServer, PortUnavailable, create_ops_app, start_guarded


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield int(holder.getsockname()[1])
    holder.close()


async def _ready() -> bool:
    return True


async def test_a_busy_port_raises_port_unavailable_naming_it(busy_port: int) -> None:
    server = OpsServer(create_ops_app(_ready), "127.0.0.1", busy_port, service="unit-service")
    with pytest.raises(PortUnavailable) as refused:
        await server.start()
    assert str(refused.value) == (
        f"unit-service HTTP (health, metrics) cannot listen on 127.0.0.1:{busy_port}: address already in use"
    )
    assert refused.value.port == busy_port
    await server.stop()  # nothing left running to stop


async def test_a_free_port_serves_and_stops() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = OpsServer(create_ops_app(_ready), "127.0.0.1", port)
    await server.start()
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready").read())
    assert body == b'{"status":"ready"}'
    await server.stop()


async def test_start_guarded_works_for_any_uvicorn_server(busy_port: int) -> None:
    """What the sandbox's server can call: the same guard around its own uvicorn.Server."""
    config = uvicorn.Config(create_ops_app(_ready), host="127.0.0.1", port=busy_port, log_config=None, lifespan="off")
    with pytest.raises(PortUnavailable, match=f"sandbox cannot listen on 127.0.0.1:{busy_port}"):
        await start_guarded(uvicorn.Server(config), "sandbox")


class _FailingService:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.stopped = False

    async def start(self) -> None:
        raise self.error

    async def stop(self) -> None:
        self.stopped = True


async def test_a_service_that_cannot_bind_exits_with_a_status_after_closing_what_started() -> None:
    service = _FailingService(PortUnavailable("svc HTTP", "127.0.0.1", 8080, "address already in use"))
    with pytest.raises(SystemExit) as exited:
        await serve_until_signalled(service)
    assert exited.value.code == EXIT_CANNOT_START
    assert service.stopped


async def test_other_startup_errors_propagate_unchanged() -> None:
    service = _FailingService(FileNotFoundError(2, "No such file", "cert.pem"))
    with pytest.raises(FileNotFoundError):
        await serve_until_signalled(service)
