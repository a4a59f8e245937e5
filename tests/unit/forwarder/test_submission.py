"""The submission use case with the real in-memory delivery record and a scripted API flavor (this unit test's
stand-in for forwarder.api; the HTTP side has its own tests): each recipient sent at most once per message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.context import CallContext
from forwarder.api.errors import ApiCredentialsRejected, ApiRejected, ApiUnavailable, Rejection
from forwarder.api.interface import Delivery, Submission
from forwarder.api.model import MessageRef, OutgoingEmail, Session
from forwarder.delivery import MemoryDeliveryRecord, RecipientKey, RecordUnavailable
from forwarder.metrics import ForwarderMetrics
from forwarder.submission.assembly import AssembledMessage
from forwarder.submission.service import DeliveryInFlight, SubmissionService

CTX = CallContext("rid")
Script = Callable[[str], str]  # recipient -> email id, or raises


@dataclass
class ScriptedDelivery:
    recipient: str
    api: ScriptedApi

    @property
    def recipients(self) -> tuple[str, ...]:
        return (self.recipient,)

    async def send(self, session: Session, ctx: CallContext) -> str:
        self.api.sent.append((self.recipient, session.access_token))
        return self.api.script(self.recipient)

    async def find_previous(self, session: Session, since: float, ctx: CallContext) -> str | None:
        self.api.lookups.append(self.recipient)
        if isinstance(self.api.previous, Exception):
            raise self.api.previous
        return self.api.previous


@dataclass
class ScriptedApi:
    script: Script
    previous: str | Exception | None = None
    sent: list[tuple[str, str]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    sign_ins: int = 0

    async def sign_in(self, username: str, password: str, previous: Session | None, ctx: CallContext) -> Session:
        self.sign_ins += 1
        return Session(f"token-{self.sign_ins}", ("1001",), username, 900)

    async def prepare(
        self, session: Session, email: OutgoingEmail, message: MessageRef, ctx: CallContext
    ) -> Submission:
        deliveries: tuple[Delivery, ...] = tuple(ScriptedDelivery(r, self) for r in email.recipients)
        return Submission("1001", deliveries, needs_record=True)

    async def aclose(self) -> None:
        return None


def queued(recipient: str) -> str:
    return f"id-{recipient}"


def message(*rcpts: str, identity: str = "<m@x.test>") -> AssembledMessage:
    start = pb.MessageStart(
        credentials=pb.Credentials(username="u@x.test", password="p"),
        envelope=pb.Envelope(mail_from="a@x.test", rcpt_tos=list(rcpts)),
        headers=pb.MessageHeaders(subject="s"),
    )
    getattr(start.headers, "from").CopyFrom(pb.Address(email="a@x.test"))
    return AssembledMessage(start, "t", "", (), identity, "digest", 1)


def service(
    api: ScriptedApi, record: MemoryDeliveryRecord | None = None
) -> tuple[SubmissionService, MemoryDeliveryRecord]:
    record = record if record is not None else MemoryDeliveryRecord(retention_seconds=3600, max_entries=100)
    submission = SubmissionService(
        api, record, ForwarderMetrics(CollectorRegistry()), token_ttl_cap_seconds=900, token_cache_max_entries=10
    )
    return submission, record


async def test_a_resend_sends_only_to_the_recipients_that_failed() -> None:
    failing = {"c@x.test"}

    def script(recipient: str) -> str:
        if recipient in failing:
            raise ApiUnavailable("HTTP 503")  # an answer: definitely not queued
        return queued(recipient)

    api = ScriptedApi(script)
    submit, _ = service(api)
    first = await submit.submit(message("b@x.test", "c@x.test"), CTX)
    assert [(o.recipient, o.email_id, type(o.error)) for o in first] == [
        ("b@x.test", "id-b@x.test", type(None)),
        ("c@x.test", None, ApiUnavailable),
    ]
    failing.clear()
    second = await submit.submit(message("b@x.test", "C@X.test"), CTX)
    assert [(o.recipient, o.email_id, o.already_sent) for o in second] == [
        ("b@x.test", "id-b@x.test", True),
        ("C@X.test", "id-C@X.test", False),
    ]
    assert [r for r, _ in api.sent] == ["b@x.test", "c@x.test", "C@X.test"]
    third = await submit.submit(message("b@x.test", "c@x.test"), CTX)
    assert all(o.already_sent for o in third) and len(api.sent) == 3
    other = await submit.submit(message("b@x.test", identity="<other@x.test>"), CTX)  # another message
    assert not other[0].already_sent and len(api.sent) == 4


async def test_a_permanent_refusal_frees_the_recipient_a_lost_answer_keeps_it_ambiguous() -> None:
    def script(recipient: str) -> str:
        if recipient == "r@x.test":
            raise ApiRejected(Rejection.RECIPIENT, "r@x.test: Cakemail answered rejected")
        raise ApiUnavailable("ReadTimeout", ambiguous=True)

    api = ScriptedApi(script, previous="id-found")
    submit, _ = service(api)
    outcomes = await submit.submit(message("r@x.test", "lost@x.test"), CTX)
    assert [type(o.error) for o in outcomes] == [ApiRejected, ApiUnavailable]
    api.script = queued
    again = await submit.submit(message("r@x.test", "lost@x.test"), CTX)
    # The refused one is asked again; the lost one is looked up first and found: not sent again.
    assert [(o.recipient, o.email_id, o.already_sent) for o in again] == [
        ("r@x.test", "id-r@x.test", False),
        ("lost@x.test", "id-found", True),
    ]
    assert api.lookups == ["lost@x.test"]
    assert [r for r, _ in api.sent] == ["r@x.test", "lost@x.test", "r@x.test"]


@pytest.mark.parametrize(
    ("previous", "sent_again", "deferred"), [(None, True, False), (ApiUnavailable("logs down"), False, True)]
)
async def test_an_ambiguous_recipient_not_found_is_sent_and_an_unsettled_one_is_deferred(
    previous: Exception | None, sent_again: bool, deferred: bool
) -> None:
    api = ScriptedApi(queued, previous=previous)
    submit, record = service(api)
    key = RecipientKey("1001", "<m@x.test>", "b@x.test")
    await record.claim(key, lease_seconds=10)
    await record.mark_ambiguous(key, 1000.0)
    [outcome] = await submit.submit(message("b@x.test"), CTX)
    assert (len(api.sent) == 1) is sent_again
    assert isinstance(outcome.error, ApiUnavailable) is deferred
    if deferred:  # still ambiguous: the next resend looks again
        [later] = await submit.submit(message("b@x.test"), CTX)
        assert api.lookups == ["b@x.test", "b@x.test"]
        assert later.error is not None


async def test_a_recipient_another_attempt_holds_is_deferred_not_sent() -> None:
    api = ScriptedApi(queued)
    submit, record = service(api)
    await record.claim(RecipientKey("1001", "<m@x.test>", "b@x.test"), lease_seconds=60)
    [outcome] = await submit.submit(message("b@x.test"), CTX)
    assert isinstance(outcome.error, DeliveryInFlight) and api.sent == []


class DeadRecord(MemoryDeliveryRecord):
    async def claim(self, key: RecipientKey, *, lease_seconds: float) -> object:  # type: ignore[override]
        raise RecordUnavailable("redis down")


async def test_no_record_no_send() -> None:
    api = ScriptedApi(queued)
    submit, _ = service(api, DeadRecord(retention_seconds=1, max_entries=1))
    [outcome] = await submit.submit(message("b@x.test"), CTX)
    assert isinstance(outcome.error, RecordUnavailable) and api.sent == []


class ForgetfulRecord(MemoryDeliveryRecord):
    async def mark_sent(self, key: RecipientKey, email_id: str) -> None:
        raise RecordUnavailable("redis went away")


async def test_a_sent_recipient_is_reported_sent_even_if_the_record_cannot_say_so() -> None:
    submit, _ = service(ScriptedApi(queued), ForgetfulRecord(retention_seconds=60, max_entries=10))
    [outcome] = await submit.submit(message("b@x.test"), CTX)
    assert (outcome.email_id, outcome.error) == ("id-b@x.test", None)


async def test_a_cancelled_send_is_marked_ambiguous() -> None:
    started = asyncio.Event()

    async def hang(session: Session, ctx: CallContext) -> str:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    api = ScriptedApi(queued)
    submit, record = service(api)
    original = ScriptedDelivery.send
    ScriptedDelivery.send = lambda self, session, ctx: hang(session, ctx)  # type: ignore[method-assign]
    try:
        task = asyncio.create_task(submit.submit(message("b@x.test"), CTX))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
    finally:
        ScriptedDelivery.send = original  # type: ignore[method-assign]
    claim = await record.claim(RecipientKey("1001", "<m@x.test>", "b@x.test"), lease_seconds=10)
    assert claim.state.value == "ambiguous"


async def test_a_stale_token_is_renewed_once() -> None:
    calls = 0

    def script(recipient: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ApiCredentialsRejected("401")
        return queued(recipient)

    api = ScriptedApi(script)
    submit, _ = service(api)
    [outcome] = await submit.submit(message("b@x.test"), CTX)
    assert outcome.email_id == "id-b@x.test"
    assert [token for _, token in api.sent] == ["token-1", "token-2"]


class StaleLookupApi(ScriptedApi):
    """The first session's token is revoked before the lost answer is looked up: the lookup says 401 for it."""

    async def prepare(
        self, session: Session, email: OutgoingEmail, message: MessageRef, ctx: CallContext
    ) -> Submission:
        return Submission("1001", tuple(StaleLookupDelivery(r, self) for r in email.recipients), needs_record=True)


@dataclass
class StaleLookupDelivery(ScriptedDelivery):
    async def find_previous(self, session: Session, since: float, ctx: CallContext) -> str | None:
        self.api.lookups.append(session.access_token)
        if session.access_token == "token-1":
            raise ApiCredentialsRejected("401")
        return "id-found"


async def test_a_stale_token_during_the_lost_answer_lookup_is_renewed_not_reported_as_bad_credentials() -> None:
    api = StaleLookupApi(queued)
    submit, record = service(api)
    key = RecipientKey("1001", "<m@x.test>", "b@x.test")
    await record.claim(key, lease_seconds=10)
    await record.mark_ambiguous(key, 1000.0)
    [outcome] = await submit.submit(message("b@x.test"), CTX)
    assert (outcome.email_id, outcome.already_sent, outcome.error) == ("id-found", True, None)
    assert api.lookups == ["token-1", "token-2"] and api.sent == []
