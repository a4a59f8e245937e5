"""The v2 flavor's wire format (the real Cakemail API, OpenAPI 1.18.25), in ONE place: the message -> the
POST /v2/emails payload (with the control headers and what the API cannot carry decided here), and every answer
classified once. Pure: no I/O. Rules: docs/mapping.md; contract: docs/cakemail-api.md.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import formataddr
from typing import Any

from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiError,
    ApiIntegrationError,
    ApiMfaRequired,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    Rejection,
)
from forwarder.api.http import parse_retry_after
from forwarder.api.model import OutgoingAttachment, OutgoingEmail, Session

TOKEN_PATH = "/token"  # noqa: S105 (a path, not a secret)
SENDERS_PATH = "/brands/default/senders"
EMAILS_PATH = "/v2/emails"
LOGS_PATH = "/v2/logs/emails"
SENDERS_PER_PAGE = 50
LOGS_PER_PAGE = 100

API_TYPES = ("marketing", "transactional")
NO_SUBJECT = "(no subject)"
ENCODING = "utf-8"

# The API's attachment types, and the file extension its filename pattern wants for each.
ATTACHMENT_EXTENSIONS = {
    "csv": "csv",
    "doc": "doc",
    "docx": "docx",
    "calendar": "ics",
    "jpeg": "jpeg",
    "pdf": "pdf",
    "png": "png",
    "xls": "xls",
    "xlsx": "xlsx",
}
ACCEPTED_EXTENSIONS = ", ".join(sorted(set(ATTACHMENT_EXTENSIONS.values()) | {"jpg"}))
_TYPE_BY_EXTENSION = {ext: kind for kind, ext in ATTACHMENT_EXTENSIONS.items()} | {"jpg": "jpeg"}
_TYPE_BY_CONTENT_TYPE = {
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/calendar": "calendar",
    "application/ics": "calendar",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "application/pdf": "pdf",
    "image/png": "png",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_FILENAME_STEM_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_STEM = 100

# Headers read by Cakemail's own SMTP relay: they steer the API call and are never delivered.
CONTROL_HEADERS = frozenset(
    {
        "x-tags",
        "x-list-id",
        "x-email-api-type",
        "x-track-opens",
        "x-track-clicks-html",
        "x-track-clicks-text",
        "x-account-id",
        "x-sender-id",
    }
)
# Never passed as additional headers: the API writes them itself for each recipient's copy.
_NOT_PASSED = frozenset({"message-id"})
_TAG = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_TRACKING = {"x-track-opens": "opens", "x-track-clicks-html": "clicks_html", "x-track-clicks-text": "clicks_text"}


@dataclass(frozen=True, slots=True)
class Controls:
    """What the control headers asked for; None/empty: not asked (settings or API defaults apply)."""

    tags: tuple[str, ...] = ()
    list_id: int | None = None
    api_type: str | None = None
    tracking: tuple[tuple[str, bool], ...] = ()
    account_id: str | None = None
    sender_id: str | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    id: str
    email: str
    name: str
    confirmed: bool


@dataclass(frozen=True, slots=True)
class ApiAttachment:
    filename: str
    type: str
    data: bytes | bytearray


def _bad_header(name: str, why: str) -> ApiRejected:
    return ApiRejected(Rejection.INVALID, f"header {name}: {why}")


def _positive_int(name: str, value: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise _bad_header(name, f"{text!r} is not a positive integer")
    return int(text)


def read_controls(headers: Mapping[str, str]) -> Controls:
    """The control headers, validated; raises ApiRejected(INVALID) naming the header whose value is wrong."""
    found = {name.lower(): (name, value) for name, value in headers.items() if name.lower() in CONTROL_HEADERS}
    tags: tuple[str, ...] = ()
    if "x-tags" in found:
        name, value = found["x-tags"]
        tags = tuple(dict.fromkeys(tag.strip() for tag in value.split(",") if tag.strip()))
        for tag in tags:
            if not _TAG.match(tag):
                raise _bad_header(name, f"tag {tag!r} must be 1-255 letters, digits, '-' or '_'")
    list_id = _positive_int(*found["x-list-id"]) if "x-list-id" in found else None
    api_type = None
    if "x-email-api-type" in found:
        name, value = found["x-email-api-type"]
        api_type = value.strip().lower()
        if api_type not in API_TYPES:
            raise _bad_header(name, f"{value.strip()!r} is not one of {', '.join(API_TYPES)}")
    tracking: list[tuple[str, bool]] = []
    for header, field in _TRACKING.items():
        if header in found:
            name, value = found[header]
            flag = value.strip().lower()
            if flag not in _TRUE | _FALSE:
                raise _bad_header(name, f"{value.strip()!r} is not true or false")
            tracking.append((field, flag in _TRUE))
    account_id = str(_positive_int(*found["x-account-id"])) if "x-account-id" in found else None
    sender_id = None
    if "x-sender-id" in found:
        name, value = found["x-sender-id"]
        sender_id = value.strip()
        if not sender_id:
            raise _bad_header(name, "empty sender id")
    return Controls(tags, list_id, api_type, tuple(tracking), account_id, sender_id)


def _unsupported(attachment: OutgoingAttachment, why: str) -> ApiRejected:
    label = attachment.filename or "(unnamed)"
    content_type = attachment.content_type or "unknown type"
    return ApiRejected(
        Rejection.UNSUPPORTED,
        f"attachment {label!r} ({content_type}) {why}; the Cakemail API takes only {ACCEPTED_EXTENSIONS} files",
    )


def api_attachment(attachment: OutgoingAttachment, index: int) -> ApiAttachment:
    """One part as the API takes it, or ApiRejected(UNSUPPORTED) naming it and the types the API takes.

    The type comes from the file's extension when it has one, else from its content type; the name is reduced to
    the API's pattern (letters, digits, - and _), keeping an extension that means the same type (.jpg -> .jpeg).
    An extension the API has no type for is refused rather than renamed: renaming would change what the file is.
    """
    base = attachment.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    stem, dot, extension = base.rpartition(".")
    if not dot:
        stem, extension = base, ""
    extension = extension.strip().lower()
    if extension:
        kind = _TYPE_BY_EXTENSION.get(extension)
        if kind is None:
            raise _unsupported(attachment, f"has the extension .{extension}")
    else:
        kind = _TYPE_BY_CONTENT_TYPE.get(attachment.content_type.split(";")[0].strip().lower())
        if kind is None:
            raise _unsupported(attachment, "has a type the API cannot carry")
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    safe_stem = _FILENAME_STEM_UNSAFE.sub("_", ascii_stem).strip("_")[:_MAX_STEM] or f"attachment-{index + 1}"
    return ApiAttachment(f"{safe_stem}.{ATTACHMENT_EXTENSIONS[kind]}", kind, attachment.data)


def _has_text(body: str) -> bool:
    return bool(body.strip())


def content(email: OutgoingEmail, api_type: str) -> dict[str, Any]:
    """content.subject must be non-empty, text/html non-empty when present (docs/mapping.md, "API constraints"):
    no Subject -> "(no subject)"; no body at all (a subject-only alert, an attachment-only message) -> the subject
    is the text body."""
    subject = email.subject if _has_text(email.subject) else NO_SUBJECT
    body: dict[str, Any] = {"subject": subject}
    if _has_text(email.html_body):
        body["html"] = email.html_body
    if _has_text(email.text_body):
        body["text"] = email.text_body
    if "html" not in body and "text" not in body:
        body["text"] = subject
    body["encoding"] = ENCODING
    body["type"] = api_type
    return body


def additional_headers(email: OutgoingEmail) -> list[dict[str, str]]:
    headers = [
        {"name": name, "value": value}
        for name, value in email.headers.items()
        if name.lower() not in CONTROL_HEADERS and name.lower() not in _NOT_PASSED
    ]
    if email.reply_to is not None:
        headers.insert(0, {"name": "Reply-To", "value": formataddr((email.reply_to.name, email.reply_to.email))})
    return headers


def email_payload(
    email: OutgoingEmail,
    *,
    sender: Sender,
    controls: Controls,
    attachments: tuple[ApiAttachment, ...],
    default_api_type: str,
    default_list_id: int | None,
) -> dict[str, Any]:
    """The POST /v2/emails body without its `email` (the recipient), which each call adds first."""
    payload: dict[str, Any] = {"sender": {"id": sender.id}}
    if email.sender.name.strip():
        payload["sender"]["name"] = email.sender.name
    payload["content"] = content(email, controls.api_type or default_api_type)
    list_id = controls.list_id if controls.list_id is not None else default_list_id
    if list_id is not None:
        payload["list_id"] = list_id
    if controls.tags:
        payload["tags"] = list(controls.tags)
    if controls.tracking:
        payload["tracking"] = dict(controls.tracking)
    headers = additional_headers(email)
    if headers:
        payload["additional_headers"] = headers
    if attachments:
        payload["attachment"] = [
            {"filename": a.filename, "type": a.type, "content": base64.b64encode(a.data).decode("ascii")}
            for a in attachments
        ]
    return payload


# Base64 works on 3-byte groups: a multiple of 3 keeps every piece's encoding independent of the next.
_B64_CHUNK = 3 * 256 * 1024


@dataclass(frozen=True, slots=True)
class SharedBody:
    """The payload for every recipient, encoded once but for the attachments' base64, which is produced in pieces
    while a request is sent: a 25 MB message is never held again as base64, as a JSON string and as request bytes,
    once per recipient. Each call sends {"email": <recipient>, ...}; `framing[i]` comes before attachment i's
    content, `framing[-1]` closes the document."""

    framing: tuple[bytes, ...]
    attachments: tuple[ApiAttachment, ...]

    @classmethod
    def build(cls, head: dict[str, Any], attachments: tuple[ApiAttachment, ...]) -> SharedBody:
        """`head`: the payload without `email` and without `attachment`."""
        encoded = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode()
        if not attachments:
            return cls((encoded[1:],), ())
        framing = [encoded[1:-1] + b',"attachment":[']
        for index, attachment in enumerate(attachments):
            meta = json.dumps(
                {"filename": attachment.filename, "type": attachment.type}, ensure_ascii=False, separators=(",", ":")
            ).encode()
            framing[-1] += (b"," if index else b"") + meta[:-1] + b',"content":"'
            framing.append(b'"}')
        framing[-1] += b"]}"
        return cls(tuple(framing), attachments)

    @property
    def length(self) -> int:
        content = sum(4 * ((len(a.data) + 2) // 3) for a in self.attachments)
        return sum(len(piece) for piece in self.framing) + content

    def _rest(self) -> Iterator[bytes]:
        for before, attachment in zip(self.framing, self.attachments, strict=False):
            yield before
            view = memoryview(attachment.data)
            for offset in range(0, len(view), _B64_CHUNK):
                yield base64.b64encode(view[offset : offset + _B64_CHUNK])
        yield self.framing[-1]

    def for_recipient(self, recipient: str) -> tuple[int, Iterator[bytes]]:
        head = b'{"email":' + json.dumps(recipient, ensure_ascii=False).encode() + b","
        return len(head) + self.length, itertools.chain((head,), self._rest())

    def payload(self, recipient: str) -> dict[str, Any]:
        """The decoded form, for tests."""
        return dict(json.loads(b"".join(self.for_recipient(recipient)[1])))


def token_form(username: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password}


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


def detail_text(body: Any) -> str:
    """The API's `detail` messages, joined: what the SMTP reply tells the client."""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return ""
    messages = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        message = str(item.get("msg", "")).strip()
        loc = item.get("loc")
        where = ".".join(str(part) for part in loc if part != "body") if isinstance(loc, list) else ""
        if message:
            messages.append(f"{where}: {message}" if where else message)
    return "; ".join(messages)


