"""Strict checks of request bodies, as a real API would make them, naming the offending field.

Pure functions: JSON in, a `Rejected` exception out when something is wrong. The first problem found wins.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from typing import Any

EMAIL_FIELDS = frozenset(
    {
        "from",
        "envelope_from",
        "to",
        "cc",
        "bcc",
        "subject",
        "text_body",
        "html_body",
        "reply_to",
        "headers",
        "attachments",
    }
)
MAILBOX_FIELDS = frozenset({"email", "name"})
ATTACHMENT_FIELDS = frozenset({"filename", "content", "content_type", "content_id", "disposition"})
CREDENTIAL_FIELDS = frozenset({"username", "password"})
DISPOSITIONS = frozenset({"attachment", "inline"})
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class Rejected(Exception):
    """A request the API refuses, with the status and JSON error body to answer."""

    status = 400
    error = "validation_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, "field": self.field}


class PayloadTooLarge(Rejected):
    status = 413
    error = "payload_too_large"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """UTF-8 JSON whose top level is an object; NaN and Infinity are refused like any strict parser would."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise Rejected("request body is not UTF-8") from exc
    except ValueError as exc:
        raise Rejected(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Rejected("request body must be a JSON object")
    return body


def is_plausible_email(value: str) -> bool:
    """One "@" with something on each side and no whitespace or control characters; UTF-8 (SMTPUTF8) welcome."""
    local, _, domain = value.partition("@")
    if not local or not domain or "@" in domain:
        return False
    return not any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value)


def _check_fields(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise Rejected(f"unknown field {key!r}", f"{where}.{key}" if where else key)


def _optional_string(obj: dict[str, Any], key: str, where: str, *, single_line: bool = True) -> str:
    value = obj.get(key)
    path = f"{where}.{key}" if where else key
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected("must be a string", path)
    if single_line and ("\r" in value or "\n" in value or "\x00" in value):
        raise Rejected("must not contain CR, LF or NUL (unfold header values)", path)
    return value


def _mailbox(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise Rejected("must be an object with an email", path)
    _check_fields(value, MAILBOX_FIELDS, path)
    email = value.get("email")
    if not isinstance(email, str) or not email:
        raise Rejected("email is required", f"{path}.email")
    if not is_plausible_email(email):
        raise Rejected("not a valid email address", f"{path}.email")
    _optional_string(value, "name", path)


def _mailbox_list(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if not isinstance(value, list):
        raise Rejected("must be an array of {email, name}", key)
    for index, mailbox in enumerate(value):
        _mailbox(mailbox, f"{key}[{index}]")
    return len(value)


def _headers(body: dict[str, Any]) -> None:
    value = body.get("headers")
    if value is None:
        return
    if not isinstance(value, dict):
        raise Rejected("must be an object of header name to value", "headers")
    for name, header_value in value.items():
        path = f"headers.{name}"
        # RFC 5322 field name: printable US-ASCII except the colon.
        if not name or any(not (33 <= ord(ch) <= 126) or ch == ":" for ch in name):
            raise Rejected("not a valid header name", path)
        if not isinstance(header_value, str):
            raise Rejected("header value must be a string", path)
        if "\r" in header_value or "\n" in header_value or "\x00" in header_value:
            raise Rejected("must not contain CR, LF or NUL (unfold header values)", path)


def _attachment(value: Any, path: str, max_bytes: int) -> int:
    if not isinstance(value, dict):
        raise Rejected("must be an object", path)
    _check_fields(value, ATTACHMENT_FIELDS, path)
    if not isinstance(value.get("filename"), str):
        raise Rejected("filename is required (a string, may be empty)", f"{path}.filename")
    _optional_string(value, "filename", path)
    content_type = value.get("content_type")
    if not isinstance(content_type, str) or not _is_media_type(content_type):
        raise Rejected("content_type must be a media type like text/plain", f"{path}.content_type")
    _optional_string(value, "content_id", path)
    disposition = value.get("disposition", "attachment")
    if disposition not in DISPOSITIONS:
        raise Rejected('disposition must be "attachment" or "inline"', f"{path}.disposition")
    content = value.get("content")
    if not isinstance(content, str):
        raise Rejected("content is required (base64)", f"{path}.content")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected(f"content is not valid base64: {exc}", f"{path}.content") from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"attachment is {len(data)} bytes, over the {max_bytes} byte limit", f"{path}.content")
    return len(data)


def _is_media_type(value: str) -> bool:
    kind, slash, subtype = value.partition(";")[0].strip().partition("/")
    token_chars = all(33 <= ord(ch) <= 126 and ch not in '()<>@,;:\\"/[]?=' for ch in kind + subtype)
    return bool(slash and kind and subtype and token_chars)


def _attachments(body: dict[str, Any], max_bytes: int) -> tuple[int, ...]:
    value = body.get("attachments")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Rejected("must be an array", "attachments")
    return tuple(_attachment(item, f"attachments[{index}]", max_bytes) for index, item in enumerate(value))


def validate_email(body: dict[str, Any], *, max_attachment_bytes: int) -> tuple[int, ...]:
    """Checks a POST /v1/emails body; returns the decoded size of each attachment."""
    _check_fields(body, EMAIL_FIELDS, "")
    if body.get("from") is None:
        raise Rejected("from is required", "from")
    _mailbox(body["from"], "from")
    envelope_from = _optional_string(body, "envelope_from", "")
    if envelope_from and not is_plausible_email(envelope_from):
        raise Rejected("not a valid email address (empty for the null sender)", "envelope_from")
    recipients = sum(_mailbox_list(body, key) for key in ("to", "cc", "bcc"))
    if recipients == 0:
        raise Rejected("at least one recipient is required in to, cc or bcc", "to")
    _optional_string(body, "subject", "")
    text_body = _optional_string(body, "text_body", "", single_line=False)
    html_body = _optional_string(body, "html_body", "", single_line=False)
    if body.get("reply_to") is not None:
        _mailbox(body["reply_to"], "reply_to")
    _headers(body)
    sizes = _attachments(body, max_attachment_bytes)
    if not text_body and not html_body and not sizes:
        raise Rejected("one of text_body, html_body or attachments is required", "text_body")
    return sizes


def validate_credentials(body: dict[str, Any]) -> tuple[str, str]:
    _check_fields(body, CREDENTIAL_FIELDS, "")
    for key in ("username", "password"):
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise Rejected(f"{key} is required (a non-empty string)", key)
    return body["username"], body["password"]


def validate_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_IDEMPOTENCY_KEY_LENGTH or any(not (33 <= ord(ch) <= 126) for ch in value):
        raise Rejected(
            f"must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters without spaces", "Idempotency-Key"
        )
    return value
