"""parse_message: DATA bytes -> ParsedMessage. Pure, never raises on malformed input except MessageRejected.

The MIME tree is walked with an explicit stack (no recursion), depth and part count are capped, and every leaf
ends up as exactly one of: body text, attachment, or a dropped redundant alternative. docs/mapping.md has the rules.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import quopri
import re
from dataclasses import dataclass
from email import policy
from email.feedparser import FeedParser
from email.generator import BytesGenerator
from email.message import Message

from gateway_mime.email_policy import POLICY
from gateway_mime.headers import Defects, read_headers
from gateway_mime.model import AttachmentPart, AttachmentTooLarge, MessageRejected, ParsedMessage
from gateway_mime.structure import TOO_DEEP_TYPE, bound_structure, needs_bounding
from gateway_mime.text import (
    as_received,
    clean_body_text,
    clean_header_text,
    decode_bytes,
    decode_encoded_words,
    lenient_b64decode,
    scrub,
)

MAX_DEPTH = 100
MAX_PARTS = 10_000
# Multiparts whose boundary is missing or wrong are re-parsed with the boundary their body uses, this often at most.
MAX_BOUNDARY_RECOVERIES = 10

_BODY_TYPES = frozenset({"text/plain", "text/html"})
# Regenerates an attached message as it was received: source headers are written back unfolded-as-sent.
_RAW_POLICY = policy.default.clone(linesep="\r\n", refold_source="none")
_EXTENSIONS = {
    "application/pdf": "pdf",
    "application/zip": "zip",
    "application/json": "json",
    "application/pgp-signature": "asc",
    "application/pkcs7-signature": "p7s",
    "application/x-pkcs7-signature": "p7s",
    "application/ics": "ics",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/svg+xml": "svg",
    "text/plain": "txt",
    "text/html": "html",
    "text/csv": "csv",
    "text/vcard": "vcf",
    "text/x-vcard": "vcf",
    "message/delivery-status": "txt",
}
_GUESSED_BOUNDARY = re.compile(r"^--([^\s]{1,200}?)[ \t]*\r?$", re.MULTILINE)
_SMTP_UNSAFE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True, slots=True)
class _Node:
    part: Message
    depth: int
    # (id of a multipart/alternative ancestor, index of the child this node descends from), outermost first.
    alternatives: tuple[tuple[int, int], ...]
    parent: Message | None


def parse_message(raw: bytes, *, max_attachment_bytes: int | None = None) -> ParsedMessage:
    """Parse one message as received in DATA (CRLF, dot-unstuffed). Raises MessageRejected, nothing else.

    message_id is the client's Message-ID, or "" when it sent none (message_identity and derived_message_id say what
    happens then): the parse of the same bytes is always the same.
    """
    defects = Defects()
    root = _parse_bytes(raw, defects)
    headers = read_headers(root, defects)
    walk = _Walk(defects, max_attachment_bytes)
    walk.run(root)
    return ParsedMessage(
        from_=headers.from_[0] if headers.from_ else None,
        to=headers.to,
        cc=headers.cc,
        reply_to=headers.reply_to,
        subject=headers.subject,
        message_id=headers.message_id,
        text_body=walk.text_body(),
        html_body="".join(walk.html),
        extra_headers=headers.extra,
        attachments=tuple(walk.attachments),
        defects=defects.names(),
    )


def message_identity(raw: bytes, client_message_id: str, mail_from: str) -> str:
    """What makes this message the same message when the client sends it again: its own Message-ID, else a digest
    of exactly what it sent (the DATA bytes and the envelope sender). Never anything the gateway makes up, or a
    resend of a message without Message-ID would be a new message (and be delivered twice)."""
    if client_message_id:
        return client_message_id
    digest = hashlib.sha256(mail_from.encode("utf-8", "surrogateescape") + b"\0" + raw)
    return "sha256:" + digest.hexdigest()


def derived_message_id(identity: str, domain: str) -> str:
    """The Message-ID sent for a message that had none: derived from its identity, so every resend carries the same."""
    token = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"<{token}@{domain}>"


def _parse_bytes(raw: bytes, defects: Defects) -> Message:
    """The stdlib parse, on a structure-bounded copy when the message is too deep or has too many parts for it."""
    if needs_bounding(raw, MAX_PARTS):
        raw, applied = bound_structure(raw, max_depth=MAX_DEPTH, max_parts=MAX_PARTS)
        defects.add_all(applied)
    try:
        return parse_in_pieces(raw)
    except RecursionError:
        pass
    bounded, applied = bound_structure(raw, max_depth=MAX_DEPTH, max_parts=MAX_PARTS)
    defects.add_all(applied)
    try:
        return parse_in_pieces(bounded)
    except RecursionError:
        raise MessageRejected("message structure is nested too deeply to be parsed") from None


# What email.parser.Parser.parse reads from its file at a time and feeds to its FeedParser.
_PIECE_CHARS = 8192


def parse_in_pieces(raw: bytes) -> Message:
    """`BytesParser(policy=POLICY).parsebytes(raw)` (policy.default's parse, reused: email_policy.py), without its
    two whole copies of the message: it decodes all of `raw` into one str, then reads that str through a StringIO,
    which holds 4 bytes per character; for a 20 MB message 100 MB more, most of what a parse worker held at its peak
    (docs/performance.md, "Edge memory per large message"). Fed here as Parser.parse feeds its FeedParser, 8192
    characters at a time; ASCII with surrogateescape decodes each byte to one character, so the pieces, and the
    parse, are the same."""
    parser = FeedParser(policy=POLICY)
    view = memoryview(raw)
    for start in range(0, len(view), _PIECE_CHARS):
        parser.feed(str(view[start : start + _PIECE_CHARS], "ascii", "surrogateescape"))
    return parser.close()


def _payload(part: Message) -> list[Message] | str | None:
    """The part's payload as the parser stored it: its child parts, or its body as received (surrogate-escaped
    bytes), never decoded. `Message.get_payload()` decodes an 8-bit body with the part's charset on the way (text
    that no longer turns back into the bytes received, or ValueError for a charset holding a NUL); the stdlib's own
    BytesGenerator reads `_payload` for the same reason. tests/unit/mime/test_malformed.py pins the attribute."""
    payload = part._payload  # type: ignore[attr-defined]
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return payload if isinstance(payload, str) else None


class _AsReceivedGenerator(BytesGenerator):
    """BytesGenerator that writes a multipart whose boundary was not found as received: the stdlib writes
    `get_payload()` there, which decodes 8-bit bytes with the charset and then cannot encode them back."""

    def _handle_multipart(self, msg: Message) -> None:
        payload = _payload(msg)
        if isinstance(payload, str):
            self._write_lines(payload)  # type: ignore[attr-defined]
            return
        super()._handle_multipart(msg)  # type: ignore[misc]


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # a header object that fails to parse: RFC 2045 says treat the part as text/plain
        return "text/plain"


def _provides_body(part: Message) -> bool:
    """A plain or HTML rendering, or a multipart (which may hold one)."""
    ctype = _content_type(part)
    return ctype in _BODY_TYPES or ctype.startswith("multipart/")


def _compat_view(part: Message) -> Message:
    """The part's raw headers in a compat32 Message, whose lenient parameter parsing is the fallback."""
    view = Message()
    for name, value in part.raw_items():
        view[name] = scrub(value)  # raw 8-bit bytes would become compat32's unknown-8bit "\ufffd"
    return view


