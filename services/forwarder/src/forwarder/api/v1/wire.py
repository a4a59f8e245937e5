"""The v1 flavor's wire format (the design document's contract), in ONE place: payloads out, answers classified.

Contract: docs/cakemail-api.md. Everything here is pure: dataclasses in, JSON-ready dicts out, and back.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from forwarder.api.errors import (
    ApiCredentialsRejected,
    ApiError,
    ApiIntegrationError,
    ApiRateLimited,
    ApiRejected,
    ApiUnavailable,
    Rejection,
)
from forwarder.api.http import parse_retry_after
from forwarder.api.model import Mailbox, OutgoingAttachment, OutgoingEmail, Session

AUTH_PATH = "/v1/auth/validate"
EMAILS_PATH = "/v1/emails"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class ApiErrorBody:
    error: str
    message: str
    field: str


def _mailbox(mailbox: Mailbox) -> dict[str, str]:
    return {"email": mailbox.email, "name": mailbox.name}


def _attachment_meta(attachment: OutgoingAttachment) -> dict[str, str]:
    return {
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        **({"content_id": attachment.content_id} if attachment.content_id else {}),
        "disposition": "inline" if attachment.inline else "attachment",
    }


def email_payload(email: OutgoingEmail) -> dict[str, Any]:
    """The whole payload as one dict: the readable form of what email_body streams."""
    payload = _payload_without_attachments(email)
    payload["attachments"] = [
        {**_attachment_meta(a), "content": base64.b64encode(a.data).decode("ascii")} for a in email.attachments
    ]
    return payload


# Base64 works on 3-byte groups: a multiple of 3 keeps every chunk's encoding independent of the next.
_B64_CHUNK = 3 * 256 * 1024


@dataclass(frozen=True, slots=True)
class StreamedBody:
    """The JSON body of POST /v1/emails, produced in pieces so a 25 MB message is never held again as one
    base64 string, one JSON string and one request buffer. `chunks()` can be called again for a retry.

    `framing` holds the JSON around each attachment's base64 content: framing[i] comes before attachment i,
    framing[-1] closes the document. It is built once; the length follows from it without encoding anything.
    """

    email: OutgoingEmail
    framing: tuple[bytes, ...]

    @property
    def length(self) -> int:
        content = sum(4 * ((len(a.data) + 2) // 3) for a in self.email.attachments)
        return sum(len(piece) for piece in self.framing) + content

    def chunks(self) -> Iterator[bytes]:
        for before, attachment in zip(self.framing, self.email.attachments, strict=False):
            yield before
            view = memoryview(attachment.data)
            for offset in range(0, len(view), _B64_CHUNK):
                yield base64.b64encode(view[offset : offset + _B64_CHUNK])
        yield self.framing[-1]


def email_body(email: OutgoingEmail) -> StreamedBody:
    head = json.dumps(_payload_without_attachments(email), ensure_ascii=False).encode()
    framing = [head[:-1] + b', "attachments": [']
    for index, attachment in enumerate(email.attachments):
        meta = json.dumps(_attachment_meta(attachment), ensure_ascii=False).encode()
        framing[-1] += (b", " if index else b"") + meta[:-1] + b', "content": "'
        framing.append(b'"}')
    framing[-1] += b"]}"
    return StreamedBody(email, tuple(framing))


def _payload_without_attachments(email: OutgoingEmail) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "from": _mailbox(email.sender),
        "envelope_from": email.envelope_from,
        "to": [_mailbox(m) for m in email.to],
        "cc": [_mailbox(m) for m in email.cc],
        "bcc": [_mailbox(m) for m in email.bcc],
        "subject": email.subject,
        "headers": dict(email.headers),
    }
    if email.text_body:
        payload["text_body"] = email.text_body
    if email.html_body:
        payload["html_body"] = email.html_body
    if email.reply_to is not None:
        payload["reply_to"] = _mailbox(email.reply_to)
    return payload


def credentials_payload(username: str, password: str) -> dict[str, str]:
    return {"username": username, "password": password}


def parse_token(body: Any) -> Session:
    """Raises ValueError when the API's answer does not have the documented shape."""
    if not isinstance(body, dict) or not isinstance(body.get("api_key"), str) or not body["api_key"]:
        raise ValueError("auth response without api_key")
    expires_in = body.get("expires_in", 0)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        raise ValueError("auth response with a non-numeric expires_in")
    account_id = str(body.get("account_id", ""))
    return Session(
        access_token=body["api_key"],
        accounts=(account_id,) if account_id else (),
        email=str(body.get("email", "")),
        expires_in=float(expires_in),
    )


def parse_message_id(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("message_id"), str) or not body["message_id"]:
        raise ValueError("email response without message_id")
    return str(body["message_id"])


def parse_error(body: Any) -> ApiErrorBody:
    if not isinstance(body, dict):
        return ApiErrorBody(error="", message="", field="")
    return ApiErrorBody(
        error=str(body.get("error", "")),
        message=str(body.get("message", "")),
        field=str(body.get("field", "") or ""),
    )


_REJECTIONS = {400: Rejection.INVALID, 422: Rejection.INVALID, 403: Rejection.FORBIDDEN, 413: Rejection.TOO_LARGE}
_RETRYABLE_STATUSES = frozenset({502, 503, 504})


def classify(path: str, status: int, retry_after: str | None, body: Any) -> ApiError | None:
    """The one place a v1 HTTP answer becomes a success (None) or a typed failure."""
    if 200 <= status < 300:
        return None
    if status == 401:
        return ApiCredentialsRejected(f"{path}: HTTP 401")
    if status == 429:
        return ApiRateLimited(parse_retry_after(retry_after))
    if status >= 500 or status == 408:
        # Every v1 call is idempotent (emails carry an Idempotency-Key), so an answer the API failed is repeatable.
        return ApiUnavailable(f"{path}: HTTP {status}", retryable=status in _RETRYABLE_STATUSES)
    error = parse_error(body)
    detail = error.message or error.error or f"HTTP {status}"
    if error.field:
        detail = f"{detail} (field: {error.field})"
    if status in _REJECTIONS:
        return ApiRejected(_REJECTIONS[status], detail, status=status)
    return ApiIntegrationError(f"Cakemail API refused the call: HTTP {status}: {detail}", status=status)
