"""The sandbox as one FastAPI app: API routes, control routes, the fault middleware, one error shape."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cakemail_sandbox.api import api_router
from cakemail_sandbox.api_v2 import api_v2_router
from cakemail_sandbox.config import SandboxSettings
from cakemail_sandbox.control import control_router
from cakemail_sandbox.inbox.routes import install_inbox
from cakemail_sandbox.middleware import FaultMiddleware
from cakemail_sandbox.responses import error_response, status_error_code
from cakemail_sandbox.state import SandboxState
from gateway_common.ops_http import create_ops_app


def create_app(
    settings: SandboxSettings | None = None,
    *,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> FastAPI:
    """A fresh sandbox with its own state. `rng` and the clocks are injectable so tests can be deterministic."""
    state = SandboxState.create(settings or SandboxSettings(), rng=rng, clock=clock, wall_clock=wall_clock)
    app = FastAPI(title="Cakemail API sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    app.include_router(api_router(state))
    app.include_router(api_v2_router(state))
    app.include_router(control_router(state))
    install_inbox(app, state)

    async def ready() -> bool:
        return not state.stopping.is_set()

    # /health/live, /health/ready, /metrics: the same ops endpoints as the edge and the forwarder.
    app.include_router(create_ops_app(ready, state.metrics.registry).router)
    app.add_middleware(FaultMiddleware, state=state)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for this class only
            raise exc
        return error_response(exc.status_code, status_error_code(exc.status_code), str(exc.detail), headers=exc.headers)

    async def parameter_error(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for this class only
            raise exc
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return error_response(400, "validation_error", str(first.get("msg", "invalid request")), field=field)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, parameter_error)
    return app


def sandbox_state(app: FastAPI) -> SandboxState:
    state = app.state.sandbox
    if not isinstance(state, SandboxState):
        raise TypeError("not an app made by create_app")
    return state
