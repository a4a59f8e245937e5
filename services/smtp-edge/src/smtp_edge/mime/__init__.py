"""Pure MIME parsing for the SMTP edge: raw DATA bytes -> ParsedMessage (docs/mapping.md has the mapping rules)."""

from smtp_edge.mime.model import Address, AttachmentPart, AttachmentTooLarge, MessageRejected, ParsedMessage
from smtp_edge.mime.parser import parse_message

__all__ = ["Address", "AttachmentPart", "AttachmentTooLarge", "MessageRejected", "ParsedMessage", "parse_message"]
