"""The web inbox's pure core: one view of both record flavors, the search language, cid images, the body's CSP."""

from __future__ import annotations

import base64
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cakemail_sandbox.inbox.routes import Pages, logs_command
from cakemail_sandbox.inbox.views import (
    AttachmentView,
    Query,
    body_csp,
    content_disposition,
    message_view,
    resolve_cid_images,
)
from cakemail_sandbox.store import EmailRecord, V2EmailRecord
from tests.sandbox.conftest import valid_email, valid_v2_email

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def v1_record(**changes: Any) -> EmailRecord:
    payload = valid_email(**changes)
    sizes = tuple(len(base64.b64decode(a["content"])) for a in payload.get("attachments") or ())
    return EmailRecord(
        message_id="m1",
        account_id="acct-demo",
        received_at="2026-12-01T07:45:44.118681+00:00",
        request_id="corr-1",
        idempotency_key="key-1",
        payload=payload,
        attachment_sizes=sizes,
    )


def v2_record(status: str = "queued", **changes: Any) -> V2EmailRecord:
    payload = valid_v2_email("2", **changes)
    posted = payload.get("attachment")
    items = [] if posted is None else posted if isinstance(posted, list) else [posted]
    return V2EmailRecord(
        id="0b7c6a52-8f39-4bd1-9d5e-5b0f3f0d1a10",
        account_id=1001,
        email=payload["email"],
        status=status,
        received_at="2026-12-01T08:00:01.5+00:00",
        submitted_time=0.0,
        request_id=None,
        payload=payload,
        sender_email="ann@example.com",
        sender_name="Ann",
        attachment_sizes=tuple(len(base64.b64decode(item["content"])) for item in items),
    )


def test_a_v1_record_shows_every_recipient_its_headers_and_api_fields() -> None:
    view = message_view(
        v1_record(cc=[{"email": "carol@example.org"}], bcc=[{"email": "dave@example.com", "name": "Dave"}])
    )
    assert (view.id, view.flavor, view.status, view.time) == ("m1", "v1", "queued", "07:45:44")
    assert str(view.sender) == "Ann <ann@example.com>"
    assert [(r.kind, str(r.mailbox)) for r in view.recipients] == [
        ("to", "Bob <bob@example.net>"),
        ("cc", "carol@example.org"),
        ("bcc", "Dave <dave@example.com>"),
    ]
    assert (view.subject, view.html, view.text, view.request_id) == ("Hello", "<p>Hi Bob</p>", "Hi Bob\n", "corr-1")
    assert view.headers == (("Message-ID", "<1@example.com>"),)
    assert dict(view.api_fields) == {
        "message_id": "m1",
        "account_id": "acct-demo",
        "idempotency_key": "key-1",
        "envelope_from": "bounces@example.com",
        "reply_to": "ann+reply@example.com",
    }
    [attachment] = view.attachments
    assert (attachment.download_name, attachment.media_type, attachment.size) == ("note.txt", "text/plain", 5)
    assert attachment.decoded() == b"hello" and not attachment.inline and not attachment.displayable
    assert view.raw["payload"]["attachments"] == [
        {"filename": "note.txt", "content_type": "text/plain", "disposition": "attachment", "size": 5}
    ]


def test_a_v2_record_shows_sender_tags_tracking_list_and_additional_headers() -> None:
    view = message_view(v2_record(status="rejected"))
    assert (view.flavor, view.status, view.subject, view.request_id) == ("v2", "rejected", "Hello", None)
    assert str(view.sender) == "Ann <ann@example.com>"
    assert [(r.kind, r.mailbox.email) for r in view.recipients] == [("to", "bob@example.net")]
    assert view.tags == ("welcome", "msg-1")
    assert view.headers == (("Reply-To", "ann+reply@example.com"),)
    fields = dict(view.api_fields)
    assert fields["list_id"] == "7" and fields["content.type"] == "transactional"
    assert fields["content.encoding"] == "utf-8" and fields["sender.id"] == "2" and fields["account_id"] == "1001"
    assert fields["tracking"] == "opens off, clicks_html on, clicks_text off"
    assert [(a.download_name, a.media_type, a.size) for a in view.attachments] == [
        ("report-2024.pdf", "application/pdf", 5),
        ("invite.ics", "text/calendar", 15),
    ]
    assert view.attachments[1].decoded() == b"BEGIN:VCALENDAR"
    assert all("content" not in item for item in view.raw["payload"]["attachment"])


def test_a_v2_single_attachment_object_and_no_optional_fields() -> None:
    payload_changes = {
        "attachment": {"filename": "logo.png", "type": "png", "content": PNG},
        "tags": None,
        "tracking": None,
        "list_id": None,
        "additional_headers": None,
    }
    view = message_view(v2_record(**payload_changes))
    [logo] = view.attachments
    assert logo.displayable and logo.media_type == "image/png"
    assert view.tags == () and view.headers == ()
    assert "list_id" not in dict(view.api_fields)
    assert dict(view.api_fields)["tracking"] == "opens on, clicks_html on, clicks_text on"


@pytest.mark.parametrize(
    ("q", "v1_matches", "v2_matches"),
    [
        ("", True, True),
        ("bob", True, True),  # both are to bob@example.net
        ("BOB@EXAMPLE.NET", True, True),
        ("carol", True, False),  # a cc recipient of the v1 one only
        ("to:carol", True, False),
        ("from:ann", True, True),
        ("from:bob", False, False),
        ("subject:hello", True, True),
        ("subject:invoice", False, False),
        ("tag:welcome", False, True),
        ("welcome", False, True),  # a bare word looks at tags too
        ("tag:msg", False, True),
        ("bob tag:welcome", False, True),  # every word must match
        ("bob nothing-like-this", False, False),
        ("unknown:field", False, False),  # not a field prefix: a plain word
    ],
)
def test_search_words_and_field_prefixes(q: str, v1_matches: bool, v2_matches: bool) -> None:
    query = Query.parse(q)
    v1 = message_view(v1_record(cc=[{"email": "carol@example.org"}]))
    v2 = message_view(v2_record())
    assert (query.matches(v1), query.matches(v2)) == (v1_matches, v2_matches)


