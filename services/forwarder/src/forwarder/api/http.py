"""The HTTP transport both flavors share: one pooled aiohttp session, per-call timeouts bounded by the deadline,
and the one distinction every flavor needs from a transport failure: did the request leave or not.

aiohttp rather than httpx: a same-run A/B (docs/performance.md) measured httpx's client and connection pool at
~2.2 ms of CPU per API call at 20 calls in flight, httpx over an aiohttp transport at ~0.7 ms and aiohttp alone at
~0.2 ms; one API call per recipient is most of the forwarder's work, so the pool is kept behind this one module.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import certifi

from forwarder.api.context import CallContext
from forwarder.api.errors import ApiDeadlineExceeded, ApiUnavailable
from gateway_common import tracing
from gateway_common.correlation import HTTP_HEADER as REQUEST_ID_HEADER

# The HTTP status of the last answer in this task, for resilience/'s metrics (None: no answer). A context variable,
# so that each flavor's client needs no change to report it.
LAST_STATUS: ContextVar[int | None] = ContextVar("last_api_status", default=None)

# The request never reached the API: always safe to repeat. (ConnectionTimeoutError: no connection within the
# connect timeout, waiting for a free pooled connection included.)
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL)
# Anything else once the request may have left (written in part or whole, answer lost or unreadable).
_LOST = (aiohttp.ClientError, TimeoutError)

USER_AGENT = "cakemail-smtp-gateway/0.2"
# How long an idle pooled connection may be reused (config: CAKEMAIL_API_KEEPALIVE_SECONDS).
KEEPALIVE_SECONDS = 4.0


def _compact_json(value: Any) -> str:
    """JSON bodies as httpx wrote them: compact, UTF-8 as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def trust_store() -> ssl.SSLContext:
    """The system's CAs (and SSL_CERT_FILE / SSL_CERT_DIR, which OpenSSL reads) plus certifi's bundle, which is what
    httpx trusted before: a host whose OS store lacks a public CA still reaches the API."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """An answer, read whole (API answers are small JSON documents)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes
    path: str

    def json(self) -> Any:
        """Raises ValueError when the body is not JSON."""
        return json.loads(self.content)


class HttpTransport:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._keepalive = keepalive
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.ssl_context = trust_store()
        # Observers of every request (tests, instrumentation); read when the session is made, on the first call.
        self.trace_configs: list[aiohttp.TraceConfig] = []

    @classmethod
    def create(
        cls,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> HttpTransport:
        return cls(
            base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            keepalive=keepalive,
        )

    def _open(self) -> aiohttp.ClientSession:
        # Made on the first call: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=0,
                    ssl=self.ssl_context,
                    keepalive_timeout=self._keepalive,
                ),
                headers={"User-Agent": USER_AGENT},
                trace_configs=self.trace_configs or None,
                json_serialize=_compact_json,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def timeout_for(self, ctx: CallContext) -> aiohttp.ClientTimeout:
        """What is left of the deadline for each phase (waiting for a pooled connection and connecting, reading),
        with the configured connect timeout (never more than what is left); the configured timeout without one."""
        remaining = ctx.remaining()
        each = self._timeout if remaining is None else max(remaining, 0.001)
        return aiohttp.ClientTimeout(
            total=None, connect=each, sock_connect=min(each, self._connect_timeout), sock_read=each
        )

    async def request(
        self,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        retry_lost_answers: bool,
        headers: dict[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
    ) -> ApiResponse:
        """Raises ApiUnavailable for a transport failure; `retry_lost_answers` says whether the call is idempotent,
        so that a request whose answer was lost may be repeated (otherwise it is reported as ambiguous).
        `json`, `data` (a form) or `content` (bytes, or streamed with the caller's Content-Length) is the body."""
        all_headers = {REQUEST_ID_HEADER: ctx.request_id, **(headers or {})}
        tracing.inject(all_headers)  # traceparent, when tracing is on
        LAST_STATUS.set(None)
        remaining = ctx.remaining()
        deadline_bound = remaining is not None and remaining < self._timeout
        try:
            async with self._open().request(
                method,
                self._base_url + path,
                headers=all_headers,
                params=params,
                json=json,
                data=content if content is not None else data,
                timeout=self.timeout_for(ctx),
                allow_redirects=False,
            ) as response:
                body = await response.read()
        except _NOT_SENT as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}", retryable=True) from exc
        except _LOST as exc:
            # A read timeout set from what was left of the deadline (timers may fire a millisecond early, so the
            # clock is not asked again) means the deadline ran out.
            if isinstance(exc, TimeoutError) and deadline_bound:
                raise ApiDeadlineExceeded(
                    f"{path}: deadline passed", retryable=False, ambiguous=not retry_lost_answers
                ) from exc
            raise ApiUnavailable(
                f"{path}: {type(exc).__name__}", retryable=retry_lost_answers, ambiguous=not retry_lost_answers
            ) from exc
        LAST_STATUS.set(response.status)
        return ApiResponse(response.status, response.headers, body, path)


def json_body(response: ApiResponse) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ApiUnavailable(f"non-JSON response from {response.path}") from exc


def parse_retry_after(value: str | None, default: float = 1.0) -> float:
    """Retry-After as seconds; the HTTP-date form is rare for APIs and taken as the default."""
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default
    return max(0.0, seconds)
