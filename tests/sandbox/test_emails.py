"""POST /v1/emails and the inbox: accepted emails are recorded exactly as posted; anything else is refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import NO_V2_CALLS, SHARED_LIMITS, email_headers, recorded, stats, valid_email


async def test_accepted_email_is_queued_and_recorded_exactly_as_posted(client: httpx.AsyncClient, api_key: str) -> None:
    payload = valid_email()

    response = await client.post("/v1/emails", json=payload, headers=email_headers(api_key, "key-1", "corr-42"))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "queued"
    assert isinstance(body["message_id"], str) and body["message_id"]
    [record] = await recorded(client)
    assert record["payload"] == payload
    assert record["message_id"] == body["message_id"]
    assert (record["account_id"], record["request_id"], record["idempotency_key"]) == ("acct-demo", "corr-42", "key-1")
    received_at = datetime.fromisoformat(record["received_at"])
    assert abs(datetime.now(UTC) - received_at) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "payload",
    [
        valid_email(to=[{"email": "用户@例子.广告"}], **{"from": {"email": "josé@bücher.example", "name": "José"}}),
        valid_email(to=[], cc=[], bcc=[{"email": "hidden@example.net"}]),
        valid_email(text_body=None, html_body="<b>only html</b>"),
        valid_email(text_body="", html_body=""),  # attachments alone are content enough
        valid_email(envelope_from=""),  # the null reverse-path of bounces
        valid_email(
            attachments=[
                {
                    "filename": "",
                    "content": "",
                    "content_type": "image/png",
                    "content_id": "<i1>",
                    "disposition": "inline",
                }
            ]
        ),
        {"from": {"email": "ann@example.com"}, "to": [{"email": "bob@example.net"}], "text_body": "minimal"},
        valid_email(cc=None, bcc=None, reply_to=None, headers=None, subject=None),
    ],
    ids=["utf8-addresses", "bcc-only", "html-only", "attachments-only", "null-sender", "inline", "minimal", "nulls"],
)
async def test_valid_variants_are_accepted(client: httpx.AsyncClient, api_key: str, payload: dict[str, Any]) -> None:
    response = await client.post("/v1/emails", json=payload, headers=email_headers(api_key))

    assert response.status_code == 200, response.text
    [record] = await recorded(client)
    assert record["payload"] == payload


def _without(key: str) -> dict[str, Any]:
    payload = valid_email()
    del payload[key]
    return payload


BAD_ATTACHMENT = valid_email()["attachments"][0]

INVALID_EMAILS: list[tuple[str, Any, str | None]] = [
    ("missing-from", _without("from"), "from"),
    ("from-not-object", valid_email(**{"from": "ann@example.com"}), "from"),
    ("from-without-email", valid_email(**{"from": {"name": "Ann"}}), "from.email"),
    ("from-no-at", valid_email(**{"from": {"email": "ann.example.com"}}), "from.email"),
    ("from-two-at", valid_email(**{"from": {"email": "ann@x@example.com"}}), "from.email"),
    ("from-empty-local", valid_email(**{"from": {"email": "@example.com"}}), "from.email"),
    ("from-empty-domain", valid_email(**{"from": {"email": "ann@"}}), "from.email"),
    ("from-space", valid_email(**{"from": {"email": "ann smith@example.com"}}), "from.email"),
    ("from-control-char", valid_email(**{"from": {"email": "ann\x07@example.com"}}), "from.email"),
    ("from-unknown-field", valid_email(**{"from": {"email": "ann@example.com", "mail": "x"}}), "from.mail"),
    ("no-recipients", valid_email(to=[], cc=[], bcc=[]), "to"),
    ("recipients-absent", {k: v for k, v in valid_email().items() if k not in ("to", "cc", "bcc")}, "to"),
    ("to-not-array", valid_email(to={"email": "bob@example.net"}), "to"),
    ("to-without-email", valid_email(to=[{"name": "Bob"}]), "to[0].email"),
    ("cc-implausible", valid_email(cc=[{"email": "carol@example.net"}, {"email": "carol"}]), "cc[1].email"),
    ("bcc-implausible", valid_email(bcc=[{"email": "dave@exa mple.net"}]), "bcc[0].email"),
    ("name-with-newline", valid_email(to=[{"email": "bob@example.net", "name": "Bob\r\nBcc: x"}]), "to[0].name"),
    ("reply-to-implausible", valid_email(reply_to={"email": "nobody"}), "reply_to.email"),
    ("envelope-from-implausible", valid_email(envelope_from="bounces"), "envelope_from"),
    ("no-content", valid_email(text_body="", html_body="", attachments=[]), "text_body"),
    (
        "no-content-absent",
        {k: v for k, v in valid_email().items() if k not in ("text_body", "html_body", "attachments")},
        "text_body",
    ),
    ("subject-not-string", valid_email(subject=["Hello"]), "subject"),
    ("subject-with-newline", valid_email(subject="Hi\r\nBcc: x@example.com"), "subject"),
    ("header-injection", valid_email(headers={"X-Test": "a\r\nBcc: x@example.com"}), "headers.X-Test"),
    ("header-bad-name", valid_email(headers={"X Test": "a"}), "headers.X Test"),
    ("header-not-string", valid_email(headers={"X-Count": 3}), "headers.X-Count"),
    (
        "attachment-bad-base64",
        valid_email(attachments=[{**BAD_ATTACHMENT, "content": "not base64!"}]),
        "attachments[0].content",
    ),
    (
        "attachment-bad-padding",
        valid_email(attachments=[{**BAD_ATTACHMENT, "content": "aGVsbG8"}]),
        "attachments[0].content",
    ),
    (
        "attachment-no-content",
        valid_email(attachments=[{k: v for k, v in BAD_ATTACHMENT.items() if k != "content"}]),
        "attachments[0].content",
    ),
    (
        "attachment-bad-disposition",
        valid_email(attachments=[{**BAD_ATTACHMENT, "disposition": "embedded"}]),
        "attachments[0].disposition",
    ),
    (
        "attachment-bad-type",
        valid_email(attachments=[{**BAD_ATTACHMENT, "content_type": "text"}]),
        "attachments[0].content_type",
    ),
    (
        "attachment-no-filename",
        valid_email(attachments=[{k: v for k, v in BAD_ATTACHMENT.items() if k != "filename"}]),
        "attachments[0].filename",
    ),
    ("unknown-field", valid_email(text="Hi"), "text"),
    ("body-is-array", [valid_email()], None),
]


@pytest.mark.parametrize(
    ("payload", "field"), [case[1:] for case in INVALID_EMAILS], ids=[case[0] for case in INVALID_EMAILS]
)
async def test_invalid_email_gets_400_naming_the_field(
    client: httpx.AsyncClient, api_key: str, payload: Any, field: str | None
) -> None:
    response = await client.post("/v1/emails", json=payload, headers=email_headers(api_key))

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["field"]) == ("validation_error", field)
    assert body["message"]
    assert await recorded(client) == []


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe{}", b'{"text_body": NaN}', b""],
    ids=["broken-json", "not-utf8", "nan", "empty"],
)
async def test_non_json_gets_400(client: httpx.AsyncClient, api_key: str, content: bytes) -> None:
    headers = {**email_headers(api_key), "Content-Type": "application/json"}
    response = await client.post("/v1/emails", content=content, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert response.json()["field"] is None


async def test_invalid_idempotency_key_gets_400(client: httpx.AsyncClient, api_key: str) -> None:
    response = await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "k" * 256))

    assert response.status_code == 400
    assert response.json()["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-key", "Basic ZGVtbzpkZW1v", "{key}"],
    ids=["missing", "empty", "unknown", "basic", "no-scheme"],
)
async def test_bad_bearer_token_gets_401(client: httpx.AsyncClient, api_key: str, authorization: str | None) -> None:
    headers = {"Idempotency-Key": "k"} | ({"Authorization": authorization.format(key=api_key)} if authorization else {})

    response = await client.post("/v1/emails", json=valid_email(), headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await recorded(client) == []


async def test_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient, api_key: str) -> None:
    response = await client.post("/v1/emails", json=valid_email(), headers={"Authorization": f"bearer {api_key}"})

    assert response.status_code == 200


async def test_body_over_the_request_limit_gets_413(client: httpx.AsyncClient, api_key: str) -> None:
    payload = valid_email(text_body="x" * SHARED_LIMITS["max_request_bytes"])

    response = await client.post("/v1/emails", json=payload, headers=email_headers(api_key))

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert await recorded(client) == []


async def test_attachment_over_the_attachment_limit_gets_413(client: httpx.AsyncClient, api_key: str) -> None:
    limit = SHARED_LIMITS["max_attachment_bytes"]
    fits = {**valid_email()["attachments"][0], "content": base64.b64encode(b"a" * limit).decode()}
    too_big = {**fits, "content": base64.b64encode(b"a" * (limit + 1)).decode()}

    accepted = await client.post("/v1/emails", json=valid_email(attachments=[fits]), headers=email_headers(api_key))
    refused = await client.post(
        "/v1/emails", json=valid_email(attachments=[fits, too_big]), headers=email_headers(api_key)
    )

    assert accepted.status_code == 200
    assert refused.status_code == 413
    assert (refused.json()["error"], refused.json()["field"]) == ("payload_too_large", "attachments[1].content")
    assert len(await recorded(client)) == 1


async def test_inbox_without_content_lists_attachment_sizes(client: httpx.AsyncClient, api_key: str) -> None:
    data = bytes(range(256)) * 3
    attachment = {"filename": "b.bin", "content": base64.b64encode(data).decode(), "content_type": "application/zip"}
    payload = valid_email(attachments=[attachment, valid_email()["attachments"][0]])
    assert (await client.post("/v1/emails", json=payload, headers=email_headers(api_key))).status_code == 200

    [full] = await recorded(client)
    [light] = await recorded(client, content=False)

    assert full["payload"] == payload
    assert light["payload"]["attachments"] == [
        {"filename": "b.bin", "content_type": "application/zip", "size": len(data)},
        {"filename": "note.txt", "content_type": "text/plain", "disposition": "attachment", "size": 5},
    ]
    assert {k: v for k, v in light["payload"].items() if k != "attachments"} == {
        k: v for k, v in payload.items() if k != "attachments"
    }
    assert all("content" not in attachment for attachment in light["payload"]["attachments"])


async def test_inbox_is_newest_last_and_delete_clears_it(client: httpx.AsyncClient, api_key: str) -> None:
    for subject in ("one", "two", "three"):
        response = await client.post("/v1/emails", json=valid_email(subject=subject), headers=email_headers(api_key))
        assert response.status_code == 200

    subjects = [record["payload"]["subject"] for record in await recorded(client)]
    deleted = await client.delete("/sandbox/emails")

    assert subjects == ["one", "two", "three"]
    assert deleted.status_code == 204
    assert await recorded(client) == []
    assert (await stats(client))["emails_recorded"] == 3, "clearing the inbox leaves the counters alone"


async def test_stats_count_calls_and_recorded_emails(client: httpx.AsyncClient, api_key: str) -> None:
    await client.post("/v1/auth/validate", json={"username": "demo@example.com", "password": "nope"})
    await client.post("/v1/emails", json=valid_email(), headers=email_headers(api_key))
    await client.post("/v1/emails", json=valid_email(to=[]), headers=email_headers(api_key))
    await client.get("/v1/health")

    assert await stats(client) == {"auth_calls": 2, "email_calls": 2, "emails_recorded": 1, **NO_V2_CALLS}
    assert (await client.delete("/sandbox/stats")).status_code == 204
    assert await stats(client) == {"auth_calls": 0, "email_calls": 0, "emails_recorded": 0, **NO_V2_CALLS}


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_unknown_routes_and_parameters_answer_in_the_api_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing")
    wrong_method = await client.get("/v1/emails")
    bad_parameter = await client.get("/sandbox/emails", params={"content": "perhaps"})

    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert (bad_parameter.status_code, bad_parameter.json()["error"]) == (400, "validation_error")
    assert bad_parameter.json()["field"] == "content"
