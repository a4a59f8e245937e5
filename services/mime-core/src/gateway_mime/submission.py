"""Pure: what the client sent (DATA bytes or a raw RFC 5322 message, plus the envelope sender) -> the parsed message
and its identity. The SMTP edge and the forwarder's SubmitRawMessage both read messages through this one function,
so the same bytes become the same API calls whichever door they came in by."""

from __future__ import annotations

import dataclasses

from gateway_mime.model import ParsedMessage
from gateway_mime.parser import derived_message_id, message_identity, parse_message


def read_submission(
    raw: bytes, mail_from: str, *, max_attachment_bytes: int | None, message_id_domain: str
) -> tuple[ParsedMessage, str]:
    """The parsed message (a Message-ID derived from its identity when it had none, the same on every resend) and
    its identity (docs/mapping.md, "Message identity"). Raises MessageRejected, nothing else."""
    parsed = parse_message(raw, max_attachment_bytes=max_attachment_bytes)
    identity = message_identity(raw, parsed.message_id, mail_from)
    if not parsed.message_id:
        parsed = dataclasses.replace(parsed, message_id=derived_message_id(identity, message_id_domain))
    return parsed, identity
