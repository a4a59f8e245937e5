"""Faults on the v2 routes (route keys auth, emails, senders, logs), v2 state in reset, and the ops endpoints."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sandbox.conftest import (
    DEMO_CREDENTIALS,
    StartSandbox,
    bearer,
    make_settings,
    recorded,
    send_v2,
    stats,
    valid_v2_email,
)
from tests.sandbox.test_faults import set_faults
from tests.sandbox.test_v2_tokens import assert_detail


async def test_accept_then_drop_records_the_email_and_logs_it_but_loses_the_answer(
    client: httpx.AsyncClient, token: str, ann: str
) -> None:
    await set_faults(client, {"emails": {"accept_then_drop": True, "count": 1}})

    with pytest.raises(httpx.TransportError):
        await send_v2(client, token, valid_v2_email(ann, email="lost@example.org"))
    [record] = await recorded(client)
    found = await client.get("/v2/logs/emails", params={"log_type": "queued"}, headers=bearer(token))
    again = await send_v2(client, token, valid_v2_email(ann, email="lost@example.org"))

    assert (record["flavor"], record["email"], record["status"]) == ("v2", "lost@example.org", "queued")
    assert [(entry["email_id"], entry["email"]) for entry in found.json()["data"]] == [
        (record["id"], "lost@example.org")
    ], "the client can learn from the logs that the lost send went through"
    assert again.status_code == 201 and again.json()["data"]["id"] != record["id"], "no idempotency: a resend is new"
    assert len(await recorded(client)) == 2
    assert (await stats(client))["v2_email_calls"] == 2


async def test_drop_connection_on_v2_emails_records_nothing(client: httpx.AsyncClient, token: str, ann: str) -> None:
    await set_faults(client, {"emails": {"drop_connection": True, "count": 1}})

    with pytest.raises(httpx.TransportError):
        await send_v2(client, token, valid_v2_email(ann))

    assert await recorded(client) == []


async def test_latency_applies_to_v2_emails(client: httpx.AsyncClient, token: str, ann: str) -> None:
    await set_faults(client, {"emails": {"latency_ms": 300}})

    started = time.monotonic()
    response = await send_v2(client, token, valid_v2_email(ann))

    assert response.status_code == 201
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("route", "method", "path"),
    [
        ("auth", "POST", "/token"),
        ("auth", "POST", "/token/challenge"),
        ("emails", "POST", "/v2/emails"),
        ("senders", "GET", "/brands/default/senders"),
        ("logs", "GET", "/v2/logs/emails"),
        ("logs", "GET", "/v2/emails/4bb2b4b2-7c1e-4c33-9d1e-0d0a3c1f5a11"),
    ],
)
async def test_injected_errors_on_v2_routes_come_in_the_detail_shape(
    client: httpx.AsyncClient, token: str, route: str, method: str, path: str
) -> None:
    await set_faults(client, {route: {"error_status": 503}})

    response = await client.request(method, path, headers=bearer(token), json={} if method == "POST" else None)

    assert_detail(response, 503, "service_unavailable")
    assert await recorded(client) == []


async def test_429_on_token_carries_retry_after(client: httpx.AsyncClient) -> None:
    await set_faults(client, {"auth": {"error_status": 429, "retry_after": 4, "count": 1}})

    limited = await client.post("/token", data=DEMO_CREDENTIALS)
    after = await client.post("/token", data=DEMO_CREDENTIALS)

    assert_detail(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"] == "4"
    assert after.status_code == 200
    assert (await stats(client))["token_calls"] == 2
    assert (await stats(client))["auth_calls"] == 0, "auth_calls counts the v1 route only"


async def test_reset_and_clearing_the_inbox_forget_v2_emails_and_logs(
    client: httpx.AsyncClient, token: str, ann: str
) -> None:
    email_id = (await send_v2(client, token, valid_v2_email(ann))).json()["data"]["id"]

    cleared = await client.delete("/sandbox/emails")
    logs = await client.get("/v2/logs/emails", headers=bearer(token))
    shown = await client.get(f"/v2/emails/{email_id}", headers=bearer(token))
    reset = await client.post("/sandbox/reset")
    counters = await stats(client)
    token_after_reset = await client.get("/brands/default/senders", headers=bearer(token))

    assert cleared.status_code == 204
    assert (await recorded(client)) == []
    assert logs.json()["data"] == []
    assert shown.status_code == 404
    assert reset.status_code == 204
    assert token_after_reset.status_code == 401, "reset forgets v2 tokens"
    assert set(counters.values()) == {0}


async def test_health_and_readiness(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(faults={"health": {"error_status": 500}}))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        live = await http.get("/health/live")
        ready = await http.get("/health/ready")
        server.app.state.sandbox.stopping.set()  # what a shutdown does first
        draining = await http.get("/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"}), "the v1 health fault is not the process's"
    assert (draining.status_code, draining.json()) == (503, {"status": "not ready"})


async def test_metrics_count_requests_faults_and_emails(client: httpx.AsyncClient, token: str, ann: str) -> None:
    before = (await client.get("/metrics")).text
    await send_v2(client, token, valid_v2_email(ann))
    await send_v2(client, token, valid_v2_email(ann, email="rejected@example.com"))
    await set_faults(client, {"senders": {"error_status": 502, "count": 1}})
    await client.get("/brands/default/senders", headers=bearer(token))

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def value(text: str, sample: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(sample + " ")]
        return float(lines[0].split()[-1]) if lines else 0.0

    for sample, delta in [
        ('sandbox_requests_total{route="emails",status="201"}', 2),
        ('sandbox_requests_total{route="senders",status="502"}', 1),
        ('sandbox_faults_applied_total{kind="error_502",route="senders"}', 1),
        ('sandbox_emails_recorded_total{flavor="v2",status="queued"}', 1),
        ('sandbox_emails_recorded_total{flavor="v2",status="rejected"}', 1),
    ]:
        assert value(after, sample) - value(before, sample) == delta, sample
    assert token not in after and "demo-password" not in after
