"""Top-level headers to typed values: addresses, subject, Message-ID and the pass-through headers.

policy.default's header objects do the RFC 2047/5322/6532 work; they raise on some malformed values (and go
quadratic or recurse on hostile ones), so each header has a compat32-style fallback and nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email import utils
from email.message import Message

from gateway_mime.email_policy import POLICY
from gateway_mime.model import Address
from gateway_mime.text import as_received, clean_header_text, decode_encoded_words, scrub, unfold

# Above this many characters a header skips policy.default's parser, which is quadratic on long lists.
_STRUCTURED_PARSE_LIMIT = 8192

# Passed through to the API besides every X-* header; the values are the names as sent on.
PASS_THROUGH = {
    "in-reply-to": "In-Reply-To",
    "references": "References",
    "date": "Date",
    "list-unsubscribe": "List-Unsubscribe",
    "list-unsubscribe-post": "List-Unsubscribe-Post",
    "list-id": "List-Id",
    "auto-submitted": "Auto-Submitted",
    "precedence": "Precedence",
}
# Pass-through headers whose text may hold RFC 2047 words (a phrase); the others are structured ASCII, kept as sent.
_DECODED_PASS_THROUGH = frozenset({"list-id"})
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to"})
_SINGLE_HEADERS = frozenset({"from", "subject", "message-id"})

# The usual address header, read without policy.default's parser (~80 us per bare address, ~175 us per "Name <addr>":
# a tenth of the edge's CPU per small message, docs/performance.md): comma-separated mailboxes, each a bare addr-spec
# or a phrase of plain atoms before <addr-spec>, all dot-atoms of ASCII atext (RFC 5322 3.2.3), no quoting, comments,
# encoded words ("=?") or other whitespace than spaces and tabs. For these it gives exactly the pairs policy.default
# gives, without defects (tests/unit/mime/test_header_fast_paths.py compares the two by hypothesis); anything else
# goes to policy.default.
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
SIMPLE_ADDR_SPEC = rf"{ATOM}(?:\.{ATOM})*@{ATOM}(?:\.{ATOM})*"
_SIMPLE_MAILBOX = re.compile(
    rf"[ \t]*(?:(?P<name>{ATOM}(?:[ \t]+{ATOM})*)[ \t]*<(?P<angle>{SIMPLE_ADDR_SPEC})>"
    rf"|(?P<bare>{SIMPLE_ADDR_SPEC}))[ \t]*"
)
# Unstructured text that policy.default hands back as it is (no encoded word to decode, nothing to flag): ~40 us per
# Subject saved (tests/unit/mime/test_header_fast_paths.py compares the two by hypothesis).
_PLAIN_TEXT = re.compile("[\t -~]*")
_BARE_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")
_BRACKETED_ID = re.compile(r"<[^<>\s]+>")
_BARE_ID = re.compile(r"[^<>\s]+@[^<>\s]+")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_SPACES = re.compile(" {2,}")
_BETWEEN_WORDS = re.compile(r"\?=[ \t]+(?==\?)")
# Python's own folder (3.11, policy.SMTP) writes the comma between addresses as "=?utf-8?q?=2C?=" when it folds
# there: after "<addr>" or after a bare addr-spec. An encoded word that is nothing but a comma is that separator.
_ENCODED_COMMA = re.compile(r"(>|[ \t])[ \t]*=\?[^?\s]+\?(?:[qQ]\?=2[cC]|[bB]\?LA==)\?=")


class Defects:
    """Defect names in order of first appearance, each once (a million broken parts must not log a million names)."""

    def __init__(self) -> None:
        self._names: dict[str, None] = {}

    def add(self, name: str) -> None:
        self._names.setdefault(name, None)

    def add_all(self, defects: Iterable[object]) -> None:
        for defect in defects:
            self.add(defect if isinstance(defect, str) else type(defect).__name__)

    def names(self) -> tuple[str, ...]:
        return tuple(self._names)


@dataclass(frozen=True, slots=True)
class TopHeaders:
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    message_id: str
    extra: tuple[tuple[str, str], ...]


def _text(raw: str, defects: Defects) -> str:
    """Raw header value (surrogate-escaped 8-bit bytes possible) -> unfolded Unicode, 8-bit bytes read as UTF-8."""
    if _ESCAPED_BYTE.search(raw):
        try:
            as_received(raw).decode("utf-8")
        except UnicodeDecodeError:
            defects.add("UndecodableBytesDefect")
    if "\x00" in raw:
        defects.add("NulByteDefect")
    return scrub(unfold(raw))


def decode_unstructured(raw: str, defects: Defects) -> str:
    """Subject-like text: policy.default's decoding; ours when it raises or had to replace undecodable bytes."""
    text = _text(raw, defects)
    if _PLAIN_TEXT.fullmatch(text) and "=?" not in text:
        return clean_header_text(text)  # what policy.default's parse gives back for it, without defects
    if len(text) <= _STRUCTURED_PARSE_LIMIT * 8:
        try:
            header = POLICY.header_factory("subject", text)
            decoded = scrub(str(header))
            if "\ufffd" not in decoded or "\ufffd" in text:
                defects.add_all(header.defects)
                return clean_header_text(decoded)
        except Exception:  # policy.default raises on some malformed input: any failure means "use the fallback"
            defects.add("InvalidHeaderDefect")
    return clean_header_text(decode_encoded_words(text))


