"""POST /v1/auth/validate: credentials in, an opaque api key out; wrong or malformed credentials refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import DEMO_CREDENTIALS, FakeClock, StartSandbox, email_headers, make_settings, valid_email


async def test_valid_credentials_get_an_api_key_for_the_account(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/validate", json=DEMO_CREDENTIALS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"api_key", "account_id", "email", "expires_in"}
    assert (body["account_id"], body["email"], body["expires_in"]) == ("acct-demo", "demo@example.com", 900)
    assert isinstance(body["api_key"], str) and len(body["api_key"]) >= 32
    assert body["api_key"] not in (DEMO_CREDENTIALS["username"], DEMO_CREDENTIALS["password"])


async def test_each_validation_issues_a_new_key_and_both_work(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/auth/validate", json=DEMO_CREDENTIALS)).json()["api_key"]
    second = (await client.post("/v1/auth/validate", json=DEMO_CREDENTIALS)).json()["api_key"]

    assert first != second
    for key in (first, second):
        response = await client.post("/v1/emails", json=valid_email(), headers=email_headers(key))
        assert response.status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "demo@example.com", "password": "wrong"},
        {"username": "nobody@example.com", "password": "demo-password"},
        {"username": "DEMO@example.com", "password": "demo-password"},
    ],
    ids=["wrong-password", "unknown-user", "username-is-exact"],
)
async def test_invalid_credentials_get_401(client: httpx.AsyncClient, credentials: dict[str, str]) -> None:
    response = await client.post("/v1/auth/validate", json=credentials)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"not json", None),
        (b'["demo@example.com", "demo-password"]', None),
        (b'{"password": "demo-password"}', "username"),
        (b'{"username": "demo@example.com"}', "password"),
        (b'{"username": 42, "password": "demo-password"}', "username"),
        (b'{"username": "demo@example.com", "password": ""}', "password"),
        (b'{"username": "demo@example.com", "password": "demo-password", "otp": "1"}', "otp"),
        (b"", None),
    ],
    ids=["not-json", "array", "no-username", "no-password", "number", "empty-password", "unknown-field", "empty"],
)
async def test_malformed_requests_get_400(client: httpx.AsyncClient, content: bytes, field: str | None) -> None:
    response = await client.post("/v1/auth/validate", content=content, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    body: dict[str, Any] = response.json()
    assert (body["error"], body["field"]) == ("validation_error", field)
    assert body["message"]


async def test_expires_in_is_configurable_and_the_key_expires(start_sandbox: StartSandbox) -> None:
    clock = FakeClock()
    server = await start_sandbox(make_settings(token_expires_in=60), clock=clock)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        token = (await http.post("/v1/auth/validate", json=DEMO_CREDENTIALS)).json()
        assert token["expires_in"] == 60

        clock.advance(59)
        still_valid = await http.post("/v1/emails", json=valid_email(), headers=email_headers(token["api_key"]))
        clock.advance(1)
        expired = await http.post("/v1/emails", json=valid_email(), headers=email_headers(token["api_key"]))

    assert still_valid.status_code == 200
    assert expired.status_code == 401
    assert expired.json()["error"] == "invalid_token"


async def test_revoking_tokens_makes_cached_keys_fail_with_401(client: httpx.AsyncClient, api_key: str) -> None:
    revoked = await client.post("/sandbox/tokens/revoke")
    response = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key))

    assert revoked.status_code == 200
    assert revoked.json() == {"revoked": 1}
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
