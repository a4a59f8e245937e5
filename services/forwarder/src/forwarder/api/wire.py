"""The Cakemail API wire format, in ONE place so another API version can be adapted here alone.

Contract: docs/cakemail-api.md. Everything here is pure: dataclasses in, JSON-ready dicts out, and back.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

AUTH_PATH = "/v1/auth/validate"
EMAILS_PATH = "/v1/emails"
HEALTH_PATH = "/v1/health"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Mailbox:
    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    content_id: str
    inline: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A message as the API takes it: recipients already split into to/cc/bcc from the envelope."""

    sender: Mailbox
    envelope_from: str
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    subject: str
    text_body: str
    html_body: str
    reply_to: Mailbox | None
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[OutgoingAttachment, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiToken:
    api_key: str
    account_id: str
    email: str
    expires_in: float


@dataclass(frozen=True, slots=True)
class ApiErrorBody:
    error: str
    message: str
    field: str


def _mailbox(mailbox: Mailbox) -> dict[str, str]:
    return {"email": mailbox.email, "name": mailbox.name}


def email_payload(email: OutgoingEmail) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "from": _mailbox(email.sender),
        "envelope_from": email.envelope_from,
        "to": [_mailbox(m) for m in email.to],
        "cc": [_mailbox(m) for m in email.cc],
        "bcc": [_mailbox(m) for m in email.bcc],
        "subject": email.subject,
        "headers": dict(email.headers),
        "attachments": [
            {
                "filename": a.filename,
                "content": base64.b64encode(a.data).decode("ascii"),
                "content_type": a.content_type,
                **({"content_id": a.content_id} if a.content_id else {}),
                "disposition": "inline" if a.inline else "attachment",
            }
            for a in email.attachments
        ],
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


def parse_token(body: Any) -> ApiToken:
    """Raises ValueError when the API's answer does not have the documented shape."""
    if not isinstance(body, dict) or not isinstance(body.get("api_key"), str) or not body["api_key"]:
        raise ValueError("auth response without api_key")
    expires_in = body.get("expires_in", 0)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        raise ValueError("auth response with a non-numeric expires_in")
    return ApiToken(
        api_key=body["api_key"],
        account_id=str(body.get("account_id", "")),
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


def parse_retry_after(value: str | None, default: float = 1.0) -> float:
    """Retry-After as seconds; the HTTP-date form is rare for APIs and taken as the default."""
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default
    return max(0.0, seconds)
