"""Idempotency-Key: a retry (or a concurrent duplicate) gets the first answer and records nothing more."""

from __future__ import annotations

import asyncio

import httpx

from cakemail_sandbox.config import DEMO_ACCOUNT, Account
from tests.sandbox.conftest import (
    DEMO_CREDENTIALS,
    FakeClock,
    StartSandbox,
    email_headers,
    login,
    make_settings,
    recorded,
    valid_email,
)


async def test_same_key_twice_records_once_and_replays_the_first_answer(
    client: httpx.AsyncClient, api_key: str
) -> None:
    first = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "gw1-abc", "try-1"))
    second = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "gw1-abc", "try-2"))

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    [record] = await recorded(client)
    assert (record["message_id"], record["request_id"]) == (first.json()["message_id"], "try-1")


async def test_concurrent_duplicates_record_once(client: httpx.AsyncClient, api_key: str) -> None:
    async def send() -> httpx.Response:
        return await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "gw1-race"))

    responses = await asyncio.gather(*(send() for _ in range(30)))

    assert {response.status_code for response in responses} == {200}
    assert len({response.json()["message_id"] for response in responses}) == 1
    assert len(await recorded(client)) == 1


async def test_different_keys_and_missing_keys_record_each_time(client: httpx.AsyncClient, api_key: str) -> None:
    for key in ("k-1", "k-2", None, None):
        response = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, key))
        assert response.status_code == 200

    records = await recorded(client)

    assert [record["idempotency_key"] for record in records] == ["k-1", "k-2", None, None]
    assert len({record["message_id"] for record in records}) == 4


async def test_a_rejected_request_is_not_remembered(client: httpx.AsyncClient, api_key: str) -> None:
    refused = await client.post("/v1/emails", json=valid_email(to=[]), headers=email_headers(api_key, "k-fix"))
    fixed = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "k-fix"))

    assert (refused.status_code, fixed.status_code) == (400, 200)
    assert len(await recorded(client)) == 1


async def test_keys_are_scoped_per_account(start_sandbox: StartSandbox) -> None:
    other = Account(username="bob", password="bob-password", account_id="acct-bob", email="bob@example.com")
    server = await start_sandbox(make_settings(accounts=[DEMO_ACCOUNT, other]))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        demo_key = await login(http, DEMO_CREDENTIALS)
        bob_key = await login(http, {"username": "bob", "password": "bob-password"})
        for key in (demo_key, bob_key):
            response = await http.post("/v1/emails", json=valid_email(), headers=email_headers(key, "same-key"))
            assert response.status_code == 200
        records = await recorded(http)

    assert [record["account_id"] for record in records] == ["acct-demo", "acct-bob"]


async def test_a_key_is_remembered_for_the_ttl_only(start_sandbox: StartSandbox) -> None:
    clock = FakeClock()
    server = await start_sandbox(make_settings(token_expires_in=3 * 24 * 3600), clock=clock)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        api_key = await login(http)

        async def send() -> str:
            response = await http.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "k-day"))
            assert response.status_code == 200
            return str(response.json()["message_id"])

        first = await send()
        clock.advance(24 * 3600 - 1)
        within_a_day = await send()
        clock.advance(1)
        after_a_day = await send()
        records = await recorded(http)

    assert within_a_day == first
    assert after_a_day != first
    assert len(records) == 2
