"""The MIME core shared by the SMTP edge and the forwarder: RFC 5322 bytes -> ParsedMessage -> SubmitMessage frames.

docs/mapping.md has the mapping rules."""

from gateway_mime.model import Address, AttachmentPart, AttachmentTooLarge, MessageRejected, ParsedMessage
from gateway_mime.parser import parse_message

__all__ = ["Address", "AttachmentPart", "AttachmentTooLarge", "MessageRejected", "ParsedMessage", "parse_message"]
