"""The parser's boundary types, which the edge and the forwarder code against: frozen, so nothing mutates them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: the addr-spec as written (domain not IDNA-converted) and its RFC 2047-decoded display name."""

    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """A MIME leaf that is not a body: decoded bytes plus what the API needs to rebuild the part."""

    filename: str
    content_type: str
    content_id: str
    disposition: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything the forwarder needs from the DATA content; all strings are valid Unicode without lone surrogates."""

    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    message_id: str
    text_body: str
    html_body: str
    extra_headers: tuple[tuple[str, str], ...]
    attachments: tuple[AttachmentPart, ...]
    defects: tuple[str, ...]


class MessageRejected(Exception):
    """The message cannot be forwarded faithfully; carries an SMTP-safe reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AttachmentTooLarge(MessageRejected):
    """An attachment is over the configured limit: a size refusal (552 5.3.4), not a content one."""
