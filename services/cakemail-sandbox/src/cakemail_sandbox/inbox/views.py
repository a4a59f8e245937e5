"""What the web inbox shows of a recorded email, the same for both record flavors: a pure mapping, tested by table.

Everything here is data; escaping is the templates' job (Jinja2 autoescape), and the HTML body is only ever served as
its own document under a strict CSP (routes.py), never into the inbox page.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cakemail_sandbox.store import EmailRecord, Record, V2EmailRecord

# The v2 API names an attachment's type, not its media type.
V2_MEDIA_TYPES = {
    "csv": "text/csv",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "calendar": "text/calendar",
    "jpeg": "image/jpeg",
    "pdf": "application/pdf",
    "png": "image/png",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Raster images a browser shows without running anything: the only attachments served for display (SVG can script).
DISPLAYABLE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
SEARCH_FIELDS = ("from", "to", "subject", "tag")
_CID_REFERENCE = re.compile(r"cid:([^\s\"'()<>]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Mailbox:
    email: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True, slots=True)
class Recipient:
    kind: str  # "to", "cc", "bcc"
    mailbox: Mailbox


@dataclass(frozen=True, slots=True)
class AttachmentView:
    index: int
    filename: str
    media_type: str  # type/subtype, no parameters
    content_type: str  # as recorded (v1 may carry parameters)
    size: int
    inline: bool
    content_id: str | None
    content: str  # base64, as posted

    @property
    def displayable(self) -> bool:
        return self.media_type in DISPLAYABLE_IMAGES

    @property
    def download_name(self) -> str:
        return self.filename or f"attachment-{self.index + 1}"

    def decoded(self) -> bytes:
        try:
            return base64.b64decode(self.content, validate=True)
        except (binascii.Error, ValueError):  # recorded emails were validated; this is defence only
            return b""


@dataclass(frozen=True, slots=True)
class MessageView:
    id: str
    flavor: str  # "v1" or "v2"
    received_at: str
    sender: Mailbox
    recipients: tuple[Recipient, ...]
    subject: str
    tags: tuple[str, ...]
    status: str  # "queued" or "rejected"
    request_id: str | None
    html: str | None
    text: str | None
    headers: tuple[tuple[str, str], ...]
    api_fields: tuple[tuple[str, str], ...]
    attachments: tuple[AttachmentView, ...]
    record: Record

    @property
    def raw(self) -> dict[str, Any]:
        """The record as GET /sandbox/emails?content=0 shows it (built on demand: the list never needs it)."""
        return self.record.to_json(content=False)

    @property
    def time(self) -> str:
        """HH:MM:SS of the ISO 8601 receive time (UTC, as recorded)."""
        _, _, clock = self.received_at.partition("T")
        return clock[:8] or self.received_at

    def raw_json(self) -> str:
        return json.dumps(self.raw, indent=2, ensure_ascii=False)

    def attachment(self, index: int) -> AttachmentView | None:
        return self.attachments[index] if 0 <= index < len(self.attachments) else None


def record_id(record: Record) -> str:
    return record.message_id if isinstance(record, EmailRecord) else record.id


def message_view(record: Record) -> MessageView:
    return _v1_view(record) if isinstance(record, EmailRecord) else _v2_view(record)


def _mailbox(value: Any) -> Mailbox:
    if not isinstance(value, dict):
        return Mailbox("")
    return Mailbox(str(value.get("email") or ""), str(value.get("name") or ""))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _v1_view(record: EmailRecord) -> MessageView:
    payload = record.payload
    recipients = tuple(
        Recipient(kind, _mailbox(mailbox)) for kind in ("to", "cc", "bcc") for mailbox in payload.get(kind) or ()
    )
    posted = payload.get("attachments") or ()
    attachments = tuple(
        AttachmentView(
            index=index,
            filename=str(item.get("filename") or ""),
            media_type=_media_type(str(item.get("content_type") or "")),
            content_type=str(item.get("content_type") or "application/octet-stream"),
            size=size,
            inline=item.get("disposition") == "inline",
            content_id=item.get("content_id") or None,
            content=str(item.get("content") or ""),
        )
        for index, (item, size) in enumerate(zip(posted, record.attachment_sizes, strict=False))
    )
    fields = [
        ("message_id", record.message_id),
        ("account_id", record.account_id),
        ("idempotency_key", record.idempotency_key or ""),
        ("envelope_from", _shown(payload.get("envelope_from")) if payload.get("envelope_from") is not None else ""),
        ("reply_to", str(_mailbox(payload["reply_to"])) if payload.get("reply_to") else ""),
    ]
    headers = payload.get("headers") or {}
    return MessageView(
        id=record.message_id,
        flavor="v1",
        received_at=record.received_at,
        sender=_mailbox(payload.get("from")),
        recipients=recipients,
        subject=str(payload.get("subject") or ""),
        tags=(),
        status="queued",
        request_id=record.request_id,
        html=payload.get("html_body") or None,
        text=payload.get("text_body") or None,
        headers=tuple((str(name), _shown(value)) for name, value in headers.items()),
        api_fields=tuple((name, value) for name, value in fields if value),
        attachments=attachments,
        record=record,
    )


def _v2_attachments(record: V2EmailRecord) -> tuple[AttachmentView, ...]:
    posted = record.payload.get("attachment")
    items = [] if posted is None else posted if isinstance(posted, list) else [posted]
    views = []
    for index, (item, size) in enumerate(zip(items, record.attachment_sizes, strict=False)):
        media_type = V2_MEDIA_TYPES.get(str(item.get("type")), "application/octet-stream")
        views.append(
            AttachmentView(
                index=index,
                filename=str(item.get("filename") or ""),
                media_type=media_type,
                content_type=media_type,
                size=size,
                inline=False,
                content_id=None,
                content=str(item.get("content") or ""),
            )
        )
    return tuple(views)


def _v2_view(record: V2EmailRecord) -> MessageView:
    payload = record.payload
    content = payload.get("content") or {}
    tracking = {"opens": True, "clicks_html": True, "clicks_text": True, **(payload.get("tracking") or {})}
    template = content.get("template")
    fields = [
        ("email_id", record.id),
        ("account_id", str(record.account_id)),
        ("sender.id", str((payload.get("sender") or {}).get("id") or "")),
        ("list_id", str(payload["list_id"]) if payload.get("list_id") is not None else ""),
        ("contact_id", str(payload["contact_id"]) if payload.get("contact_id") is not None else ""),
        ("content.type", str(content.get("type") or "")),
        ("content.encoding", str(content.get("encoding") or "")),
        ("content.template.id", _shown(template.get("id")) if isinstance(template, dict) else ""),
        ("tracking", ", ".join(f"{name} {'on' if on else 'off'}" for name, on in tracking.items())),
    ]
    headers = payload.get("additional_headers") or []
    return MessageView(
        id=record.id,
        flavor="v2",
        received_at=record.received_at,
        sender=Mailbox(record.sender_email, record.sender_name),
        recipients=(Recipient("to", Mailbox(record.email)),),
        subject=str(content.get("subject") or ""),
        tags=tuple(str(tag) for tag in payload.get("tags") or ()),
        status=record.status,
        request_id=record.request_id,
        html=content.get("html") or None,
        text=content.get("text") or None,
        headers=tuple((str(header.get("name")), _shown(header.get("value"))) for header in headers),
        api_fields=tuple((name, value) for name, value in fields if value),
        attachments=_v2_attachments(record),
        record=record,
    )


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower() or "application/octet-stream"


# ---- search ----


@dataclass(frozen=True, slots=True)
class Query:
    """`q` of the search box: words that must all match. `from:`, `to:`, `subject:`, `tag:` narrow a word to one
    field; a bare word matches any of them. Case-insensitive substrings."""

    terms: tuple[tuple[str | None, str], ...]

    @classmethod
    def parse(cls, text: str) -> Query:
        terms: list[tuple[str | None, str]] = []
        for word in text.split():
            field, colon, value = word.partition(":")
            if colon and field.lower() in SEARCH_FIELDS and value:
                terms.append((field.lower(), value.lower()))
            else:
                terms.append((None, word.lower()))
        return cls(tuple(terms))

    def matches(self, view: MessageView) -> bool:
        haystacks = {
            "from": [view.sender.email.lower(), view.sender.name.lower()],
            "to": [part.lower() for r in view.recipients for part in (r.mailbox.email, r.mailbox.name)],
            "subject": [view.subject.lower()],
            "tag": [tag.lower() for tag in view.tags],
        }
        for field, value in self.terms:
            fields = [field] if field else list(SEARCH_FIELDS)
            if not any(value in text for name in fields for text in haystacks[name]):
                return False
        return True


# ---- the HTML body's document ----


def resolve_cid_images(html: str, attachments: tuple[AttachmentView, ...]) -> str:
    """`cid:` references to displayable inline images become data: URIs (the only images the strict CSP allows);
    other `cid:` references are left as they are (and so stay blank)."""
    by_cid = {
        attachment.content_id.strip("<>"): attachment
        for attachment in attachments
        if attachment.content_id and attachment.displayable
    }
    if not by_cid:
        return html

    def data_uri(match: re.Match[str]) -> str:
        found = by_cid.get(match.group(1).strip("<>"))
        if found is None:
            return match.group(0)
        return f"data:{found.media_type};base64,{found.content}"

    return _CID_REFERENCE.sub(data_uri, html)


def body_csp(*, remote_images: bool) -> str:
    """The HTML body's own policy: no scripts, no requests, no forms; images only from data: (resolved cid:), or
    also from http(s) when the reader asked for remote images."""
    images = "data: http: https:" if remote_images else "data:"
    return (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; font-src data:; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
    )


def content_disposition(kind: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the UTF-8 name, so no filename can break out of the header."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in filename) or "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
