"""The HTTP transport both flavors share: one pooled httpx client, per-call timeouts bounded by the deadline,
and the one distinction every flavor needs from a transport failure: did the request leave or not."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import httpx

from forwarder.api.context import CallContext
from forwarder.api.errors import ApiUnavailable
from gateway_common import tracing
from gateway_common.correlation import HTTP_HEADER as REQUEST_ID_HEADER

# The HTTP status of the last answer in this task, for resilience/'s metrics (None: no answer). A context variable,
# so that each flavor's client needs no change to report it.
LAST_STATUS: ContextVar[int | None] = ContextVar("last_api_status", default=None)

# The request never reached the API: always safe to repeat.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError)


class HttpTransport:
    def __init__(self, http: httpx.AsyncClient, *, connect_timeout: float) -> None:
        self.http = http
        self._connect_timeout = connect_timeout

    @classmethod
    def create(cls, base_url: str, *, timeout: float, connect_timeout: float, max_connections: int) -> HttpTransport:
        http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "cakemail-smtp-gateway/0.2"},
        )
        return cls(http, connect_timeout=connect_timeout)

    async def aclose(self) -> None:
        await self.http.aclose()

    def timeout_for(self, ctx: CallContext) -> httpx.Timeout | None:
        """What is left of the deadline, with the configured connect timeout (never more than what is left)."""
        remaining = ctx.remaining()
        if remaining is None:
            return None
        remaining = max(remaining, 0.001)
        return httpx.Timeout(remaining, connect=min(remaining, self._connect_timeout))

    async def request(
        self,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        retry_lost_answers: bool,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Raises ApiUnavailable for a transport failure; `retry_lost_answers` says whether the call is idempotent,
        so that a request whose answer was lost may be repeated (otherwise it is reported as ambiguous)."""
        all_headers = {REQUEST_ID_HEADER: ctx.request_id, **(headers or {})}
        tracing.inject(all_headers)  # traceparent, when tracing is on
        timeout = self.timeout_for(ctx)
        if timeout is not None:
            kwargs["timeout"] = timeout
        LAST_STATUS.set(None)
        try:
            response = await self.http.request(method, path, headers=all_headers, **kwargs)
            LAST_STATUS.set(response.status_code)
            return response
        except _NOT_SENT as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}", retryable=True) from exc
        except httpx.TransportError as exc:
            raise ApiUnavailable(
                f"{path}: {type(exc).__name__}", retryable=retry_lost_answers, ambiguous=not retry_lost_answers
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}") from exc


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ApiUnavailable(f"non-JSON response from {response.request.url.path}") from exc


def parse_retry_after(value: str | None, default: float = 1.0) -> float:
    """Retry-After as seconds; the HTTP-date form is rare for APIs and taken as the default."""
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default
    return max(0.0, seconds)
