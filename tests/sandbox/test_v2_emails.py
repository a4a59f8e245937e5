"""POST /v2/emails and GET /v2/emails/{id}: the real API's schema, confirmed senders, rejected recipients, accounts."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import (
    DEMO_ACCOUNT_ID,
    DEMO_SECOND_ACCOUNT_ID,
    SHARED_LIMITS,
    StartSandbox,
    bearer,
    conforms,
    email_headers,
    login,
    make_settings,
    recorded,
    send_v2,
    sender_id,
    stats,
    v2_token,
    valid_email,
    valid_v2_email,
)
from tests.sandbox.test_v2_tokens import assert_detail


async def test_accepted_email_answers_201_and_is_recorded_as_posted(
    client: httpx.AsyncClient, token: str, ann: str
) -> None:
    payload = valid_v2_email(ann)

    response = await send_v2(client, token, payload)
    [record] = await recorded(client)
    [light] = await recorded(client, content=False)

    assert response.status_code == 201
    body = response.json()
    assert conforms("SubmitEmailResponse", body)
    assert body == {"email": "bob@example.net", "object": "email", "submitted": True, "data": body["data"]}
    assert body["data"]["status"] == "queued"
    assert str(uuid.UUID(body["data"]["id"])) == body["data"]["id"]
    assert set(record) == {"flavor", "id", "account_id", "email", "status", "received_at", "request_id", "payload"}
    assert (record["flavor"], record["id"], record["account_id"]) == ("v2", body["data"]["id"], DEMO_ACCOUNT_ID)
    assert (record["email"], record["status"], record["request_id"]) == ("bob@example.net", "queued", "corr-v2")
    assert record["payload"] == payload
    assert abs(datetime.fromisoformat(record["received_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert light["payload"]["attachment"] == [
        {"filename": "report-2024.pdf", "type": "pdf", "size": 5},
        {"filename": "invite.ics", "type": "calendar", "size": 15},
    ]
    assert (await stats(client))["v2_email_calls"] == 1
    assert (await stats(client))["emails_recorded"] == 1


async def test_a_single_attachment_object_and_a_minimal_body_are_accepted(
    client: httpx.AsyncClient, token: str, ann: str
) -> None:
    attachment = {"filename": "data.csv", "type": "csv", "content": "YSxiCg=="}
    minimal = {
        "email": "c@example.org",
        "sender": {"id": ann},
        "content": {"subject": "s", "text": "t", "type": "marketing"},
    }

    single = await send_v2(client, token, {**minimal, "attachment": attachment})
    bare = await send_v2(client, token, minimal)
    light = await recorded(client, content=False)

    assert (single.status_code, bare.status_code) == (201, 201)
    assert light[0]["payload"]["attachment"] == {"filename": "data.csv", "type": "csv", "size": 4}
    assert "attachment" not in light[1]["payload"]


async def test_the_same_email_twice_is_two_emails(client: httpx.AsyncClient, token: str, ann: str) -> None:
    first = await send_v2(client, token, valid_v2_email(ann))
    second = await send_v2(client, token, valid_v2_email(ann))

    assert first.json()["data"]["id"] != second.json()["data"]["id"], "the v2 API has no idempotency"
    assert len(await recorded(client)) == 2


def content(**changes: Any) -> dict[str, Any]:
    return {"subject": "Hello", "text": "Hi", "type": "transactional", **changes}


INVALID: list[tuple[str, dict[str, Any], list[Any], str]] = [
    ("no-sender", {"sender": None}, ["body", "sender"], "missing"),
    ("no-content", {"content": None}, ["body", "content"], "missing"),
    ("no-email", {"email": None}, ["body", "email"], "missing"),
    ("email-invalid", {"email": "bob at example.net"}, ["body", "email"], "value_error"),
    ("email-not-string", {"email": 5}, ["body", "email"], "string_type"),
    ("sender-id-empty", {"sender": {"id": ""}}, ["body", "sender", "id"], "string_too_short"),
    ("sender-without-id", {"sender": {"name": "Ann"}}, ["body", "sender", "id"], "missing"),
    ("no-subject", {"content": {"text": "t", "type": "marketing"}}, ["body", "content", "subject"], "missing"),
    ("empty-subject", {"content": content(subject="")}, ["body", "content", "subject"], "string_too_short"),
    ("no-type", {"content": {"subject": "s", "text": "t"}}, ["body", "content", "type"], "missing"),
    ("bad-type", {"content": content(type="bulk")}, ["body", "content", "type"], "enum"),
    ("bad-encoding", {"content": content(encoding="utf8")}, ["body", "content", "encoding"], "enum"),
    ("empty-html", {"content": content(html="")}, ["body", "content", "html"], "string_too_short"),
    ("nothing-to-send", {"content": {"subject": "s", "type": "marketing"}}, ["body", "content"], "value_error"),
    ("template-without-id", {"content": content(template={})}, ["body", "content", "template", "id"], "missing"),
    ("tag-pattern", {"tags": ["ok", "not ok"]}, ["body", "tags", 1], "string_pattern_mismatch"),
    ("tag-empty", {"tags": [""]}, ["body", "tags", 0], "string_too_short"),
    ("tags-not-list", {"tags": "a,b"}, ["body", "tags"], "list_type"),
    ("tracking-type", {"tracking": {"opens": "yes"}}, ["body", "tracking", "opens"], "bool_type"),
    (
        "header-no-value",
        {"additional_headers": [{"name": "X-A"}]},
        ["body", "additional_headers", 0, "value"],
        "missing",
    ),
    ("list-id-zero", {"list_id": 0}, ["body", "list_id"], "greater_than_equal"),
    ("list-id-string", {"list_id": "7"}, ["body", "list_id"], "int_type"),
    (
        "filename-pattern",
        {"attachment": {"filename": "notes.txt", "type": "pdf", "content": "aGk="}},
        ["body", "attachment", "filename"],
        "string_pattern_mismatch",
    ),
    (
        "filename-space",
        {"attachment": [{"filename": "my report.pdf", "type": "pdf", "content": "aGk="}]},
        ["body", "attachment", 0, "filename"],
        "string_pattern_mismatch",
    ),
    (
        "attachment-type",
        {"attachment": [{"filename": "a.pdf", "type": "application/pdf", "content": "aGk="}]},
        ["body", "attachment", 0, "type"],
        "enum",
    ),
    (
        "attachment-base64",
        {"attachment": {"filename": "a.pdf", "type": "pdf", "content": "aGk"}},
        ["body", "attachment", "content"],
        "string_pattern_mismatch",
    ),
    (
        "attachment-no-content",
        {"attachment": {"filename": "a.pdf", "type": "pdf"}},
        ["body", "attachment", "content"],
        "missing",
    ),
]


@pytest.mark.parametrize(("changes", "loc", "kind"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
async def test_invalid_bodies_get_422_naming_the_field(
    client: httpx.AsyncClient, token: str, ann: str, changes: dict[str, Any], loc: list[Any], kind: str
) -> None:
    payload = valid_v2_email(ann)
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value

    response = await send_v2(client, token, payload)

    detail = assert_detail(response, 422, kind)
    assert detail["loc"] == loc
    assert conforms("HTTPValidationError", response.json())
    assert await recorded(client) == []


@pytest.mark.parametrize(
    ("raw", "kind", "loc"),
    [
        (b'{"email": ', "json_invalid", ["body", 10]),
        (b"[]", "model_attributes_type", ["body"]),
        (b'{"email": NaN}', "json_invalid", ["body", 0]),
        (b"\xff", "json_invalid", ["body", 0]),
    ],
    ids=["truncated", "array", "nan", "not-utf8"],
)
async def test_bodies_that_are_not_json_objects_get_422(
    client: httpx.AsyncClient, token: str, raw: bytes, kind: str, loc: list[Any]
) -> None:
    response = await client.post(
        "/v2/emails", content=raw, headers={**bearer(token), "Content-Type": "application/json"}
    )

    detail = assert_detail(response, 422, kind)
    assert detail["loc"] == loc


async def test_a_body_over_the_limit_gets_413(client: httpx.AsyncClient, token: str, ann: str) -> None:
    huge = valid_v2_email(ann, content=content(text="x" * SHARED_LIMITS["max_request_bytes"]))

    response = await send_v2(client, token, huge)

    assert_detail(response, 413, "payload_too_large")
    assert await recorded(client) == []


@pytest.mark.parametrize(
    ("sender_email", "msg"),
    [("unconfirmed@example.com", "Sender is not confirmed"), (None, "Sender not found")],
    ids=["unconfirmed", "unknown"],
)
async def test_only_a_confirmed_sender_of_the_account_may_send(
    client: httpx.AsyncClient, token: str, sender_email: str | None, msg: str
) -> None:
    sender = await sender_id(client, token, sender_email) if sender_email else "no-such-sender"

    response = await send_v2(client, token, valid_v2_email(sender))

    detail = assert_detail(response, 400, "bad_request")
    assert (detail["msg"], detail["loc"]) == (msg, ["body", "sender", "id"])
    assert conforms("HTTPBadRequestError", response.json())
    assert await recorded(client) == []


async def test_a_sender_of_another_account_is_unknown_there(client: httpx.AsyncClient, token: str, ann: str) -> None:
    response = await send_v2(client, token, valid_v2_email(ann), account_id=DEMO_SECOND_ACCOUNT_ID)

    assert assert_detail(response, 400, "bad_request")["msg"] == "Sender not found"


async def test_a_sender_confirmed_at_run_time_may_send(client: httpx.AsyncClient, token: str) -> None:
    added = await client.post(
        "/sandbox/senders", json={"account_id": DEMO_ACCOUNT_ID, "email": "new@example.com", "confirmed": False}
    )
    refused = await send_v2(client, token, valid_v2_email(added.json()["id"]))
    confirmed = await client.post(
        "/sandbox/senders", json={"account_id": DEMO_ACCOUNT_ID, "email": "NEW@example.com", "confirmed": True}
    )
    accepted = await send_v2(client, token, valid_v2_email(added.json()["id"]))

    assert added.status_code == 201 and added.json()["confirmed"] is False
    assert refused.status_code == 400
    assert confirmed.status_code == 200 and confirmed.json()["id"] == added.json()["id"]
    assert accepted.status_code == 201


@pytest.mark.parametrize("recipient", ["rejected@example.com", "Rejected@Example.com"])
async def test_a_rejected_recipient_gets_201_with_status_rejected(
    client: httpx.AsyncClient, token: str, ann: str, recipient: str
) -> None:
    response = await send_v2(client, token, valid_v2_email(ann, email=recipient))
    [record] = await recorded(client)

    assert response.status_code == 201
    assert conforms("SubmitEmailResponse", response.json())
    assert response.json()["data"]["status"] == "rejected"
    assert (record["status"], record["email"]) == ("rejected", recipient)


async def test_rejected_recipients_are_configurable(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(rejected_recipients=["bounce-me@example.org"]))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        token = await v2_token(http)
        ann = await sender_id(http, token, "ann@example.com")
        configured = await send_v2(http, token, valid_v2_email(ann, email="bounce-me@example.org"))
        default = await send_v2(http, token, valid_v2_email(ann, email="rejected@example.com"))

    assert configured.json()["data"]["status"] == "rejected"
    assert default.json()["data"]["status"] == "queued"


async def test_account_id_must_be_one_of_the_tokens_accounts(client: httpx.AsyncClient, token: str, ann: str) -> None:
    second_sender = await sender_id(client, token, "demo@example.com", account_id=DEMO_SECOND_ACCOUNT_ID)

    other = await send_v2(client, token, valid_v2_email(second_sender), account_id=DEMO_SECOND_ACCOUNT_ID)
    foreign = await send_v2(client, token, valid_v2_email(ann), account_id=2001)
    zero = await send_v2(client, token, valid_v2_email(ann), account_id=0)
    text = await client.post("/v2/emails?account_id=abc", json=valid_v2_email(ann), headers=bearer(token))
    [record] = await recorded(client)

    assert other.status_code == 201
    assert record["account_id"] == DEMO_SECOND_ACCOUNT_ID
    assert_detail(foreign, 403, "forbidden")
    assert conforms("HTTPForbiddenError", foreign.json())
    assert assert_detail(zero, 422, "greater_than_equal")["loc"] == ["query", "account_id"]
    assert assert_detail(text, 422, "int_parsing")["loc"] == ["query", "account_id"]


async def test_get_email_shows_a_submitted_email(client: httpx.AsyncClient, token: str, ann: str) -> None:
    email_id = (await send_v2(client, token, valid_v2_email(ann))).json()["data"]["id"]

    response = await client.get(f"/v2/emails/{email_id}", headers=bearer(token))

    assert response.status_code == 200
    shown = response.json()
    assert conforms("GetEmailResponse", shown)
    assert (shown["email_id"], shown["status"], shown["email"]) == (email_id, "queued", "bob@example.net")
    assert shown["sender"] == {"id": ann, "name": "Ann", "email": "ann@example.com"}
    assert shown["content"] == {"subject": "Hello", "type": "transactional"}
    assert shown["tracking"] == {"opens": False, "clicks_html": True, "clicks_text": False}
    assert (shown["tags"], shown["list_id"]) == (["welcome", "msg-1"], 7)
    assert shown["additional_headers"] == [{"name": "Reply-To", "value": "ann+reply@example.com"}]


async def test_get_email_is_404_for_unknown_or_other_accounts_emails(
    client: httpx.AsyncClient, token: str, ann: str
) -> None:
    email_id = (await send_v2(client, token, valid_v2_email(ann))).json()["data"]["id"]

    unknown = await client.get(f"/v2/emails/{uuid.uuid4()}", headers=bearer(token))
    other_account = await client.get(
        f"/v2/emails/{email_id}", params={"account_id": DEMO_SECOND_ACCOUNT_ID}, headers=bearer(token)
    )
    not_uuid = await client.get("/v2/emails/42", headers=bearer(token))

    assert_detail(unknown, 404, "not_found")
    assert_detail(other_account, 404, "not_found")
    assert assert_detail(not_uuid, 422, "value_error")["loc"] == ["path", "email_id"]


async def test_v1_and_v2_records_share_the_inbox_oldest_first(client: httpx.AsyncClient, token: str, ann: str) -> None:
    api_key = await login(client)
    await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key))
    await send_v2(client, token, valid_v2_email(ann))

    v1, v2 = await recorded(client)

    assert (v1["flavor"], v2["flavor"]) == ("v1", "v2")
    assert set(v1) == {"flavor", "message_id", "account_id", "received_at", "request_id", "idempotency_key", "payload"}
    assert (await stats(client))["emails_recorded"] == 2


async def test_large_attachments_are_validated_too(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings())
    blob = base64.b64encode(bytes(range(256)) * 2048).decode()  # 512 KiB decoded: validated off the event loop
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        token = await v2_token(http)
        ann = await sender_id(http, token, "ann@example.com")
        good = await send_v2(
            http, token, valid_v2_email(ann, attachment={"filename": "big.png", "type": "png", "content": blob})
        )
        bad = await send_v2(
            http, token, valid_v2_email(ann, attachment={"filename": "big.png", "type": "png", "content": blob + "="})
        )
        [record] = await recorded(http, content=False)

    assert good.status_code == 201
    assert record["payload"]["attachment"]["size"] == 512 * 1024
    assert assert_detail(bad, 422, "string_pattern_mismatch")["loc"] == ["body", "attachment", "content"]
