"""Shared helpers for the MIME parser tests: the ParsedMessage as the corpus's JSON shape."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from gateway_mime import Address, ParsedMessage


def _address(address: Address) -> dict[str, str]:
    return {"email": address.email, "name": address.name}


def as_expected_shape(message: ParsedMessage) -> dict[str, Any]:
    """Attachment bytes become size + sha256."""
    message_id = message.message_id
    return {
        "from_": _address(message.from_) if message.from_ else None,
        "to": [_address(a) for a in message.to],
        "cc": [_address(a) for a in message.cc],
        "reply_to": [_address(a) for a in message.reply_to],
        "subject": message.subject,
        "message_id": message_id,
        "text_body": message.text_body,
        "html_body": message.html_body,
        "extra_headers": [[name, value] for name, value in message.extra_headers],
        "attachments": [
            {
                "filename": part.filename,
                "content_type": part.content_type,
                "content_id": part.content_id,
                "disposition": part.disposition,
                "size": len(part.data),
                "sha256": hashlib.sha256(part.data).hexdigest(),
            }
            for part in message.attachments
        ],
        "defects": list(message.defects),
    }


def crlf(data: bytes) -> bytes:
    """The corpus is stored with LF line endings (git-proof); DATA arrives with CRLF. A lone CR stays a lone CR."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)