def _attachment(content_id: str | None, media_type: str = "image/png") -> AttachmentView:
    return AttachmentView(0, "logo.png", media_type, media_type, 8, True, content_id, PNG)


@pytest.mark.parametrize(
    ("html", "attachments", "expected"),
    [
        ('<img src="cid:logo@x">', [_attachment("logo@x")], f'<img src="data:image/png;base64,{PNG}">'),
        ("<img src='CID:logo@x'>", [_attachment("<logo@x>")], f"<img src='data:image/png;base64,{PNG}'>"),
        ('<img src="cid:other">', [_attachment("logo@x")], '<img src="cid:other">'),
        # SVG can carry script: never turned into an image source.
        ('<img src="cid:logo@x">', [_attachment("logo@x", "image/svg+xml")], '<img src="cid:logo@x">'),
        ('<img src="cid:logo@x">', [], '<img src="cid:logo@x">'),
        ("<p>no images</p>", [_attachment("logo@x")], "<p>no images</p>"),
    ],
)
def test_cid_references_become_data_uris_for_raster_images_only(
    html: str, attachments: list[AttachmentView], expected: str
) -> None:
    assert resolve_cid_images(html, tuple(attachments)) == expected


def test_the_body_policy_allows_no_script_and_remote_images_only_when_asked() -> None:
    strict = body_csp(remote_images=False)
    assert "default-src 'none'" in strict and "img-src data:;" in strict and "sandbox" in strict
    assert "script-src" not in strict and "http" not in strict
    assert "img-src data: http: https:;" in body_csp(remote_images=True)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        ("café.pdf", "attachment; filename=\"caf_.pdf\"; filename*=UTF-8''caf%C3%A9.pdf"),
        ('a";\r\nX: y.txt', "attachment; filename=\"a____X: y.txt\"; filename*=UTF-8''a%22%3B%0D%0AX%3A%20y.txt"),
    ],
)
def test_download_names_cannot_break_out_of_the_header(filename: str, expected: str) -> None:
    assert content_disposition("attachment", filename) == expected


@pytest.mark.parametrize(
    ("request_id", "expected"),
    [
        ("0f1e2d3c4b5a", "jq -c 'select(.request_id == \"0f1e2d3c4b5a\")' gateway.log"),
        ("corr-v2", "jq -c 'select(.request_id == \"corr-v2\")' gateway.log"),
        ("x'; rm -rf ~; '", None),  # untrusted: never pasted into a command
        ("", None),
        (None, None),
    ],
)
def test_the_logs_command_only_for_ids_safe_in_a_shell(request_id: str | None, expected: str | None) -> None:
    assert logs_command(request_id) == expected


# ---- rendering: nothing from a message ever becomes markup ----

PIECES = ["<", ">", '"', "'", "&", "a", " ", "<script>", "</textarea>", " onerror=", "javascript:", "\u2028", "é", "{{"]
hostile = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
any_text = st.one_of(hostile, st.text(max_size=30))
PAGES = Pages()


class _Markup(HTMLParser):
    """The elements (with their attribute names) of a page, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: set[tuple[str, tuple[str, ...]]] = set()
        self.scripts: list[str | None] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.add((tag, tuple(sorted(name for name, _ in attrs))))
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _pages(view: Any) -> list[str]:
    return [
        PAGES.render("_rows.html", messages=[view]),
        PAGES.render("message.html", message=view, remote_images=False, logs_command=logs_command(view.request_id)),
    ]


def _record(subject: str, name: str, tag: str, header: str, filename: str, text: str) -> V2EmailRecord:
    record = v2_record(
        content={"subject": subject, "text": text, "html": "<script>x</script>", "type": "transactional"},
        tags=[tag],
        additional_headers=[{"name": header, "value": header}],
        attachment={"filename": filename, "type": "png", "content": PNG},
    )
    return replace(record, sender_name=name, email=f"{header}@example.com", request_id=header)


# What the templates produce for harmless content, with every optional part present and absent.
HARMLESS = [
    _pages(message_view(_record(*values)))
    for values in [
        ("Hello", "Ann", "t", "X-Id", "a.png", "Hi"),
        ("", "", "", "", "", ""),
        ("a", "b", "c", "d e", "", ""),
    ]
]
ALLOWED = [set().union(*(_Markup(pages[i]).elements for pages in HARMLESS)) for i in range(2)]


@SETTINGS
@given(subject=any_text, name=any_text, tag=any_text, header=any_text, filename=any_text, text=any_text)
def test_message_content_is_only_ever_text_in_the_pages(
    subject: str, name: str, tag: str, header: str, filename: str, text: str
) -> None:
    view = message_view(_record(subject, name, tag, header, filename, text))
    for page, allowed, shown_values in zip(_pages(view), ALLOWED, [(subject, tag), (subject, tag, text)], strict=True):
        markup = _Markup(page)
        # Only elements (with the attribute names) the templates make for harmless content: nothing was injected.
        assert markup.elements <= allowed
        assert markup.scripts in ([], ["/inbox/static/inbox.js"])
        shown = "".join(markup.text)
        for value in shown_values:
            assert value.strip() in shown
