"""Counts API calls and applies the drawn fault before (or, for accept_then_drop, after) the real handler.

Pure ASGI rather than a Starlette BaseHTTPMiddleware: faults need the raw receive/send, and the raw connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cakemail_sandbox.connection import abort_connection, drain_body, send_json, wait_for_disconnect
from cakemail_sandbox.faults import FaultPlan, RouteName
from cakemail_sandbox.responses import status_error_code
from cakemail_sandbox.state import SandboxState

log = structlog.get_logger(__name__)

ROUTES: dict[tuple[str, str], RouteName] = {
    ("POST", "/v1/auth/validate"): "auth",
    ("POST", "/token"): "auth",
    ("POST", "/token/challenge"): "auth",
    ("POST", "/v1/emails"): "emails",
    ("POST", "/v2/emails"): "emails",
    ("GET", "/brands/default/senders"): "senders",
    ("GET", "/v2/logs/emails"): "logs",
    ("GET", "/v1/health"): "health",
}
EMAIL_BY_ID_PREFIX = "/v2/emails/"  # GET /v2/emails/{email_id}: the "logs" route


def route_of(method: str, path: str) -> RouteName | None:
    route = ROUTES.get((method, path))
    if route is None and method == "GET" and path.startswith(EMAIL_BY_ID_PREFIX) and "/" not in path[11:]:
        return "logs"
    return route


class FaultMiddleware:
    def __init__(self, app: ASGIApp, *, state: SandboxState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope.get("method", ""), scope.get("path", "")
        route = route_of(method, path) if scope["type"] == "http" else None
        if route is None:
            await self._app(scope, receive, send)
            return
        self._count(path)
        answered: list[int] = []

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(int(message["status"]))
            await send(message)

        try:
            plan = self._state.faults.draw(route)
            if plan is None:
                await self._app(scope, receive, observed_send)
                return
            log.info("fault.applied", route=route, **_describe(plan))
            self._state.metrics.faults.labels(route, _kind(plan)).inc()
            await self._apply(route, plan, scope, receive, observed_send)
        finally:
            self._state.metrics.requests.labels(route, str(answered[0]) if answered else "none").inc()

    def _count(self, path: str) -> None:
        stats = self._state.stats
        if path == "/v1/auth/validate":
            stats.auth_calls += 1
        elif path == "/v1/emails":
            stats.email_calls += 1
        elif path.startswith("/token"):
            stats.token_calls += 1
        elif path == "/v2/emails":
            stats.v2_email_calls += 1
        elif path == "/brands/default/senders":
            stats.senders_calls += 1
        elif path != "/v1/health":
            stats.logs_calls += 1

    async def _apply(self, route: RouteName, plan: FaultPlan, scope: Scope, receive: Receive, send: Send) -> None:
        if plan.latency_seconds > 0:
            await asyncio.sleep(plan.latency_seconds)
        if plan.drop_connection:
            if await drain_body(receive):
                await abort_connection(receive, send)
            return
        if plan.hang:
            if await drain_body(receive):
                await self._hang(receive, send)
            return
        if plan.error_status is not None:
            await drain_body(receive)
            headers = {"Retry-After": str(plan.retry_after)} if plan.error_status == 429 else {}
            code, message = fault_error_code(route, plan.error_status), f"injected fault: HTTP {plan.error_status}"
            body: dict[str, Any] = {"error": code, "message": message}
            if not str(scope.get("path", "")).startswith("/v1/"):
                # The v2 API's error shape.
                body = {"detail": [{"msg": message, "type": code}]}
            await send_json(send, plan.error_status, body, headers)
            return
        if plan.accept_then_drop:
            await self._accept_then_drop(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _hang(self, receive: Receive, send: Send) -> None:
        """No answer until the client leaves, the server stops, or hang_max_seconds pass (then the line is cut)."""
        client_left = asyncio.ensure_future(wait_for_disconnect(receive))
        stopping = asyncio.ensure_future(self._state.stopping.wait())
        try:
            done, _ = await asyncio.wait(
                {client_left, stopping},
                timeout=self._state.settings.hang_max_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in (client_left, stopping):
                waiter.cancel()
        if client_left not in done:
            log.info("fault.hang_ended", reason="stopping" if stopping in done else "hang_max_seconds")
            await abort_connection(receive, send)

    async def _accept_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The handler runs (and records) normally; its response is thrown away and the connection cut."""
        status: list[int] = []

        async def swallow(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))

        await self._app(scope, receive, swallow)
        log.info("fault.response_dropped", status=status[0] if status else None)
        await abort_connection(receive, send)


def fault_error_code(route: RouteName, status: int) -> str:
    """The `error` field of an injected error, shaped like the API's own errors."""
    if status == 429:
        return "rate_limited"
    if status == 401:
        return "invalid_credentials" if route == "auth" else "invalid_token"
    return status_error_code(status)


def _kind(plan: FaultPlan) -> str:
    if plan.drop_connection:
        return "drop_connection"
    if plan.hang:
        return "hang"
    if plan.error_status is not None:
        return f"error_{plan.error_status}"
    if plan.accept_then_drop:
        return "accept_then_drop"
    return "latency"


def _describe(plan: FaultPlan) -> dict[str, object]:
    return {
        "latency_ms": round(plan.latency_seconds * 1000),
        "drop_connection": plan.drop_connection,
        "hang": plan.hang,
        "error_status": plan.error_status,
        "accept_then_drop": plan.accept_then_drop,
    }
