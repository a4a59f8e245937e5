"""The v1 flavor's httpx client alone (respx): statuses and bodies become typed results and errors."""

from __future__ import annotations

import time

import httpx
import pytest
import respx

from forwarder.api.context import CallContext
from forwarder.api.errors import ApiCredentialsRejected, ApiRateLimited, ApiRejected, ApiUnavailable, Rejection
from forwarder.api.http import HttpTransport
from forwarder.api.v1.client import V1Client as CakemailClient
from tests.unit.forwarder.samples import EMAIL

BASE = "http://api.test"


@pytest.fixture
async def client() -> CakemailClient:
    return CakemailClient(HttpTransport.create(BASE, timeout=5, connect_timeout=1, max_connections=4))


CTX = CallContext("rid")


@respx.mock
async def test_send_email_sends_the_documented_headers(client: CakemailClient) -> None:
    route = respx.post(f"{BASE}/v1/emails").mock(
        return_value=httpx.Response(200, json={"message_id": "m-1", "status": "queued"})
    )
    assert await client.send_email("key", EMAIL, idempotency_key="idem", ctx=CTX) == "m-1"
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == "Bearer key"
    assert sent.headers["Idempotency-Key"] == "idem"
    assert sent.headers["X-Request-Id"] == "rid"


@respx.mock
async def test_validate_credentials_parses_the_token(client: CakemailClient) -> None:
    respx.post(f"{BASE}/v1/auth/validate").mock(
        return_value=httpx.Response(
            200, json={"api_key": "k", "account_id": "acct", "email": "u@x.test", "expires_in": 600}
        )
    )
    token = await client.validate_credentials("u@x.test", "p", CTX)
    assert (token.access_token, token.account_id, token.expires_in) == ("k", "acct", 600.0)


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
@respx.mock
async def test_statuses_map_to_typed_errors(
    client: CakemailClient, response: httpx.Response, error: type[Exception]
) -> None:
    respx.post(f"{BASE}/v1/emails").mock(return_value=response)
    with pytest.raises(error):
        await client.send_email("key", EMAIL, idempotency_key="i", ctx=CTX)


@respx.mock
async def test_retry_after_and_rejection_details_are_kept(client: CakemailClient) -> None:
    respx.post(f"{BASE}/v1/emails").mock(
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


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
@respx.mock
async def test_transport_errors_are_unavailable(client: CakemailClient, exc: Exception) -> None:
    respx.post(f"{BASE}/v1/auth/validate").mock(side_effect=exc)
    with pytest.raises(ApiUnavailable):
        await client.validate_credentials("u", "p", CTX)


@respx.mock
async def test_the_configured_connect_timeout_bounds_every_call_with_a_deadline() -> None:
    transport = HttpTransport.create(BASE, timeout=30, connect_timeout=0.7, max_connections=4)
    route = respx.post(f"{BASE}/v1/emails").mock(return_value=httpx.Response(200, json={"message_id": "m"}))
    client = CakemailClient(transport)
    await client.send_email("key", EMAIL, idempotency_key="i", ctx=CallContext("r", deadline=time.monotonic() + 10))
    timeouts = route.calls.last.request.extensions["timeout"]
    assert timeouts["connect"] == 0.7  # was min(timeout, 3.0) whatever the setting said
    assert 9 < timeouts["read"] <= 10
    await client.send_email("key", EMAIL, idempotency_key="i", ctx=CallContext("r", deadline=time.monotonic() + 0.2))
    assert route.calls.last.request.extensions["timeout"]["connect"] <= 0.2
