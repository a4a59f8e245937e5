"""The sandbox keeps at most SANDBOX_MAX_EMAILS records and SANDBOX_MAX_EMAIL_BYTES of bodies and attachments:
the oldest go first, the newest is always kept, 0 means no bound (store.Inbox)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from cakemail_sandbox.activity import ActivityLog, LogEntry
from cakemail_sandbox.store import EmailRecord, Inbox, V2EmailRecord, stored_bytes
from tests.sandbox.conftest import (
    StartSandbox,
    make_settings,
    recorded,
    send_v2,
    sender_id,
    v2_token,
    valid_v2_email,
)


def _v2(n: int, attachment_bytes: int = 0) -> V2EmailRecord:
    payload: dict[str, Any] = {"content": {"subject": "s", "text": "t" * n}}
    if attachment_bytes:
        payload["attachment"] = [{"filename": "a.pdf", "type": "pdf", "content": "A" * attachment_bytes}]
    return V2EmailRecord(
        id=f"id-{n}-{attachment_bytes}",
        account_id=1,
        email="b@example.net",
        status="queued",
        received_at="",
        submitted_time=0.0,
        request_id=None,
        payload=payload,
        sender_email="a@example.com",
        sender_name="",
    )


def test_what_a_record_holds_is_its_bodies_and_attachments() -> None:
    assert stored_bytes(_v2(10)) == 10
    assert stored_bytes(_v2(10, attachment_bytes=1000)) == 1010
    v1 = EmailRecord("m", "acct", "", None, None, {"html_body": "<p>x</p>", "attachments": [{"content": "QUJD"}]})
    assert stored_bytes(v1) == 8 + 4


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=500), max_size=40),
    max_records=st.integers(min_value=0, max_value=10),
    max_bytes=st.integers(min_value=0, max_value=2000),
)
def test_the_newest_records_within_both_bounds_are_kept(sizes: list[int], max_records: int, max_bytes: int) -> None:
    inbox = Inbox(max_records, max_bytes)
    records = [_v2(i, attachment_bytes=size) for i, size in enumerate(sizes)]
    for record in records:
        inbox.add(record)

    # The longest suffix within both bounds, and never less than the newest one.
    expected: list[V2EmailRecord] = []
    held = 0
    for record in reversed(records):
        size = stored_bytes(record)
        fits = (not max_records or len(expected) < max_records) and (not max_bytes or held + size <= max_bytes)
        if expected and not fits:
            break
        expected.insert(0, record)
        held += size
    assert inbox.all() == expected
    assert inbox.bytes_held == (held if max_bytes else 0)
    kept = {record.id for record in expected}
    assert all((inbox.v2_email(r.id) is not None) == (r.id in kept) for r in records)


async def test_a_running_sandbox_forgets_its_oldest_emails_past_its_bounds(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(max_emails=3, max_email_bytes=0))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        token = await v2_token(http)
        ann = await sender_id(http, token, "ann@example.com")
        ids = []
        for n in range(5):
            sent = await send_v2(http, token, valid_v2_email(ann, email=f"r{n}@example.net"))
            ids.append(sent.json()["data"]["id"])
        kept = [record["email"] for record in await recorded(http, content=False)]
        forgotten = await http.get(f"/v2/emails/{ids[0]}", headers={"Authorization": f"Bearer {token}"})
        newest = await http.get(f"/v2/emails/{ids[-1]}", headers={"Authorization": f"Bearer {token}"})

    assert kept == ["r2@example.net", "r3@example.net", "r4@example.net"]
    assert (forgotten.status_code, newest.status_code) == (404, 200)


async def test_a_byte_bound_forgets_large_messages_first_in_first_out(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(max_emails=0, max_email_bytes=300_000))
    blob = base64.b64encode(b"\0" * 150_000).decode()  # 200,000 bytes as posted
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        token = await v2_token(http)
        ann = await sender_id(http, token, "ann@example.com")
        attachment = {"filename": "big.pdf", "type": "pdf", "content": blob}
        for n in range(3):
            await send_v2(http, token, valid_v2_email(ann, email=f"big{n}@example.net", attachment=attachment))
        await send_v2(http, token, valid_v2_email(ann, email="small@example.net"))
        kept = [record["email"] for record in await recorded(http, content=False)]

    assert kept == ["big2@example.net", "small@example.net"]


def test_the_activity_log_keeps_the_newest_events_within_the_bound() -> None:
    def event(n: int) -> LogEntry:
        return LogEntry("queued", f"e{n}", 1, float(n), float(n), "b@example.net", "s", (), "", "a@example.com")

    bounded, unbounded = ActivityLog(3), ActivityLog(0)
    for n in range(10):
        bounded.add(event(n))
        unbounded.add(event(n))

    def ids(log: ActivityLog) -> list[str]:
        return [found.email_id for found in log.query(1, start_time=0, end_time=100, sort="time")]

    assert ids(bounded) == ["e7", "e8", "e9"]
    assert ids(unbounded) == [f"e{n}" for n in range(10)]