def _has_challenge(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("challenge"), str)


_MFA = "the user is protected by multi-factor authentication, which SMTP AUTH cannot answer"


def classify(route: str, status: int, retry_after: str | None, body: Any) -> ApiError | None:
    """The one place a v2 HTTP answer becomes a success (None) or a typed failure. `route`: auth, senders, emails,
    logs. A 5xx to POST /v2/emails is repeatable only when the API says it did not take the call (502, 503): the
    API has no idempotency key, so 500 and 504 are ambiguous and settled by the delivery record instead."""
    if 200 <= status < 300:
        return None
    if status == 401:
        return ApiMfaRequired(_MFA) if _has_challenge(body) else ApiCredentialsRejected(f"{route}: HTTP 401")
    if status == 429:
        return ApiRateLimited(parse_retry_after(retry_after))
    if status >= 500 or status == 408:
        if route == "emails":
            retryable = status in (502, 503)
            return ApiUnavailable(f"{route}: HTTP {status}", retryable=retryable, ambiguous=not retryable)
        return ApiUnavailable(f"{route}: HTTP {status}", retryable=status in (502, 503, 504))
    detail = detail_text(body) or f"HTTP {status}"
    if route == "auth" and status in (400, 403, 422):
        # The API would not even consider these credentials (not an email address, a locked user): invalid.
        return ApiCredentialsRejected(f"{route}: HTTP {status}: {detail}")
    if status in (400, 422):
        return ApiRejected(Rejection.INVALID, detail, status=status)
    if status == 403:
        return ApiRejected(Rejection.FORBIDDEN, detail, status=status)
    if status == 413:
        return ApiRejected(Rejection.TOO_LARGE, detail, status=status)
    return ApiIntegrationError(f"Cakemail API refused the call: HTTP {status}: {detail}", status=status)


