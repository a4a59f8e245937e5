"""Fixtures that run the REAL sandbox (uvicorn on a free loopback port) and talk HTTP to it.

Two ways, both reusable elsewhere:
- `sandbox_url`: one sandbox per test session on its own thread and event loop, reset (POST /sandbox/reset)
  before each test. Cheap, so most tests use it; its limits are small so 413s need no huge bodies.
- `start_sandbox(settings, rng=..., clock=...)`: a private sandbox inside the test's own event loop, for tests that
  need other settings, a seeded RNG or a fake clock; stopped at the end of the test.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from cakemail_sandbox.app import create_app
from cakemail_sandbox.config import SandboxSettings
from cakemail_sandbox.schemas import OpenApiContract
from cakemail_sandbox.server import SandboxServer

DEMO_CREDENTIALS = {"username": "demo@example.com", "password": "demo-password"}
# The v2 counters of GET /sandbox/stats, for tests of the v1 routes that compare the whole answer.
NO_V2_CALLS = {"token_calls": 0, "senders_calls": 0, "v2_email_calls": 0, "logs_calls": 0}
SHARED_LIMITS = {"max_request_bytes": 64 * 1024, "max_attachment_bytes": 1024}


def make_settings(**overrides: Any) -> SandboxSettings:
    """Loopback, a free port, no faults: whatever SANDBOX_* the developer's shell happens to export."""
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "faults": {}, "shutdown_grace_seconds": 1}
    return SandboxSettings(**{**values, **overrides})


class FakeClock:
    """Monotonic time the test moves by hand (token expiry, idempotency TTL)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class BackgroundSandbox:
    """A SandboxServer on its own event loop in a daemon thread, so it outlives each test's loop."""

    def __init__(self, settings: SandboxSettings) -> None:
        self._settings = settings
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True, name="sandbox")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.base_url = ""

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with SandboxServer(self._settings) as server:
                self.base_url = server.base_url
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("sandbox did not start in time")
        if self._error is not None:
            raise RuntimeError("sandbox failed to start") from self._error

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "sandbox thread did not stop"


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[BackgroundSandbox]:
    sandbox = BackgroundSandbox(make_settings(**SHARED_LIMITS, hang_max_seconds=10))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox_url(shared_sandbox: BackgroundSandbox) -> str:
    response = httpx.post(shared_sandbox.base_url + "/sandbox/reset", timeout=5)
    assert response.status_code == 204
    return shared_sandbox.base_url


@pytest.fixture
async def client(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=5) as http:
        yield http


async def login(http: httpx.AsyncClient, credentials: dict[str, str] = DEMO_CREDENTIALS) -> str:
    response = await http.post("/v1/auth/validate", json=credentials)
    assert response.status_code == 200, response.text
    return str(response.json()["api_key"])


@pytest.fixture
async def api_key(client: httpx.AsyncClient) -> str:
    return await login(client)


StartSandbox = Callable[..., Awaitable[SandboxServer]]


@pytest.fixture
async def start_sandbox() -> AsyncIterator[StartSandbox]:
    started: list[SandboxServer] = []

    async def start(
        settings: SandboxSettings | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> SandboxServer:
        settings = settings or make_settings()
        clocks = {"clock": clock, "wall_clock": wall_clock}
        app = create_app(settings, rng=rng, **{name: value for name, value in clocks.items() if value is not None})
        server = SandboxServer(settings, app=app)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


def email_headers(api_key: str, idempotency_key: str | None = None, request_id: str = "req-1") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}", "X-Request-Id": request_id}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def valid_email(**changes: Any) -> dict[str, Any]:
    """A complete, valid POST /v1/emails body (what the forwarder sends), with `changes` applied on top."""
    payload: dict[str, Any] = {
        "from": {"email": "ann@example.com", "name": "Ann"},
        "envelope_from": "bounces@example.com",
        "to": [{"email": "bob@example.net", "name": "Bob"}],
        "cc": [],
        "bcc": [],
        "subject": "Hello",
        "text_body": "Hi Bob\n",
        "html_body": "<p>Hi Bob</p>",
        "reply_to": {"email": "ann+reply@example.com", "name": ""},
        "headers": {"Message-ID": "<1@example.com>"},
        "attachments": [
            {
                "filename": "note.txt",
                "content": "aGVsbG8=",
                "content_type": "text/plain",
                "disposition": "attachment",
            }
        ],
    }
    payload.update(changes)
    return payload


async def recorded(http: httpx.AsyncClient, content: bool = True) -> list[dict[str, Any]]:
    response = await http.get("/sandbox/emails", params=None if content else {"content": "0"})
    assert response.status_code == 200
    return list(response.json()["emails"])


async def stats(http: httpx.AsyncClient) -> dict[str, int]:
    response = await http.get("/sandbox/stats")
    assert response.status_code == 200
    return dict(response.json())


# ---- the v2 API ----

MFA_CREDENTIALS = {"username": "mfa@example.com", "password": "mfa-password"}
DEMO_ACCOUNT_ID, DEMO_SECOND_ACCOUNT_ID = 1001, 1002
CONTRACT = OpenApiContract()


def conforms(component: str, body: Any) -> bool:
    """Whether an answer matches the real API's response schema `#/components/schemas/<component>`."""
    errors = CONTRACT.validate_body(component, body)
    assert errors == [], errors
    return True


async def v2_token(http: httpx.AsyncClient, credentials: dict[str, str] = DEMO_CREDENTIALS, **form: Any) -> str:
    response = await http.post("/token", data={**credentials, **form})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str, request_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return headers


async def sender_id(http: httpx.AsyncClient, token: str, email: str, account_id: int | None = None) -> str:
    """The id of a sender, found as a client would: through GET /brands/default/senders."""
    params: dict[str, Any] = {"per_page": 100}
    if account_id is not None:
        params["account_id"] = account_id
    response = await http.get("/brands/default/senders", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    [found] = [sender["id"] for sender in response.json()["data"] if sender["email"] == email]
    return str(found)


def valid_v2_email(sender: str, **changes: Any) -> dict[str, Any]:
    """A complete, valid POST /v2/emails body, with `changes` applied on top."""
    payload: dict[str, Any] = {
        "email": "bob@example.net",
        "sender": {"id": sender, "name": "Ann"},
        "content": {
            "subject": "Hello",
            "text": "Hi Bob\n",
            "html": "<p>Hi Bob</p>",
            "encoding": "utf-8",
            "type": "transactional",
        },
        "tags": ["welcome", "msg-1"],
        "tracking": {"opens": False, "clicks_html": True, "clicks_text": False},
        "additional_headers": [{"name": "Reply-To", "value": "ann+reply@example.com"}],
        "list_id": 7,
        "attachment": [
            {"filename": "report-2024.pdf", "type": "pdf", "content": "aGVsbG8="},
            {"filename": "invite.ics", "type": "calendar", "content": "QkVHSU46VkNBTEVOREFS"},
        ],
    }
    payload.update(changes)
    return payload


async def send_v2(
    http: httpx.AsyncClient, token: str, payload: dict[str, Any], account_id: int | None = None
) -> httpx.Response:
    params = {"account_id": account_id} if account_id is not None else None
    return await http.post("/v2/emails", json=payload, params=params, headers=bearer(token, "corr-v2"))


@pytest.fixture
async def token(client: httpx.AsyncClient) -> str:
    """A v2 access token of the demo user."""
    return await v2_token(client)


@pytest.fixture
async def ann(client: httpx.AsyncClient, token: str) -> str:
    """The id of the demo account's confirmed sender ann@example.com."""
    return await sender_id(client, token, "ann@example.com")