def _usable(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain)


def simple_addresses(text: str) -> list[tuple[str, str]] | None:
    """(display name, addr-spec) of each mailbox of a header of the usual shape (above), else None."""
    if "=?" in text:
        return None
    pairs: list[tuple[str, str]] = []
    for piece in text.split(","):
        mailbox = _SIMPLE_MAILBOX.fullmatch(piece)
        if mailbox is None:
            return None
        pairs.append((mailbox["name"] or "", mailbox["angle"] or mailbox["bare"]))
    return pairs


def parse_addresses(raw: str, defects: Defects) -> list[Address]:
    """Every mailbox of an address header, groups flattened; entries without local@domain are dropped."""
    text = _text(raw, defects)
    pairs = simple_addresses(text) if len(text) <= _STRUCTURED_PARSE_LIMIT else None
    if pairs is None and len(text) <= _STRUCTURED_PARSE_LIMIT:
        try:
            # The stdlib keeps the whitespace between adjacent encoded words of a display name (RFC 2047 6.2 says
            # it is not text; a long name folded by any mailer comes back with spaces inside), so it goes first.
            joined = _BETWEEN_WORDS.sub("?=", _ENCODED_COMMA.sub(r"\1,", text))
            header = POLICY.header_factory("to", joined)
            pairs = [(a.display_name, a.addr_spec) for a in header.addresses]
            defects.add_all(d for d in header.defects if joined == text or "after encoded-word" not in str(d))
            if joined != text and _ENCODED_COMMA.search(text):
                defects.add("EncodedAddressSeparatorDefect")
        except Exception:  # ValueError (CR/LF in an encoded word), IndexError, RecursionError on nested comments
            defects.add("InvalidHeaderDefect")
    if pairs is None:
        pairs = _fallback_addresses(text)
    addresses: list[Address] = []
    for name, email in pairs:
        email = clean_header_text(email)
        if not _usable(email):
            defects.add("UnusableAddressDefect")
            continue
        # A display name is a phrase: runs of spaces and whitespace around it carry no meaning (RFC 5322 3.2.5), and
        # the stdlib keeps them only when the name happened to be quoted: normalised so both spellings agree.
        addresses.append(Address(email=email, name=_SPACES.sub(" ", clean_header_text(name)).strip()))
    return addresses


def _fallback_addresses(text: str) -> list[tuple[str, str]]:
    """compat32's address list parser, then a bare local@domain scan when even that fails."""
    try:
        return [(decode_encoded_words(name), email) for name, email in utils.getaddresses([text]) if email]
    except Exception:  # the compat32 parser recurses on nested comments too
        return [("", email) for email in _BARE_ADDRESS.findall(text)]


def message_id(raw: str, defects: Defects) -> str:
    """The first <id> of the header as sent; a bare id@host gets its brackets; anything else is unusable ("")."""
    text = clean_header_text(_text(raw, defects))
    bracketed = _BRACKETED_ID.search(text)
    if bracketed:
        if bracketed.group() != text:
            defects.add("InvalidHeaderDefect")
        return bracketed.group()
    if _BARE_ID.fullmatch(text):
        defects.add("InvalidHeaderDefect")
        return f"<{text}>"
    if text:
        defects.add("InvalidHeaderDefect")
    return ""


def read_headers(message: Message, defects: Defects) -> TopHeaders:
    """One pass over the raw headers in order; raw values, so no header object is built for headers we drop."""
    addresses: dict[str, list[Address]] = {name: [] for name in _ADDRESS_HEADERS}
    seen: set[str] = set()
    subject = ""
    found_id = ""
    extra: list[tuple[str, str]] = []
    for name, raw in message.raw_items():
        key = name.strip().lower()
        if key in _SINGLE_HEADERS and key in seen:
            defects.add("DuplicateHeaderDefect")
            continue
        seen.add(key)
        if key in _ADDRESS_HEADERS:
            addresses[key].extend(parse_addresses(raw, defects))
        elif key == "subject":
            subject = decode_unstructured(raw, defects)
        elif key == "message-id":
            found_id = message_id(raw, defects)
        elif key.startswith("x-"):
            extra.append((name.strip(), decode_unstructured(raw, defects)))
        elif key in _DECODED_PASS_THROUGH:
            extra.append((PASS_THROUGH[key], decode_unstructured(raw, defects)))
        elif key in PASS_THROUGH:
            extra.append((PASS_THROUGH[key], clean_header_text(_text(raw, defects))))
    if len(addresses["from"]) > 1:
        defects.add("MultipleFromAddressesDefect")
    return TopHeaders(
        from_=tuple(addresses["from"]),
        to=tuple(addresses["to"]),
        cc=tuple(addresses["cc"]),
        reply_to=tuple(addresses["reply-to"]),
        subject=subject,
        message_id=found_id,
        extra=tuple(extra),
    )
