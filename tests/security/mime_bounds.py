"""What parse_message may do with hostile bytes: raise MessageRejected or return a ParsedMessage whose size is
bounded by the input's (no base64, quoted-printable, encoded-word or attached-message amplification: the edge
decompresses nothing, so a "bomb" can only be an expansion by a decoder)."""

from __future__ import annotations

from pathlib import Path

from gateway_mime.model import MessageRejected, ParsedMessage
from gateway_mime.parser import parse_message

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mime"
MAX_ATTACHMENT_BYTES = 1 << 20
# Output characters/bytes per input byte, plus a constant (generated names, a generated Message-ID, defect names).
# Decoding shrinks base64 (3/4) and quoted-printable; regenerating an attached message or turning a bare LF into
# CRLF can at most double a line.
EXPANSION = 2
SLACK = 4096


def corpus() -> list[bytes]:
    return [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]


def output_size(parsed: ParsedMessage) -> int:
    addresses = (*parsed.to, *parsed.cc, *parsed.reply_to, *((parsed.from_,) if parsed.from_ else ()))
    return (
        len(parsed.subject)
        + len(parsed.message_id)
        + len(parsed.text_body)
        + len(parsed.html_body)
        + sum(len(a.email) + len(a.name) for a in addresses)
        + sum(len(name) + len(value) for name, value in parsed.extra_headers)
        + sum(len(a.data) + len(a.filename) + len(a.content_type) + len(a.content_id) for a in parsed.attachments)
        + sum(len(d) for d in parsed.defects)
    )


def check(raw: bytes) -> ParsedMessage | None:
    """Parses like the edge does; None for a documented refusal, AssertionError for a broken bound. Any other
    exception propagates: that is a bug (parse_message promises MessageRejected and nothing else)."""
    try:
        parsed = parse_message(raw, max_attachment_bytes=MAX_ATTACHMENT_BYTES)
    except MessageRejected:
        return None
    size = output_size(parsed)
    assert size <= EXPANSION * len(raw) + SLACK, f"output {size} for {len(raw)} input bytes"
    return parsed