def _header_defects(part: Message, name: str) -> bool:
    try:
        header = part.get(name)
    except Exception:
        return True
    return bool(getattr(header, "defects", ()))


def _filename(part: Message) -> str:
    """Content-Disposition filename, else Content-Type name; RFC 2231 and (non-standard but common) RFC 2047."""
    name: str | None = None
    try:
        name = part.get_filename()
        trusted = not (_header_defects(part, "content-disposition") or _header_defects(part, "content-type"))
    except Exception:
        trusted = False
    if not trusted:
        with contextlib.suppress(Exception):  # keep whatever policy.default found
            name = _compat_view(part).get_filename() or name
    if not name:
        return ""
    return clean_header_text(decode_encoded_words(name) if "=?" in name else scrub(name))


def _disposition(part: Message) -> str:
    try:
        return part.get_content_disposition() or ""
    except Exception:
        return (_compat_view(part).get_content_disposition() or "").lower()


def _raw_header(part: Message, wanted: str) -> str:
    for name, value in part.raw_items():
        if name.strip().lower() == wanted:
            return value
    return ""


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return _compat_view(part).get_content_charset()


class _Walk:
    """Document-order walk collecting body fragments and attachments."""

    def __init__(self, defects: Defects, max_attachment_bytes: int | None) -> None:
        self.defects = defects
        self.max_attachment_bytes = max_attachment_bytes
        self.text: list[str] = []
        self.html: list[str] = []
        self.attachments: list[AttachmentPart] = []
        # (body kind, id of a multipart/alternative) -> index of the child that provides that kind of body.
        self.chosen: dict[tuple[str, int], int] = {}
        self.recoveries = 0
        # Keeps re-parsed multiparts alive: alternative ids are id()s and must not be reused while walking.
        self.keep: list[Message] = []
        # id of a multipart/alternative -> how many of its children render a body (_provides_body).
        self.providers: dict[int, int] = {}

    def text_body(self) -> str:
        out = ""
        for fragment in self.text:
            if out and not out.endswith("\n") and fragment:
                out += "\n"
            out += fragment
        return out

    def run(self, root: Message) -> None:
        stack = [_Node(root, 0, (), None)]
        visited = 0
        while stack:
            node = stack.pop()
            visited += 1
            if visited > MAX_PARTS:
                self.defects.add("TooManyPartsDefect")
                return
            self.defects.add_all(node.part.defects)
            ctype = _content_type(node.part)
            if ctype == TOO_DEEP_TYPE:
                self.defects.add("NestingTooDeepDefect")
                continue
            if ctype.startswith("multipart/"):
                payload = _payload(node.part)
                if isinstance(payload, list):
                    if node.depth >= MAX_DEPTH:
                        self.defects.add("NestingTooDeepDefect")
                        continue
                    self._push_children(stack, node, ctype, payload)
                    continue
                recovered = self._recover_boundary(node.part)
                if recovered is not None:
                    stack.append(_Node(recovered, node.depth, node.alternatives, node.parent))
                    continue
                self._leaf(node, "text/plain")
                continue
            self._leaf(node, ctype)

    def _push_children(self, stack: list[_Node], node: _Node, ctype: str, children: list[Message]) -> None:
        alternative = ctype == "multipart/alternative"
        for index in range(len(children) - 1, -1, -1):
            path = (*node.alternatives, (id(node.part), index)) if alternative else node.alternatives
            stack.append(_Node(children[index], node.depth + 1, path, node.part))

    def _recover_boundary(self, part: Message) -> Message | None:
        """A multipart whose boundary is missing or wrong: re-parse its body with the first "--x" line as boundary."""
        if self.recoveries >= MAX_BOUNDARY_RECOVERIES:
            return None
        body = _payload(part)
        if not isinstance(body, str):
            return None
        guess = _GUESSED_BOUNDARY.search(body)
        if guess is None:
            return None
        self.recoveries += 1
        boundary = guess.group(1).removesuffix("--")
        head = f'Content-Type: {_content_type(part)}; boundary="{boundary}"\r\n\r\n'.encode("ascii", "replace")
        recovered = _parse_bytes(head + as_received(body), self.defects)
        if not isinstance(_payload(recovered), list):
            return None
        self.defects.add("BoundaryRecoveredDefect")
        self.keep.append(recovered)
        return recovered

    def _accept_body(self, kind: str, alternatives: tuple[tuple[int, int], ...]) -> bool:
        """Within a multipart/alternative only the first child providing a kind of body provides it."""
        if any(self.chosen.get((kind, alt), index) != index for alt, index in alternatives):
            return False
        for alt, index in alternatives:
            self.chosen.setdefault((kind, alt), index)
        return True

    def _leaf(self, node: _Node, ctype: str) -> None:
        part = node.part
        disposition = _disposition(part)
        filename = _filename(part)
        if ctype in _BODY_TYPES and disposition != "attachment" and not filename:
            if self._accept_body(ctype, node.alternatives):
                (self.text if ctype == "text/plain" else self.html).append(self._body_text(part))
            return
        if self._redundant_alternative(node, ctype, disposition, filename):
            self.defects.add("RedundantAlternativeDroppedDefect")
            return
        self._attachment(part, ctype, disposition, filename)

    def _redundant_alternative(self, node: _Node, ctype: str, disposition: str, filename: str) -> bool:
        """text/enriched, AMP, watch-html... next to a plain or HTML rendering: the API cannot send them as such."""
        if node.parent is None or not ctype.startswith("text/") or ctype == "text/calendar":
            return False
        if disposition == "attachment" or filename or _content_type(node.parent) != "multipart/alternative":
            return False
        # Siblings other than this part that render the body (counted once per alternative: a rescan per child was
        # quadratic, 2,000 text/enriched children took 9 s). node.part is one of node.parent's children.
        return self._body_providers(node.parent) - _provides_body(node.part) > 0

    def _body_providers(self, parent: Message) -> int:
        count = self.providers.get(id(parent))
        if count is None:
            siblings = _payload(parent)
            count = sum(map(_provides_body, siblings)) if isinstance(siblings, list) else 0
            self.providers[id(parent)] = count
        return count

    def _body_text(self, part: Message) -> str:
        text, defect = decode_bytes(self._payload_bytes(part), _charset(part))
        if defect:
            self.defects.add(defect)
        if "\x00" in text:
            self.defects.add("NulByteDefect")
        return clean_body_text(text)

    def _payload_bytes(self, part: Message) -> bytes:
        """The content with its transfer encoding undone; base64 leniently (the stdlib returns it undecoded)."""
        cte = _raw_header(part, "content-transfer-encoding").strip().lower()
        payload = _payload(part)
        if not isinstance(payload, str):
            return b""
        if cte == "base64":
            data, defect = lenient_b64decode(as_received(payload))
            if defect:
                self.defects.add(defect)
            return data
        try:
            decoded = part.get_payload(decode=True)
        except Exception:
            self.defects.add("InvalidTransferEncodingDefect")
            return as_received(payload)
        return decoded if isinstance(decoded, bytes) else b""

    def _message_bytes(self, part: Message) -> bytes | None:
        """An attached message/* as received: the part regenerated, then its own header block cut off."""
        buffer = io.BytesIO()
        try:
            _AsReceivedGenerator(buffer, mangle_from_=False, policy=_RAW_POLICY).flatten(part)
        except RecursionError:
            self.defects.add("NestingTooDeepDefect")
            return None
        out = buffer.getvalue()
        if out.startswith(b"\r\n"):
            body = out[2:]
        else:
            end = out.find(b"\r\n\r\n")
            body = out[end + 4 :] if end >= 0 else b""
        cte = _raw_header(part, "content-transfer-encoding").strip().lower()
        if cte == "base64":
            return lenient_b64decode(body)[0]
        if cte == "quoted-printable":
            return quopri.decodestring(body)
        return body

    def _attachment(self, part: Message, ctype: str, disposition: str, filename: str) -> None:
        if ctype.startswith("message/") and isinstance(_payload(part), list):
            data = self._message_bytes(part)
            if data is None:
                return
        else:
            data = self._payload_bytes(part)
            # Nothing reads a leaf's body again once it is an attachment, and the tree lives until the walk ends: its
            # text (a 10 MB attachment's base64: 13.5 MB) would sit beside the next attachment's decoding.
            part.set_payload("")
        content_id = clean_header_text(_raw_header(part, "content-id")).strip("<> ")
        if disposition not in ("attachment", "inline"):
            disposition = "inline" if not disposition and content_id else "attachment"
        name = filename or _generated_name(len(self.attachments) + 1, ctype)
        limit = self.max_attachment_bytes
        if limit is not None and len(data) > limit:
            raise AttachmentTooLarge(f"attachment {_smtp_safe(name)} exceeds the {limit}-byte limit")
        self.attachments.append(
            AttachmentPart(filename=name, content_type=ctype, content_id=content_id, disposition=disposition, data=data)
        )


def _generated_name(position: int, ctype: str) -> str:
    if ctype == "text/calendar":
        return "invite.ics"
    if ctype in ("message/rfc822", "message/global"):
        return "message.eml"
    return f"attachment-{position}.{_EXTENSIONS.get(ctype, 'bin')}"


def _smtp_safe(text: str, limit: int = 80) -> str:
    """SMTP replies are ASCII lines: anything else becomes "?", and long names are cut."""
    safe = _SMTP_UNSAFE.sub("?", text)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."
