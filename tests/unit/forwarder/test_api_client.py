"""The v1 flavor's HTTP client alone, against a canned API on loopback: statuses and bodies become typed results
and errors."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator

import certifi
import httpx
import pytest

from forwarder.api.context import CallContext
from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiDeadlineExceeded,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    Rejection,
)
from forwarder.api.http import HttpTransport
from forwarder.api.v1 import wire
from forwarder.api.v1.client import V1Client as CakemailClient
from tests.unit.forwarder.fake_api import LOST, FakeApi
from tests.unit.forwarder.samples import EMAIL


@pytest.fixture
async def client(fake_api: FakeApi) -> AsyncIterator[CakemailClient]:
    transport = HttpTransport.create(fake_api.base_url, timeout=5, connect_timeout=1, max_connections=4)
    yield CakemailClient(transport)
    await transport.aclose()


CTX = CallContext("rid")


async def test_send_email_sends_the_documented_headers(client: CakemailClient, fake_api: FakeApi) -> None:
    route = fake_api.post("/v1/emails").mock(
        return_value=httpx.Response(200, json={"message_id": "m-1", "status": "queued"})
    )
    assert await client.send_email("key", EMAIL, idempotency_key="idem", ctx=CTX) == "m-1"
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == "Bearer key"
    assert sent.headers["Idempotency-Key"] == "idem"
    assert sent.headers["X-Request-Id"] == "rid"


async def test_validate_credentials_parses_the_token(client: CakemailClient, fake_api: FakeApi) -> None:
    route = fake_api.post("/v1/auth/validate").mock(
        return_value=httpx.Response(
            200, json={"api_key": "k", "account_id": "acct", "email": "u@x.test", "expires_in": 600}
        )
    )
    token = await client.validate_credentials("u@x.test", "pä", CTX)
    assert (token.access_token, token.account_id, token.expires_in) == ("k", "acct", 600.0)
    sent = route.calls.last.request
    assert sent.headers["Content-Type"] == "application/json"
    assert (
        sent.content
        == json.dumps(wire.credentials_payload("u@x.test", "pä"), ensure_ascii=False, separators=(",", ":")).encode()
    )  # compact, UTF-8 as is: the bytes httpx sent


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(401, json={"error": "invalid_token"}), ApiCredentialsRejected),
        (httpx.Response(429, headers={"Retry-After": "7"}), ApiRateLimited),
        (httpx.Response(400, json={"error": "validation_error", "message": "m", "field": "from"}), ApiRejected),
        (httpx.Response(413, json={"error": "payload_too_large"}), ApiRejected),
        (httpx.Response(500), ApiUnavailable),
        (httpx.Response(503, text="maintenance"), ApiUnavailable),
        (httpx.Response(200, text="not json"), ApiUnavailable),
        (httpx.Response(200, json={"status": "queued"}), ApiUnavailable),
    ],
)
async def test_statuses_map_to_typed_errors(
    client: CakemailClient, fake_api: FakeApi, response: httpx.Response, error: type[Exception]
) -> None:
    fake_api.post("/v1/emails").mock(return_value=response)
    with pytest.raises(error):
        await client.send_email("key", EMAIL, idempotency_key="i", ctx=CTX)


async def test_retry_after_and_rejection_details_are_kept(client: CakemailClient, fake_api: FakeApi) -> None:
    fake_api.post("/v1/emails").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(400, json={"error": "validation_error", "message": "bad from", "field": "from"}),
        ]
    )
    with pytest.raises(ApiRateLimited) as limited:
        await client.send_email("key", EMAIL, idempotency_key="i", ctx=CTX)
    assert limited.value.retry_after == 7
    with pytest.raises(ApiRejected) as refused:
        await client.send_email("key", EMAIL, idempotency_key="i", ctx=CTX)
    assert (refused.value.status, refused.value.kind, refused.value.detail) == (
        400,
        Rejection.INVALID,
        "bad from (field: from)",
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_safe_to_repeat() -> None:
    transport = HttpTransport.create(
        f"http://127.0.0.1:{_closed_port()}", timeout=5, connect_timeout=1, max_connections=4
    )
    try:
        with pytest.raises(ApiUnavailable) as refused:
            await transport.request("POST", "/v1/emails", CTX, retry_lost_answers=False, json={})
    finally:
        await transport.aclose()
    assert refused.value.retryable and not refused.value.ambiguous


@pytest.mark.parametrize("idempotent", [True, False])
async def test_a_lost_answer_is_retryable_only_when_the_call_is_idempotent(fake_api: FakeApi, idempotent: bool) -> None:
    fake_api.post("/v1/emails").mock(return_value=LOST)
    transport = HttpTransport.create(fake_api.base_url, timeout=5, connect_timeout=1, max_connections=4)
    try:
        with pytest.raises(ApiUnavailable) as lost:
            await transport.request("POST", "/v1/emails", CTX, retry_lost_answers=idempotent, json={})
    finally:
        await transport.aclose()
    assert (lost.value.retryable, lost.value.ambiguous) == (idempotent, not idempotent)
    assert len(fake_api.post("/v1/emails").calls) == 1  # it did arrive


@pytest.mark.parametrize("bounded_by", ["deadline", "setting"])
async def test_a_read_timeout_is_the_deadline_only_when_the_deadline_set_it(bounded_by: str) -> None:
    """An API that takes the request and never answers: with a caller's deadline shorter than the setting, the
    timeout is the deadline's (DEADLINE_EXCEEDED upstream, still ambiguous); otherwise the API was slow."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    timeout, deadline = (30.0, time.monotonic() + 0.3) if bounded_by == "deadline" else (0.3, None)
    transport = HttpTransport.create(f"http://127.0.0.1:{port}", timeout=timeout, connect_timeout=1, max_connections=4)
    try:
        with pytest.raises(ApiUnavailable) as timed_out:
            await transport.request(
                "POST", "/v2/emails", CallContext("r", deadline=deadline), retry_lost_answers=False, json={}
            )
    finally:
        await transport.aclose()
        server.close()
    assert isinstance(timed_out.value, ApiDeadlineExceeded) is (bounded_by == "deadline")
    assert timed_out.value.ambiguous


