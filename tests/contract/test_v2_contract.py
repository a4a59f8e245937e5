"""Contract tests of the v2 client (forwarder.api.v2): the same tests against the sandbox and, when credentials are
given, against the real Cakemail API.

Real API: set CAKEMAIL_TEST_USERNAME, CAKEMAIL_TEST_PASSWORD and CAKEMAIL_API_URL (e.g. https://api.cakemail.dev);
CAKEMAIL_TEST_SENDER (a confirmed sender of the account, default: the username) and CAKEMAIL_TEST_RECIPIENT (an
inbox you own) enable the tests that really send one email. Without them those tests are skipped, saying why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from cakemail_sandbox.config import SandboxSettings
from cakemail_sandbox.server import SandboxServer
from forwarder.api.context import CallContext
from forwarder.api.errors import ApiCredentialsRejected, ApiMfaRequired, ApiRejected, Rejection
from forwarder.api.http import HttpTransport
from forwarder.api.model import Mailbox, MessageRef, OutgoingEmail
from forwarder.api.v2.client import V2Api, V2Options
from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.breaker import BreakerSettings, CircuitBreaker
from forwarder.resilience.bulkhead import Bulkhead
from forwarder.resilience.pipeline import ApiPipeline
from forwarder.resilience.retry import RetryPolicy

REAL_ENV = ("CAKEMAIL_TEST_USERNAME", "CAKEMAIL_TEST_PASSWORD", "CAKEMAIL_API_URL")


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    username: str
    password: str
    sender: str
    recipient: str | None  # None: sending a real email is not allowed here
    mfa_user: tuple[str, str] | None = None


@pytest.fixture(params=["sandbox", "real"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "real":
        missing = [name for name in REAL_ENV if not os.environ.get(name)]
        if missing:
            pytest.skip(f"contract tests against the real Cakemail API need {', '.join(missing)} set")
        username = os.environ["CAKEMAIL_TEST_USERNAME"]
        yield Target(
            "real",
            os.environ["CAKEMAIL_API_URL"],
            username,
            os.environ["CAKEMAIL_TEST_PASSWORD"],
            os.environ.get("CAKEMAIL_TEST_SENDER", username),
            os.environ.get("CAKEMAIL_TEST_RECIPIENT"),
        )
        return
    async with SandboxServer(SandboxSettings(host="127.0.0.1", port=0)) as sandbox:
        yield Target(
            "sandbox",
            sandbox.base_url,
            "demo@example.com",
            "demo-password",
            "demo@example.com",
            "contract@example.net",
            ("mfa@example.com", "mfa-password"),
        )


@pytest.fixture
async def api(target: Target) -> AsyncIterator[V2Api]:
    metrics = ForwarderMetrics(CollectorRegistry())
    pipeline = ApiPipeline(
        bulkhead=Bulkhead(4, metrics),
        breaker=CircuitBreaker(BreakerSettings(min_requests=1000)),
        retry=RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.2),
        rng=random.Random(),
        metrics=metrics,
    )
    client = V2Api(
        HttpTransport.create(target.base_url, timeout=20, connect_timeout=5, max_connections=4),
        pipeline,
        V2Options(lookup_window_seconds=300),
    )
    yield client
    await client.aclose()


CTX = CallContext("contract-test")


def _email(target: Target, **changes: object) -> OutgoingEmail:
    email = OutgoingEmail(
        sender=Mailbox(target.sender, "Gateway contract test"),
        envelope_from=target.sender,
        to=(Mailbox(target.recipient or "nobody@example.net"),),
        cc=(),
        bcc=(),
        subject=f"cakemail-smtp-gateway contract test {int(time.time())}",
        text_body="Sent by the gateway's contract tests.\n",
        html_body="",
        reply_to=None,
        headers={"X-Tags": "gateway-contract-test"},
    )
    return dataclasses.replace(email, **changes)  # type: ignore[arg-type]


async def test_password_grant_gives_a_session_with_accounts_and_a_refresh_token(api: V2Api, target: Target) -> None:
    session = await api.sign_in(target.username, target.password, None, CTX)
    assert session.access_token and session.refresh_token and session.accounts
    assert all(account.isdigit() for account in session.accounts)
    refreshed = await api.sign_in(target.username, target.password, session, CTX)
    assert refreshed.access_token and refreshed.accounts == session.accounts


async def test_a_wrong_password_is_rejected(api: V2Api, target: Target) -> None:
    with pytest.raises(ApiCredentialsRejected) as rejected:
        await api.sign_in(target.username, target.password + "-wrong", None, CTX)
    assert not isinstance(rejected.value, ApiMfaRequired)


async def test_an_mfa_user_cannot_sign_in(api: V2Api, target: Target) -> None:
    if target.mfa_user is None:
        pytest.skip("no MFA-protected test user is known for this target")
    with pytest.raises(ApiMfaRequired):
        await api.sign_in(*target.mfa_user, None, CTX)


async def test_an_address_that_is_no_confirmed_sender_is_refused_before_sending(api: V2Api, target: Target) -> None:
    session = await api.sign_in(target.username, target.password, None, CTX)
    stranger = f"not-a-sender-{random.randrange(10**9)}@example.invalid"
    with pytest.raises(ApiRejected) as refused:
        await api.prepare(session, _email(target, sender=Mailbox(stranger)), MessageRef("<c@t>", "d"), CTX)
    assert refused.value.kind is Rejection.FORBIDDEN and stranger in refused.value.detail


async def test_one_email_is_queued_and_found_again_in_the_activity_logs(api: V2Api, target: Target) -> None:
    if target.recipient is None:
        pytest.skip("set CAKEMAIL_TEST_RECIPIENT (an inbox you own) to let the contract tests send a real email")
    session = await api.sign_in(target.username, target.password, None, CTX)
    plan = await api.prepare(session, _email(target), MessageRef("<contract@t>", "d"), CTX)
    [delivery] = plan.deliveries
    sent_at = time.time()
    email_id = await delivery.send(session, CTX)
    assert email_id
    # The activity logs may lag behind the submission on the real API: look for a while.
    deadline = time.monotonic() + (5 if target.name == "sandbox" else 120)
    while (found := await delivery.find_previous(session, sent_at, CTX)) is None:
        assert time.monotonic() < deadline, "the queued email never showed in GET /v2/logs/emails"
        await asyncio.sleep(2)
    assert found == email_id
