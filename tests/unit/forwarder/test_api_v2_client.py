"""The v2 flavor's HTTP client alone, against a canned API on loopback: token, refresh, MFA, senders (paged,
cached), one call per recipient, lost answers reported as ambiguous and never repeated, the activity-log lookup."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import httpx
import pytest
from prometheus_client import CollectorRegistry

from forwarder.api.context import CallContext
from forwarder.api.errors import ApiMfaRequired, ApiRejected, ApiUnavailable, Rejection
from forwarder.api.http import HttpTransport
from forwarder.api.model import Mailbox, MessageRef, OutgoingAttachment, Session
from forwarder.api.v2.client import V2Api, V2Options
from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.breaker import BreakerSettings, CircuitBreaker
from forwarder.resilience.bulkhead import Bulkhead
from forwarder.resilience.pipeline import ApiPipeline
from forwarder.resilience.retry import RetryPolicy
from tests.unit.forwarder.fake_api import LOST, FakeApi
from tests.unit.forwarder.samples import EMAIL

CTX = CallContext("rid")
REF = MessageRef("<m@x.test>", "digest")
SESSION = Session("at-1", ("1001", "1002"), "u@x.test", 900, "rt-1")
TOKEN = {"access_token": "at-1", "token_type": "bearer", "expires_in": 900, "refresh_token": "rt-1", "accounts": [1001]}


def senders_page(*senders: tuple[str, str, bool]) -> dict[str, object]:
    return {
        "pagination": {"page": 1, "per_page": 50},
        "data": [{"id": i, "name": "", "email": e, "confirmed": c} for i, e, c in senders],
    }


@pytest.fixture
async def api(fake_api: FakeApi) -> AsyncIterator[V2Api]:
    metrics = ForwarderMetrics(CollectorRegistry())
    pipeline = ApiPipeline(
        bulkhead=Bulkhead(10, metrics),
        breaker=CircuitBreaker(BreakerSettings(min_requests=100)),
        retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001),
        rng=random.Random(0),
        metrics=metrics,
    )
    transport = HttpTransport.create(fake_api.base_url, timeout=5, connect_timeout=1, max_connections=4)
    yield V2Api(transport, pipeline, V2Options(lookup_window_seconds=30))
    await transport.aclose()


async def test_sign_in_is_a_form_encoded_password_grant(api: V2Api, fake_api: FakeApi) -> None:
    route = fake_api.post("/token").mock(return_value=httpx.Response(200, json=TOKEN))
    session = await api.sign_in("u@x.test", "pw", None, CTX)
    assert (session.access_token, session.accounts, session.email) == ("at-1", ("1001",), "u@x.test")
    request = route.calls.last.request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["password"],
        "username": ["u@x.test"],
        "password": ["pw"],
    }
    assert request.headers["X-Request-Id"] == "rid"


async def test_an_mfa_user_is_told_apart_from_a_wrong_password(api: V2Api, fake_api: FakeApi) -> None:
    fake_api.post("/token").mock(return_value=httpx.Response(401, json={"challenge": "c-1"}))
    with pytest.raises(ApiMfaRequired):
        await api.sign_in("mfa@x.test", "pw", None, CTX)


async def test_refresh_first_then_the_password_when_the_refresh_token_is_refused(api: V2Api, fake_api: FakeApi) -> None:
    refreshed = {**TOKEN, "access_token": "at-2", "refresh_token": "rt-2", "accounts": []}
    route = fake_api.post("/token").mock(
        side_effect=[
            httpx.Response(200, json=refreshed),
            httpx.Response(401, json={"detail": [{"msg": "refresh token used", "type": "unauthorized"}]}),
            httpx.Response(200, json={**TOKEN, "access_token": "at-3"}),
        ]
    )
    session = await api.sign_in("u@x.test", "pw", SESSION, CTX)
    assert (session.access_token, session.refresh_token, session.accounts) == ("at-2", "rt-2", SESSION.accounts)
    assert parse_qs(route.calls[0].request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt-1"],
    }
    again = await api.sign_in("u@x.test", "pw", session, CTX)
    assert again.access_token == "at-3"
    assert parse_qs(route.calls[2].request.content.decode())["grant_type"] == ["password"]


async def test_senders_are_read_across_pages_once_and_one_call_goes_to_each_recipient(
    api: V2Api, fake_api: FakeApi
) -> None:
    first = senders_page(*((str(i), f"s{i}@x.test", True) for i in range(50)))
    senders = fake_api.get("/brands/default/senders").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=senders_page(("77", "a@x.test", True)))]
    )
    emails = fake_api.post("/v2/emails").mock(
        side_effect=lambda request: httpx.Response(
            201,
            json={
                "email": json.loads(request.content)["email"],
                "data": {"id": "e-" + str(len(emails.calls)), "status": "queued"},
            },
        )
    )
    email = dataclasses.replace(EMAIL, to=(Mailbox("b@x.test"),), cc=(Mailbox("c@x.test"),), bcc=(Mailbox("d@x.test"),))
    plan = await api.prepare(SESSION, email, REF, CTX)
    assert [d.recipients for d in plan.deliveries] == [("b@x.test",), ("c@x.test",), ("d@x.test",)]
    assert plan.needs_record and plan.account_id == "1001"
    assert [parse_qs(c.request.url.query.decode())["page"] for c in senders.calls] == [["1"], ["2"]]
    ids = [await d.send(SESSION, CTX) for d in plan.deliveries]
    assert ids == ["e-0", "e-1", "e-2"]
    sent = [json.loads(c.request.content) for c in emails.calls]
    assert [p["email"] for p in sent] == ["b@x.test", "c@x.test", "d@x.test"]
    assert {p["sender"]["id"] for p in sent} == {"77"}
    assert all(c.request.headers["Authorization"] == "Bearer at-1" for c in emails.calls)
    assert all("account_id" not in c.request.url.query.decode() for c in emails.calls)
    await api.prepare(SESSION, email, REF, CTX)
    assert len(senders.calls) == 2  # cached per account


async def test_an_unconfirmed_or_unknown_sender_is_refused_naming_the_address(api: V2Api, fake_api: FakeApi) -> None:
    senders = fake_api.get("/brands/default/senders").mock(
        return_value=httpx.Response(200, json=senders_page(("9", "a@x.test", False)))
    )
    with pytest.raises(ApiRejected) as refused:
        await api.prepare(SESSION, EMAIL, REF, CTX)
    assert refused.value.kind is Rejection.FORBIDDEN
    assert refused.value.detail == "a@x.test is not a confirmed sender of account 1001"
    assert len(senders.calls) == 2  # looked once more in case it was confirmed since the list was cached


async def test_x_account_id_and_x_sender_id(api: V2Api, fake_api: FakeApi) -> None:
    senders = fake_api.get("/brands/default/senders").mock(
        return_value=httpx.Response(200, json=senders_page(("43", "other@x.test", True)))
    )
    emails = fake_api.post("/v2/emails").mock(
        return_value=httpx.Response(201, json={"email": "b@x.test", "data": {"id": "e-1", "status": "queued"}})
    )
    email = dataclasses.replace(EMAIL, headers={"X-Account-Id": "1002", "X-Sender-Id": "43"})
    plan = await api.prepare(SESSION, email, REF, CTX)
    assert plan.account_id == "1002"
    assert parse_qs(senders.calls.last.request.url.query.decode())["account_id"] == ["1002"]
    await plan.deliveries[0].send(SESSION, CTX)
    assert parse_qs(emails.calls.last.request.url.query.decode())["account_id"] == ["1002"]
    assert json.loads(emails.calls.last.request.content)["sender"] == {"id": "43"}
    with pytest.raises(ApiRejected) as foreign:
        await api.prepare(SESSION, dataclasses.replace(EMAIL, headers={"X-Account-Id": "9"}), REF, CTX)
    assert foreign.value.kind is Rejection.FORBIDDEN and "X-Account-Id" in foreign.value.detail
    with pytest.raises(ApiRejected) as unknown:
        await api.prepare(SESSION, dataclasses.replace(EMAIL, headers={"X-Sender-Id": "404"}), REF, CTX)
    assert "X-Sender-Id" in unknown.value.detail


async def _one_delivery(api: V2Api, fake_api: FakeApi) -> object:
    fake_api.get("/brands/default/senders").mock(
        return_value=httpx.Response(200, json=senders_page(("7", "a@x.test", True)))
    )
    return (await api.prepare(SESSION, EMAIL, REF, CTX)).deliveries[0]


async def test_a_lost_answer_is_ambiguous_and_never_repeated_an_unavailable_api_is_retried(
    api: V2Api, fake_api: FakeApi
) -> None:
    delivery = await _one_delivery(api, fake_api)
    emails = fake_api.post("/v2/emails").mock(return_value=LOST)
    with pytest.raises(ApiUnavailable) as lost:
        await delivery.send(SESSION, CTX)  # type: ignore[attr-defined]
    assert lost.value.ambiguous and not lost.value.retryable
    assert len(emails.calls) == 1
    emails.mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(502),
            httpx.Response(201, json={"email": "b@x.test", "data": {"id": "e-9", "status": "queued"}}),
        ]
    )
    assert await delivery.send(SESSION, CTX) == "e-9"  # type: ignore[attr-defined]


async def test_a_201_rejected_recipient_is_a_refusal(api: V2Api, fake_api: FakeApi) -> None:
    delivery = await _one_delivery(api, fake_api)
    fake_api.post("/v2/emails").mock(
        return_value=httpx.Response(201, json={"email": "b@x.test", "data": {"id": "e-1", "status": "rejected"}})
    )
    with pytest.raises(ApiRejected) as refused:
        await delivery.send(SESSION, CTX)  # type: ignore[attr-defined]
    assert refused.value.kind is Rejection.RECIPIENT


async def test_the_activity_logs_settle_a_lost_answer(api: V2Api, fake_api: FakeApi) -> None:
    delivery = await _one_delivery(api, fake_api)
    logs = fake_api.get("/v2/logs/emails").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "pagination": {"page": 1, "has_more": True},
                    "data": [{"email_id": "other", "type": "queued", "email": "z@x.test", "subject": "s"}],
                },
            ),
            httpx.Response(
                200,
                json={
                    "pagination": {"page": 2, "has_more": False},
                    "data": [{"email_id": "e-5", "type": "queued", "email": "b@x.test", "subject": "s"}],
                },
            ),
        ]
    )
    assert await delivery.find_previous(SESSION, 1_800_000_000.5, CTX) == "e-5"  # type: ignore[attr-defined]
    query = parse_qs(logs.calls[0].request.url.query.decode())
    assert (query["start_time"], query["end_time"]) == (["1799999970"], ["1800000031"])
    logs.mock(return_value=httpx.Response(200, json={"pagination": {"has_more": False}, "data": []}))
    assert await delivery.find_previous(SESSION, 1_800_000_000, CTX) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("attachment_size", [None, 0, 1, 100_001])
async def test_the_api_receives_exactly_the_shared_body_sent_whole_or_streamed(
    api: V2Api, fake_api: FakeApi, attachment_size: int | None
) -> None:
    """Without attachments the body goes as one bytes object, with them as streamed pieces: either way the API reads
    the bytes SharedBody frames for the recipient, with a Content-Length and no chunked encoding."""
    senders = senders_page(("7", "a@x.test", True))
    fake_api.get("/brands/default/senders").mock(return_value=httpx.Response(200, json=senders))
    emails = fake_api.post("/v2/emails").mock(
        return_value=httpx.Response(201, json={"email": "b@x.test", "data": {"id": "e-1", "status": "queued"}})
    )
    attachments = ()
    if attachment_size is not None:
        data = bytes(random.Random(attachment_size).randrange(256) for _ in range(attachment_size))
        attachments = (OutgoingAttachment("invoice.pdf", "application/pdf", "", False, data),)
    email = dataclasses.replace(EMAIL, subject="Grüße \u2603", attachments=attachments)
    plan = await api.prepare(SESSION, email, REF, CTX)
    (delivery,) = plan.deliveries
    assert await delivery.send(SESSION, CTX) == "e-1"
    body = delivery.body  # type: ignore[attr-defined]
    length, pieces = body.for_recipient("b@x.test")
    expected = b"".join(pieces)
    request = emails.calls.last.request
    assert request.content == expected
    assert int(request.headers["Content-Length"]) == length == len(expected)
    assert "Transfer-Encoding" not in request.headers
    assert json.loads(request.content)["email"] == "b@x.test"