def parse_token(body: Any, username: str) -> Session:
    """Raises ApiMfaRequired for a challenge, ValueError when the answer does not have the documented shape."""
    if _has_challenge(body):
        raise ApiMfaRequired(_MFA)
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise ValueError("token response without access_token")
    expires_in = body.get("expires_in", 0)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        raise ValueError("token response with a non-numeric expires_in")
    accounts = body.get("accounts", [])
    if not isinstance(accounts, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in accounts):
        raise ValueError("token response with accounts that are not integers")
    refresh = body.get("refresh_token", "")
    return Session(
        access_token=body["access_token"],
        accounts=tuple(str(a) for a in accounts),
        email=username,
        expires_in=float(expires_in),
        refresh_token=refresh if isinstance(refresh, str) else "",
    )


def parse_senders_page(body: Any) -> list[Sender]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("senders response without data")
    senders = []
    for item in body["data"]:
        if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("email"), str):
            raise ValueError("sender without id or email")
        senders.append(
            Sender(
                id=str(item["id"]),
                email=item["email"],
                name=str(item.get("name") or ""),
                confirmed=item.get("confirmed") is True,
            )
        )
    return senders


def parse_submit_answer(body: Any) -> str:
    """The id of the queued email; ApiRejected(RECIPIENT) when the 201 says rejected or error (never a success);
    ValueError for an answer without the documented shape."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise ValueError("email response without data.id")
    status = data.get("status")
    if status == "queued":
        return str(data["id"])
    if status in ("rejected", "error"):
        recipient = body.get("email", "") if isinstance(body, dict) else ""
        raise ApiRejected(Rejection.RECIPIENT, f"{recipient}: Cakemail answered {status}".strip(": "))
    raise ValueError(f"email response with status {status!r}")


@dataclass(frozen=True, slots=True)
class LogsPage:
    # (email_id, event type) of the entries about the recipient and subject looked for, in the page's order
    events: tuple[tuple[str, str], ...]
    has_more: bool


_NOT_TAKEN = frozenset({"rejected", "error"})


def logs_page(body: Any, *, recipient: str, subject: str) -> LogsPage:
    """The entries of one GET /v2/logs/emails page about an email to `recipient` with `subject`."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("logs response without data")
    wanted = recipient.strip().lower()
    events = tuple(
        (entry["email_id"], str(entry.get("type", "")))
        for entry in body["data"]
        if isinstance(entry, dict)
        and isinstance(entry.get("email_id"), str)
        and str(entry.get("email", "")).strip().lower() == wanted
        and entry.get("subject", subject) == subject
    )
    pagination = body.get("pagination")
    return LogsPage(events, isinstance(pagination, dict) and pagination.get("has_more") is True)


def taken_email_id(events: list[tuple[str, str]]) -> str | None:
    """The id of an email the API took (it has events, none of them rejected or error), if any."""
    refused = {email_id for email_id, kind in events if kind in _NOT_TAKEN}
    for email_id, _ in events:
        if email_id not in refused:
            return email_id
    return None
