"""The v2 wire format, pure, by table: control headers, what the API cannot carry, content rules, answers."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiIntegrationError,
    ApiMfaRequired,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    Rejection,
)
from forwarder.api.model import Mailbox, OutgoingAttachment, OutgoingEmail
from forwarder.api.v2 import wire
from tests.unit.forwarder.samples import EMAIL

SENDER = wire.Sender(id="7", email="a@x.test", name="A", confirmed=True)
FILENAME = re.compile(r"^[a-zA-Z0-9-_]+\.(csv|doc|docx|ics|jpeg|pdf|png|xls|xlsx)$")


def payload(email: OutgoingEmail, **overrides: object) -> dict[str, object]:
    controls = wire.read_controls(email.headers)
    attachments = tuple(wire.api_attachment(a, i) for i, a in enumerate(email.attachments))
    options: dict[str, object] = {"default_api_type": "transactional", "default_list_id": None, **overrides}
    return wire.email_payload(
        email,
        sender=SENDER,
        controls=controls,
        attachments=attachments,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, wire.Controls()),
        ({"X-Tags": "a, b-1,c_2,a"}, wire.Controls(tags=("a", "b-1", "c_2"))),
        ({"x-list-id": " 12 "}, wire.Controls(list_id=12)),
        ({"X-Email-API-Type": "Marketing"}, wire.Controls(api_type="marketing")),
        (
            {"X-Track-Opens": "false", "X-Track-Clicks-HTML": "yes", "X-Track-Clicks-Text": "0"},
            wire.Controls(tracking=(("opens", False), ("clicks_html", True), ("clicks_text", False))),
        ),
        ({"X-Account-Id": "1002", "X-Sender-Id": "43"}, wire.Controls(account_id="1002", sender_id="43")),
    ],
)
def test_control_headers_are_read(headers: dict[str, str], expected: wire.Controls) -> None:
    assert wire.read_controls(headers) == expected


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"X-Tags": "ok, not ok"}, "X-Tags"),
        ({"X-Tags": "x" * 256}, "X-Tags"),
        ({"X-List-Id": "twelve"}, "X-List-Id"),
        ({"X-List-Id": "0"}, "X-List-Id"),
        ({"X-List-Id": "1, 2"}, "X-List-Id"),
        ({"X-Email-API-Type": "newsletter"}, "X-Email-API-Type"),
        ({"X-Track-Opens": "maybe"}, "X-Track-Opens"),
        ({"X-Account-Id": "-3"}, "X-Account-Id"),
        ({"X-Sender-Id": "  "}, "X-Sender-Id"),
    ],
)
def test_a_bad_control_header_is_refused_naming_it(headers: dict[str, str], named: str) -> None:
    with pytest.raises(ApiRejected) as refused:
        wire.read_controls(headers)
    assert refused.value.kind is Rejection.INVALID
    assert refused.value.detail.startswith(f"header {named}: ")


def test_control_headers_steer_the_call_and_are_not_delivered_every_other_header_is() -> None:
    email = dataclasses.replace(
        EMAIL,
        sender=Mailbox("a@x.test", "Ann"),
        reply_to=Mailbox("help@x.test", "Help"),
        headers={
            "Message-ID": "<m@x.test>",
            "X-Tags": "t1,t2",
            "X-List-Id": "5",
            "X-Email-API-Type": "marketing",
            "X-Track-Opens": "off",
            "In-Reply-To": "<p@x.test>",
            "X-Custom": "v",
        },
    )
    body = payload(email, default_list_id=9)
    assert body["sender"] == {"id": "7", "name": "Ann"}
    assert body["list_id"] == 5
    assert body["tags"] == ["t1", "t2"]
    assert body["tracking"] == {"opens": False}
    assert body["content"] == {"subject": "s", "text": "t", "encoding": "utf-8", "type": "marketing"}
    assert body["additional_headers"] == [
        {"name": "Reply-To", "value": "Help <help@x.test>"},
        {"name": "In-Reply-To", "value": "<p@x.test>"},
        {"name": "X-Custom", "value": "v"},
    ]
    assert "email" not in body and "to" not in body and "cc" not in body  # each recipient gets its own copy


def test_settings_fill_in_what_the_headers_did_not_say() -> None:
    body = payload(EMAIL, default_api_type="marketing", default_list_id=9)
    assert (body["content"]["type"], body["list_id"]) == ("marketing", 9)  # type: ignore[index]
    assert "tags" not in body and "tracking" not in body and "additional_headers" not in body


@pytest.mark.parametrize(
    ("subject", "text", "html", "content"),
    [
        ("", "body", "", {"subject": "(no subject)", "text": "body"}),
        ("  ", "body", "", {"subject": "(no subject)", "text": "body"}),
        ("disk full", "", "", {"subject": "disk full", "text": "disk full"}),  # a subject-only alert
        ("disk full", "\r\n", "", {"subject": "disk full", "text": "disk full"}),
        ("", "", "", {"subject": "(no subject)", "text": "(no subject)"}),
        ("s", "", "<p>h</p>", {"subject": "s", "html": "<p>h</p>"}),
        ("s", "t", "<p>h</p>", {"subject": "s", "html": "<p>h</p>", "text": "t"}),
    ],
)
def test_the_schema_s_non_empty_rules_are_met(subject: str, text: str, html: str, content: dict[str, str]) -> None:
    body = wire.content(dataclasses.replace(EMAIL, subject=subject, text_body=text, html_body=html), "transactional")
    assert body == {**content, "encoding": "utf-8", "type": "transactional"}


def _attachment(
    filename: str, content_type: str = "application/octet-stream", inline: bool = False
) -> OutgoingAttachment:
    return OutgoingAttachment(filename, content_type, "cid-1" if inline else "", inline, b"data")


@pytest.mark.parametrize(
    ("attachment", "filename", "kind"),
    [
        (_attachment("invoice.pdf", "application/pdf"), "invoice.pdf", "pdf"),
        (_attachment("Invoice 2024 (final).PDF"), "Invoice_2024_final.pdf", "pdf"),
        (_attachment("photo.jpg", "image/jpeg"), "photo.jpeg", "jpeg"),
        (_attachment("Résumé.docx"), "Resume.docx", "docx"),
        (_attachment("C:\\Users\\ann\\sheet.xlsx"), "sheet.xlsx", "xlsx"),
        (_attachment("invite.ics", "text/calendar"), "invite.ics", "calendar"),
        (_attachment("", "application/pdf"), "attachment-1.pdf", "pdf"),
        (_attachment("no-extension", "text/csv; charset=utf-8"), "no-extension.csv", "csv"),
        (_attachment("logo.png", "image/png", inline=True), "logo.png", "png"),  # inline parts become attachments
        (_attachment("日本.pdf"), "attachment-1.pdf", "pdf"),
    ],
)
def test_attachments_are_mapped_to_the_api_s_types_and_filename_pattern(
    attachment: OutgoingAttachment, filename: str, kind: str
) -> None:
    mapped = wire.api_attachment(attachment, 0)
    assert (mapped.filename, mapped.type) == (filename, kind)
    assert FILENAME.match(mapped.filename)


@pytest.mark.parametrize(
    "attachment",
    [
        _attachment("setup.exe", "application/x-msdownload"),
        _attachment("notes.txt", "text/plain"),
        _attachment("logo.gif", "image/gif", inline=True),
        _attachment("archive", "application/zip"),
        _attachment("report.pdf.zip", "application/zip"),
    ],
)
def test_attachments_the_api_cannot_carry_are_refused_naming_them_and_the_accepted_types(
    attachment: OutgoingAttachment,
) -> None:
    with pytest.raises(ApiRejected) as refused:
        wire.api_attachment(attachment, 0)
    assert refused.value.kind is Rejection.UNSUPPORTED
    assert repr(attachment.filename) in refused.value.detail
    assert "csv, doc, docx, ics, jpeg, jpg, pdf, png, xls, xlsx" in refused.value.detail


@given(st.text(max_size=40), st.sampled_from(["pdf", "PNG", "jpg", "csv", "xlsx", "ics"]))
def test_every_accepted_filename_matches_the_api_s_pattern(stem: str, extension: str) -> None:
    mapped = wire.api_attachment(_attachment(f"{stem}.{extension}"), 3)
    assert FILENAME.match(mapped.filename)


@pytest.mark.parametrize("sizes", [(), (0,), (4,), (1, 2, 3), (3 * 256 * 1024 + 1, 5)])
def test_the_shared_body_is_the_payload_with_each_recipient(sizes: tuple[int, ...]) -> None:
    attachments = tuple(
        OutgoingAttachment(f"f{i}.pdf", "application/pdf", "", False, bytes(range(256)) * (n // 256) + b"x" * (n % 256))
        for i, n in enumerate(sizes)
    )
    email = dataclasses.replace(EMAIL, subject="caf\u00e9 \u2603", attachments=attachments)
    mapped = tuple(wire.api_attachment(a, i) for i, a in enumerate(attachments))
    head = payload(dataclasses.replace(email, attachments=()))
    shared = wire.SharedBody.build(head, mapped)
    length, pieces = shared.for_recipient("b\u00f6b@x.test")
    data = b"".join(pieces)
    assert len(data) == length
    assert json.loads(data) == {"email": "b\u00f6b@x.test", **payload(email)}
    assert shared.payload("eve@x.test")["email"] == "eve@x.test"
    if attachments:
        assert [base64.b64decode(a["content"]) for a in json.loads(data)["attachment"]] == [a.data for a in attachments]


@pytest.mark.parametrize(
    ("route", "status", "body", "expected", "retryable", "ambiguous"),
    [
        ("emails", 503, None, ApiUnavailable, True, False),
        ("emails", 502, None, ApiUnavailable, True, False),
        ("emails", 500, None, ApiUnavailable, False, True),
        ("emails", 504, None, ApiUnavailable, False, True),
        ("senders", 504, None, ApiUnavailable, True, False),
        ("auth", 401, {"detail": [{"msg": "bad", "type": "unauthorized"}]}, ApiCredentialsRejected, None, None),
        ("auth", 401, {"challenge": "c-1"}, ApiMfaRequired, None, None),
        (
            "auth",
            422,
            {"detail": [{"msg": "not an email", "loc": ["body", "username"]}]},
            ApiCredentialsRejected,
            None,
            None,
        ),
        ("emails", 429, None, ApiRateLimited, None, None),
        ("emails", 404, {"detail": [{"msg": "nope"}]}, ApiIntegrationError, None, None),
    ],
)
def test_answers_are_classified_once(
    route: str,
    status: int,
    body: object,
    expected: type[Exception],
    retryable: bool | None,
    ambiguous: bool | None,
) -> None:
    error = wire.classify(route, status, None, body)
    assert type(error) is expected
    if retryable is not None:
        assert isinstance(error, ApiUnavailable)
        assert (error.retryable, error.ambiguous) == (retryable, ambiguous)


def test_400_and_422_details_reach_the_reply_text() -> None:
    body = {
        "detail": [
            {"loc": ["body", "content", "subject"], "msg": "String should have at least 1 character", "type": "x"},
            {"loc": ["body", "sender", "id"], "msg": "Sender is not confirmed", "type": "bad_request"},
        ]
    }
    error = wire.classify("emails", 422, None, body)
    assert isinstance(error, ApiRejected) and error.kind is Rejection.INVALID
    assert (
        error.detail == "content.subject: String should have at least 1 character; sender.id: Sender is not confirmed"
    )
    assert wire.classify("emails", 201, None, {}) is None


@pytest.mark.parametrize("status", ["rejected", "error"])
def test_a_201_that_says_rejected_or_error_is_a_refusal_never_a_success(status: str) -> None:
    with pytest.raises(ApiRejected) as refused:
        wire.parse_submit_answer({"email": "r@x.test", "data": {"id": "e-1", "status": status}})
    assert refused.value.kind is Rejection.RECIPIENT
    assert refused.value.detail == f"r@x.test: Cakemail answered {status}"
    assert wire.parse_submit_answer({"email": "r@x.test", "data": {"id": "e-2", "status": "queued"}}) == "e-2"
    with pytest.raises(ValueError):
        wire.parse_submit_answer({"data": {"id": "e-3", "status": "later"}})


def test_token_answers() -> None:
    session = wire.parse_token(
        {
            "access_token": "at",
            "token_type": "bearer",
            "expires_in": 900,
            "refresh_token": "rt",
            "accounts": [1001, 1002],
        },
        "u@x.test",
    )
    assert (session.access_token, session.accounts, session.account_id, session.refresh_token) == (
        "at",
        ("1001", "1002"),
        "1001",
        "rt",
    )
    with pytest.raises(ApiMfaRequired):
        wire.parse_token({"challenge": "c"}, "u@x.test")  # the schema's 200 form
    with pytest.raises(ValueError):
        wire.parse_token({"access_token": "at", "accounts": ["x"]}, "u@x.test")


def test_a_lost_answer_is_found_in_the_logs_unless_that_email_was_refused() -> None:
    page = wire.logs_page(
        {
            "pagination": {"has_more": True},
            "data": [
                {"email_id": "e-1", "type": "rejected", "email": "bob@x.test", "subject": "s"},
                {"email_id": "e-1", "type": "submitted", "email": "bob@x.test", "subject": "s"},
                {"email_id": "e-2", "type": "queued", "email": "eve@x.test", "subject": "s"},
                {"email_id": "e-3", "type": "queued", "email": "Bob@X.test", "subject": "other"},
                {"email_id": "e-4", "type": "queued", "email": "BOB@x.test", "subject": "s"},
            ],
        },
        recipient="bob@x.test",
        subject="s",
    )
    assert page.has_more
    assert page.events == (("e-1", "rejected"), ("e-1", "submitted"), ("e-4", "queued"))
    assert wire.taken_email_id(list(page.events)) == "e-4"
    assert wire.taken_email_id([("e-1", "submitted"), ("e-1", "rejected")]) is None
