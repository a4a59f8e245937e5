"""The forwarder against a misbehaving Cakemail API (the sandbox's fault injection), end to end over SMTP.

The invariant checked everywhere: a 250 only when the sandbox recorded the message, and recorded it exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiosmtplib
import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView, metric

pytestmark = pytest.mark.e2e

ACCOUNTS = [
    {
        "username": "demo@example.com",
        "password": "demo-password",
        "account_id": "acct-demo",
        "email": "demo@example.com",
    },
    {
        "username": "crowd@example.com",
        "password": "crowd-password",
        "account_id": "acct-crowd",
        "email": "crowd@example.com",
    },
]
FORWARDER = {
    # The breaker gets a stack of its own (below): here it must not open because of the other tests' faults.
    "BREAKER_MIN_REQUESTS": "100000",
    "RETRY_BASE_DELAY_SECONDS": "0.02",
    "RETRY_MAX_DELAY_SECONDS": "0.1",
    "MAX_INFLIGHT_API_CALLS": "3",
    "SATURATION_WAIT_SECONDS": "0.05",
}
BREAKER = {
    "BREAKER_MIN_REQUESTS": "4",
    "BREAKER_FAILURE_RATIO": "0.5",
    "BREAKER_OPEN_SECONDS": "1.5",
    "BREAKER_HALF_OPEN_PROBES": "1",
    "RETRY_BASE_DELAY_SECONDS": "0.02",
    "RETRY_MAX_DELAY_SECONDS": "0.1",
}
EDGE = {"FORWARDER_TIMEOUT_SECONDS": "4", "MAX_CONNECTIONS_PER_IP": "500"}
# The resilience pipeline (retries, breaker, bulkhead) is the same for both flavors; this module drives it through
# v1, whose Idempotency-Key makes every lost answer repeatable. v2's rules: tests/e2e/test_v2_submission.py.
FLAVOR = {"CAKEMAIL_API_FLAVOR": "v1"}


def _stack(certificate: DevCertificate, logs: Any, forwarder: dict[str, str]) -> Stack:
    return Stack(
        StackPorts.ephemeral(),
        certificate,
        log_dir=logs,
        extra_env={
            "sandbox": {"SANDBOX_ACCOUNTS": json.dumps(ACCOUNTS)},
            "forwarder": {**FLAVOR, **forwarder},
            "edge": EDGE,
        },
    )


@pytest.fixture(scope="module")
def reliability_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = _stack(dev_certificate, tmp_path_factory.mktemp("reliability-logs"), FORWARDER)
    with running:
        yield running


@pytest.fixture
def breaker_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = _stack(dev_certificate, tmp_path_factory.mktemp("breaker-logs"), BREAKER)
    with running:
        yield running


@pytest.fixture
def api(reliability_stack: Stack) -> Iterator[SandboxView]:
    sandbox = SandboxView(reliability_stack.sandbox_url)
    sandbox.reset()
    yield sandbox
    sandbox.reset()


def forwarder_metric(stack: Stack, name: str) -> float:
    return metric(stack.ports.forwarder_http, name)


async def send(stack: Stack, tls: Any, tag: str, user: tuple[str, str] = ("demo@example.com", "demo-password")) -> str:
    """One message over STARTTLS; returns '250 ...' or the refusal as 'CODE x.y.z text'."""
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=stack.ports.smtp_starttls, start_tls=True, tls_context=tls, timeout=30
    )
    try:
        async with client:
            await client.login(*user)
            message = f"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: {tag}\r\n\r\nbody {tag}\r\n"
            _, reply = await client.sendmail("ann@example.com", ["bob@example.net"], message)
            return f"250 {reply}"
    except aiosmtplib.SMTPResponseException as refused:
        return f"{refused.code} {refused.message}"


def recorded(api: SandboxView, tag: str) -> int:
    return sum(1 for e in api.emails(content=False) if e["payload"]["subject"] == tag)


def send_one(stack: Stack, tls: Any, api: SandboxView) -> tuple[str, int]:
    tag = uuid.uuid4().hex
    reply = asyncio.run(send(stack, tls, tag))
    count = recorded(api, tag)
    assert reply.startswith("250") == (count == 1) and count <= 1, (reply, count)
    return reply, count


def test_a_503_is_retried_and_delivered_once(reliability_stack: Stack, api: SandboxView, client_tls: Any) -> None:
    retries = forwarder_metric(reliability_stack, "forwarder_api_retries_total")
    api.faults({"emails": {"error_status": 503, "count": 1}})
    reply, count = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("250 2.0.0") and count == 1
    assert forwarder_metric(reliability_stack, "forwarder_api_retries_total") > retries


def test_a_lost_response_is_retried_without_a_second_delivery(
    reliability_stack: Stack, api: SandboxView, client_tls: Any
) -> None:
    api.faults({"emails": {"accept_then_drop": True, "count": 1}})
    reply, count = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("250 2.0.0") and count == 1
    assert api.stats()["email_calls"] >= 2  # the first, whose answer was lost, and the retry the API deduplicated


def test_a_dropped_connection_is_retried(reliability_stack: Stack, api: SandboxView, client_tls: Any) -> None:
    api.faults({"emails": {"drop_connection": True, "count": 1}})
    reply, count = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("250") and count == 1


def test_429_within_the_deadline_is_honoured(reliability_stack: Stack, api: SandboxView, client_tls: Any) -> None:
    api.faults({"emails": {"error_status": 429, "retry_after": 1, "count": 1}})
    started = time.monotonic()
    reply, count = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("250") and count == 1
    assert time.monotonic() - started >= 1.0  # it waited as the API asked


def test_429_beyond_the_deadline_is_passed_on_at_once(
    reliability_stack: Stack, api: SandboxView, client_tls: Any
) -> None:
    api.faults({"emails": {"error_status": 429, "retry_after": 60}})
    started = time.monotonic()
    reply, count = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("451 4.7.1") and "60 seconds" in reply and count == 0
    assert time.monotonic() - started < 3.5


@pytest.mark.parametrize("status", [400, 413, 403])
def test_permanent_refusals_are_not_retried(
    reliability_stack: Stack, api: SandboxView, client_tls: Any, status: int
) -> None:
    api.faults({"emails": {"error_status": status}})
    reply, count = send_one(reliability_stack, client_tls, api)
    expected = {400: "550 5.6.0", 413: "552 5.3.4", 403: "550 5.7.1"}[status]
    assert reply.startswith(expected) and count == 0
    assert api.stats()["email_calls"] == 1


def test_a_hanging_api_gets_451_within_the_deadline(
    reliability_stack: Stack, api: SandboxView, client_tls: Any
) -> None:
    api.faults({"emails": {"hang": True}})
    started = time.monotonic()
    reply, count = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("451 4.3.0") and count == 0
    assert time.monotonic() - started < 4 + 2  # the edge's forwarder deadline, plus the session's own work


def test_the_breaker_opens_fails_fast_and_recovers(breaker_stack: Stack, client_tls: Any) -> None:
    reliability_stack = breaker_stack
    api = SandboxView(breaker_stack.sandbox_url)
    api.faults({"emails": {"error_status": 503}})
    for _ in range(2):  # each message makes up to 3 attempts: the breaker opens after 4 failures
        reply, _ = send_one(reliability_stack, client_tls, api)
        assert reply.startswith("451 4.3.0")
    assert forwarder_metric(reliability_stack, "smtp_circuit_breaker_state") == 2
    calls = api.stats()["email_calls"]
    started = time.monotonic()
    reply, _ = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("451 4.3.0")
    assert api.stats()["email_calls"] == calls, "an open breaker must not call the API"
    assert time.monotonic() - started < 2

    api.faults({})
    deadline = time.monotonic() + 10
    while forwarder_metric(reliability_stack, "smtp_circuit_breaker_state") != 0:
        assert time.monotonic() < deadline, "the breaker never closed again"
        reply, count = send_one(reliability_stack, client_tls, api)
        if not reply.startswith("250"):
            time.sleep(0.2)
    reply, count = send_one(reliability_stack, client_tls, api)
    assert reply.startswith("250") and count == 1


def test_concurrent_auths_for_one_user_make_one_token_call(
    reliability_stack: Stack, api: SandboxView, client_tls: Any
) -> None:
    api.faults({"auth": {"latency_ms": 500}})

    async def login_once() -> int:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=reliability_stack.ports.smtp_starttls,
            start_tls=True,
            tls_context=client_tls,
            timeout=30,
        )
        async with client:
            response = await client.login("crowd@example.com", "crowd-password")
            return response.code

    async def crowd() -> list[int]:
        return list(await asyncio.gather(*(login_once() for _ in range(100))))

    assert asyncio.run(crowd()) == [235] * 100
    assert api.stats()["auth_calls"] == 1


def test_saturation_answers_451_4_3_2_fast(reliability_stack: Stack, api: SandboxView, client_tls: Any) -> None:
    api.faults({"emails": {"latency_ms": 1500}})
    tags = [uuid.uuid4().hex for _ in range(8)]

    async def burst() -> list[tuple[str, float]]:
        async def timed(tag: str) -> tuple[str, float]:
            started = time.monotonic()
            reply = await send(reliability_stack, client_tls, tag)
            return reply, time.monotonic() - started

        return list(await asyncio.gather(*(timed(tag) for tag in tags)))

    results = asyncio.run(burst())
    busy = [(reply, took) for reply, took in results if reply.startswith("451 4.3.2")]
    accepted = [reply for reply, _ in results if reply.startswith("250")]
    assert busy, f"nothing was refused as busy: {results}"
    assert accepted, f"nothing got through: {results}"
    accepted_times = [took for reply, took in results if reply.startswith("250")]
    # Measured side by side: a busy refusal must not wait for the slow API the accepted ones waited for.
    assert max(took for _, took in busy) < min(accepted_times), results
    assert len(accepted) + len(busy) == len(tags)
    for tag, (reply, _) in zip(tags, results, strict=True):
        assert recorded(api, tag) == (1 if reply.startswith("250") else 0)