async def test_transport_errors_are_unavailable(client: CakemailClient, fake_api: FakeApi) -> None:
    fake_api.post("/v1/auth/validate").mock(return_value=LOST)
    with pytest.raises(ApiUnavailable):
        await client.validate_credentials("u", "p", CTX)


async def test_the_configured_connect_timeout_bounds_every_call_with_a_deadline(fake_api: FakeApi) -> None:
    transport = HttpTransport.create(fake_api.base_url, timeout=30, connect_timeout=0.7, max_connections=4)
    timeouts = transport.timeout_for(CallContext("r", deadline=time.monotonic() + 10))
    assert timeouts.sock_connect == 0.7  # was min(timeout, 3.0) whatever the setting said
    assert timeouts.sock_read is not None and 9 < timeouts.sock_read <= 10
    assert timeouts.connect is not None and 9 < timeouts.connect <= 10  # waiting for a pooled connection included
    short = transport.timeout_for(CallContext("r", deadline=time.monotonic() + 0.2))
    assert short.sock_connect is not None and short.sock_connect <= 0.2
    unbounded = transport.timeout_for(CallContext("r"))
    assert (unbounded.sock_connect, unbounded.sock_read, unbounded.total) == (0.7, 30, None)
    route = fake_api.post("/v1/emails").mock(return_value=httpx.Response(200, json={"message_id": "m"}))
    client = CakemailClient(transport)
    try:
        await client.send_email("key", EMAIL, idempotency_key="i", ctx=CallContext("r", deadline=time.monotonic() + 10))
    finally:
        await transport.aclose()
    assert route.calls.last.request.headers["Idempotency-Key"] == "i"


def test_the_api_is_trusted_through_the_system_store_and_certifi() -> None:
    transport = HttpTransport.create("https://api.test", timeout=5, connect_timeout=1, max_connections=4)
    bundled = ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
    trusted = transport.ssl_context.get_ca_certs()
    assert bundled and all(ca in trusted for ca in bundled)
    assert transport.ssl_context.verify_mode == ssl.CERT_REQUIRED and transport.ssl_context.check_hostname


@pytest.mark.parametrize("keepalive", [0.2, 15.0])
async def test_an_idle_connection_is_not_reused_past_the_keepalive(keepalive: float) -> None:
    """A server whose idle timeout fires as the next request arrives closes the connection without an answer (the
    race uvicorn's 5 s and a 5 s Retry-After met in the e2e suite). A send on that connection is lost and, not being
    repeatable, ambiguous; with the keep-alive below the server's idle time a new connection is used instead."""
    answered: list[int] = []

    async def keep_alive_for_a_moment(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        idle_since = None
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0
            )
            await reader.readexactly(length)
            if idle_since is not None and time.monotonic() - idle_since > 0.3:
                writer.close()  # the server's idle timer fired: no answer
                return
            answered.append(1)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
            idle_since = time.monotonic()

    server = await asyncio.start_server(keep_alive_for_a_moment, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = HttpTransport.create(
        f"http://127.0.0.1:{port}", timeout=5, connect_timeout=1, max_connections=4, keepalive=keepalive
    )
    try:
        await transport.request("POST", "/v2/emails", CTX, retry_lost_answers=False, json={})
        await asyncio.sleep(0.4)
        if keepalive < 0.4:
            response = await transport.request("POST", "/v2/emails", CTX, retry_lost_answers=False, json={})
            assert response.status_code == 200 and len(answered) == 2
        else:
            with pytest.raises(ApiUnavailable) as lost:
                await transport.request("POST", "/v2/emails", CTX, retry_lost_answers=False, json={})
            assert lost.value.ambiguous
    finally:
        await transport.aclose()
        server.close()
