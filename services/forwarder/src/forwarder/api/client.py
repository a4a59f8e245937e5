"""An httpx client for the Cakemail API: one pooled AsyncClient per process, typed results, typed errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from forwarder.api import wire
from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
)
from gateway_common.correlation import HTTP_HEADER as REQUEST_ID_HEADER

# Not sent (connect, pool) or answer lost (read, protocol): safe to repeat, as every call here is idempotent.
_RETRYABLE_TRANSPORT_ERRORS = (httpx.TransportError,)
_RETRYABLE_STATUSES = frozenset({502, 503, 504})


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class CakemailClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    def create(cls, base_url: str, *, timeout: float, connect_timeout: float, max_connections: int) -> CakemailClient:
        http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "cakemail-smtp-gateway/0.1"},
        )
        return cls(http)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def validate_credentials(
        self, username: str, password: str, *, request_id: str, timeout: float | None = None
    ) -> wire.ApiToken:
        response = await self._post(
            wire.AUTH_PATH,
            json=wire.credentials_payload(username, password),
            headers={REQUEST_ID_HEADER: request_id},
            timeout=timeout,
        )
        body = self._json(response)
        try:
            return wire.parse_token(body)
        except ValueError as exc:
            raise ApiUnavailable(f"unreadable auth response: {exc}") from exc

    async def send_email(
        self,
        api_key: str,
        email: wire.OutgoingEmail,
        *,
        idempotency_key: str,
        request_id: str,
        timeout: float | None = None,
    ) -> str:
        """Returns the Cakemail message id."""
        body = wire.email_body(email)
        response = await self._post(
            wire.EMAILS_PATH,
            content=_async_chunks(body.chunks()),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Content-Length": str(body.length),
                wire.IDEMPOTENCY_HEADER: idempotency_key,
                REQUEST_ID_HEADER: request_id,
            },
            timeout=timeout,
        )
        try:
            return wire.parse_message_id(self._json(response))
        except ValueError as exc:
            raise ApiUnavailable(f"unreadable email response: {exc}") from exc

    async def _post(
        self,
        path: str,
        *,
        headers: dict[str, str],
        timeout: float | None,
        json: Any = None,
        content: AsyncIterator[bytes] | None = None,
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": headers}
        if content is not None:
            kwargs["content"] = content
        else:
            kwargs["json"] = json
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 3.0))
        try:
            response = await self._http.post(path, **kwargs)
        except _RETRYABLE_TRANSPORT_ERRORS as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{path}: {type(exc).__name__}") from exc
        self._raise_for_status(path, response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ApiUnavailable(f"non-JSON response from {response.request.url.path}") from exc

    @classmethod
    def _raise_for_status(cls, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise ApiCredentialsRejected(f"{path}: HTTP 401")
        if status == 429:
            raise ApiRateLimited(wire.parse_retry_after(response.headers.get("Retry-After")))
        if status >= 500 or status == 408:
            raise ApiUnavailable(f"{path}: HTTP {status}", retryable=status in _RETRYABLE_STATUSES)
        try:
            body = wire.parse_error(response.json())
        except ValueError:
            body = wire.parse_error(None)
        raise ApiRejected(status, body)
