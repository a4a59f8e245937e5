"""Fault injection: latency, errors, 429 + Retry-After, dropped connections, lost responses, hangs, counts."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import httpx
import pytest

from cakemail_sandbox.config import SandboxSettings
from tests.sandbox.conftest import (
    DEMO_CREDENTIALS,
    NO_V2_CALLS,
    StartSandbox,
    email_headers,
    login,
    make_settings,
    recorded,
    stats,
    valid_email,
)


async def set_faults(http: httpx.AsyncClient, faults: dict[str, Any]) -> dict[str, Any]:
    response = await http.put("/sandbox/faults", json=faults)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_latency_delays_the_answer_by_at_least_the_requested_time(client: httpx.AsyncClient) -> None:
    await set_faults(client, {"health": {"latency_ms": 300}})

    started = time.monotonic()
    response = await client.get("/v1/health")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3


@pytest.mark.parametrize("status", [500, 502, 503, 403])
async def test_error_status_answers_with_that_status_and_a_json_error(
    client: httpx.AsyncClient, api_key: str, status: int
) -> None:
    await set_faults(client, {"emails": {"error_status": status}})

    response = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key))

    assert response.status_code == status
    assert response.json()["error"] and response.json()["message"]
    assert await recorded(client) == []
    assert (await stats(client))["email_calls"] == 1, "fault-injected calls still count"


async def test_429_carries_retry_after(client: httpx.AsyncClient) -> None:
    await set_faults(client, {"auth": {"error_status": 429, "retry_after": 7}, "emails": {"error_status": 429}})

    auth = await client.post("/v1/auth/validate", json=DEMO_CREDENTIALS)
    email = await client.post("/v1/emails", json=valid_email(), headers=email_headers("any"))

    assert (auth.status_code, auth.headers["Retry-After"], auth.json()["error"]) == (429, "7", "rate_limited")
    assert (email.status_code, email.headers["Retry-After"]) == (429, "1")
    assert await stats(client) == {"auth_calls": 1, "email_calls": 1, "emails_recorded": 0, **NO_V2_CALLS}


async def test_drop_connection_gives_the_client_a_transport_error(client: httpx.AsyncClient, api_key: str) -> None:
    await set_faults(client, {"emails": {"drop_connection": True}})

    with pytest.raises(httpx.TransportError):
        await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "k-drop"))

    assert await recorded(client) == []
    assert (await stats(client))["email_calls"] == 1


async def test_accept_then_drop_records_the_email_but_loses_the_response(
    client: httpx.AsyncClient, api_key: str
) -> None:
    await set_faults(client, {"emails": {"accept_then_drop": True, "count": 1}})

    with pytest.raises(httpx.TransportError):
        await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "k-lost"))
    [record] = await recorded(client)
    retry = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "k-lost"))

    assert retry.status_code == 200
    assert retry.json()["message_id"] == record["message_id"], "the retry learns the id of the lost response"
    assert len(await recorded(client)) == 1
    assert await stats(client) == {"auth_calls": 1, "email_calls": 2, "emails_recorded": 1, **NO_V2_CALLS}


async def test_hang_never_answers_until_the_client_gives_up(client: httpx.AsyncClient, api_key: str) -> None:
    await set_faults(client, {"emails": {"hang": True, "count": 1}})

    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key), timeout=0.3)

    assert time.monotonic() - started >= 0.3
    after = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key))
    assert after.status_code == 200


async def test_hang_is_bounded_by_hang_max_seconds(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(hang_max_seconds=0.3, faults={"health": {"hang": True}}))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        started = time.monotonic()
        with pytest.raises(httpx.TransportError) as cut:
            await http.get("/v1/health")
        elapsed = time.monotonic() - started

    assert not isinstance(cut.value, httpx.TimeoutException), "the sandbox ends the hang, not the client"
    assert 0.3 <= elapsed < 5


async def test_stopping_the_server_releases_hanging_requests(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(faults={"auth": {"hang": True}}))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        hanging = asyncio.create_task(http.post("/v1/auth/validate", json=DEMO_CREDENTIALS))
        async with asyncio.timeout(5):  # until the request is in the server's hands
            while (await stats(http))["auth_calls"] == 0:  # noqa: ASYNC110 - polling another process's state
                await asyncio.sleep(0.01)
        started = time.monotonic()
        await server.stop()
        stopped_in = time.monotonic() - started
        with pytest.raises(httpx.TransportError):
            await hanging

    assert stopped_in < 1, "shutdown must not wait for a hang"


async def test_count_limits_a_fault_to_the_next_n_requests(client: httpx.AsyncClient, api_key: str) -> None:
    shown = await set_faults(client, {"emails": {"error_status": 503, "count": 2}})

    statuses = []
    remaining = []
    for _ in range(3):
        response = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key))
        statuses.append(response.status_code)
        remaining.append((await client.get("/sandbox/faults")).json())

    assert shown == {"emails": {"error_status": 503, "count": 2}}
    assert statuses == [503, 503, 200]
    assert remaining == [{"emails": {"error_status": 503, "count": 1}}, {}, {}]


async def test_error_rate_is_deterministic_for_a_seeded_rng(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(
        make_settings(faults={"health": {"error_status": 500, "error_rate": 0.3}}), rng=random.Random(42)
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        statuses = [(await http.get("/v1/health")).status_code for _ in range(60)]

    replay = random.Random(42)
    expected = [500 if replay.random() < 0.3 else 200 for _ in range(60)]
    assert statuses == expected
    assert 5 < statuses.count(500) < 30


async def test_fault_seed_setting_makes_runs_repeatable(start_sandbox: StartSandbox) -> None:
    runs = []
    for _ in range(2):
        settings = make_settings(fault_seed=7, faults={"health": {"error_status": 503, "error_rate": 0.5}})
        server = await start_sandbox(settings)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
            runs.append([(await http.get("/v1/health")).status_code for _ in range(30)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


async def test_auth_faults_and_combined_latency(client: httpx.AsyncClient) -> None:
    await set_faults(client, {"auth": {"latency_ms": 100, "error_status": 503}})

    started = time.monotonic()
    response = await client.post("/v1/auth/validate", json=DEMO_CREDENTIALS)

    assert response.status_code == 503
    assert time.monotonic() - started >= 0.1
    assert (await stats(client))["auth_calls"] == 1


async def test_faults_can_be_listed_replaced_and_cleared(client: httpx.AsyncClient, api_key: str) -> None:
    await set_faults(client, {"emails": {"error_status": 500}, "auth": {"latency_ms": 5}})
    replaced = await set_faults(client, {"health": {"error_status": 502, "error_rate": 1.0}})
    listed = (await client.get("/sandbox/faults")).json()
    cleared = await client.delete("/sandbox/faults")

    assert replaced == listed == {"health": {"error_status": 502, "error_rate": 1.0}}
    assert cleared.status_code == 204
    assert (await client.get("/sandbox/faults")).json() == {}
    assert (await client.get("/v1/health")).status_code == 200
    response = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("faults", "field"),
    [
        ({"payments": {"error_status": 500}}, "payments"),
        ({"emails": {"error_status": 200}}, "emails.error_status"),
        ({"emails": {"error_status": 500, "error_rate": 1.5}}, "emails.error_rate"),
        ({"emails": {"error_rate": 0.5}}, "emails"),
        ({"emails": {"latency_ms": -1}}, "emails.latency_ms"),
        ({"emails": {"count": 0}}, "emails.count"),
        ({"emails": {"drop": True}}, "emails.drop"),
        (["emails"], None),
    ],
    ids=[
        "unknown-route",
        "status-not-error",
        "rate-over-1",
        "rate-without-status",
        "negative",
        "count-0",
        "typo",
        "array",
    ],
)
async def test_invalid_fault_specs_get_400(client: httpx.AsyncClient, faults: Any, field: str | None) -> None:
    response = await client.put("/sandbox/faults", json=faults)

    assert response.status_code == 400
    assert (response.json()["error"], response.json()["field"]) == ("validation_error", field)
    assert (await client.get("/sandbox/faults")).json() == {}


async def test_faults_from_the_environment_apply_from_startup(
    start_sandbox: StartSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_FAULTS", json.dumps({"auth": {"error_status": 500, "count": 1}}))
    monkeypatch.setenv("SANDBOX_PORT", "0")
    server = await start_sandbox(SandboxSettings())
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        first = await http.post("/v1/auth/validate", json=DEMO_CREDENTIALS)
        api_key = await login(http)

    assert first.status_code == 500
    assert api_key
