"""The parse without whole copies of the message (parser.parse_in_pieces, text.lenient_b64decode's whitespace) gives
exactly what the stdlib's parsebytes and the join of split() give, pieces cut anywhere (docs/performance.md, "Edge
memory per large message")."""

from __future__ import annotations

import base64
import tracemalloc
from email.message import Message
from email.parser import BytesParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_mime import parse_message
from gateway_mime.email_policy import POLICY
from gateway_mime.parser import parse_in_pieces
from gateway_mime.text import lenient_b64decode

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Lines and pieces of lines: boundaries (right and wrong), headers, folded and malformed ones, bare CR and LF, 8-bit
# bytes, and fillers whose lengths put the 8192-character piece ends anywhere (inside a CRLF included).
_FRAGMENTS = st.sampled_from(
    [
        b"--b\r\n",
        b"--b--\r\n",
        b"--c\r\n",
        b"Content-Type: multipart/mixed; boundary=c\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"X-Folded: a\r\n\tb\r\n",
        b"no colon here\r\n",
        b"\r\n",
        b"\r",
        b"\n",
        b"caf\xc3\xa9 \xff\r\n",
        b"aGVsbG8=\r\n",
    ]
)
_FILLER = st.integers(min_value=0, max_value=9000).map(lambda n: b"x" * n)


def _tree(message: Message) -> list[object]:
    """Everything the parse produced, part by part."""
    return [
        (
            part._headers,  # the raw (name, value) pairs as parsed
            part._payload if isinstance(part._payload, str) else None,
            part.preamble,
            part.epilogue,
            part.get_unixfrom(),
            [(type(d).__name__, str(d)) for d in part.defects],
        )
        for part in message.walk()
    ]


@SETTINGS
@given(st.lists(st.one_of(_FRAGMENTS, _FILLER), max_size=40))
def test_the_parse_in_pieces_is_the_stdlib_parse(body: list[bytes]) -> None:
    raw = b'From: a@x.test\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"".join(body)
    assert _tree(parse_in_pieces(raw)) == _tree(BytesParser(policy=POLICY).parsebytes(raw))


@SETTINGS
@given(st.lists(st.one_of(_FRAGMENTS, _FILLER), max_size=20))
def test_a_message_without_headers_or_structure_too(body: list[bytes]) -> None:
    raw = b"".join(body)
    assert _tree(parse_in_pieces(raw)) == _tree(BytesParser(policy=POLICY).parsebytes(raw))


def test_the_parse_holds_no_whole_copy_of_the_message() -> None:
    """parsebytes held a str of the message and a StringIO of 4 bytes per character: 5x the message on top."""
    line = b"x" * 76 + b"\r\n"
    raw = b"Subject: s\r\n\r\n" + line * 40_000  # ~3 MiB
    tracemalloc.start()
    try:
        parse_in_pieces(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The body's lines while it is parsed (a str each), then their join: ~2.7x, against 7x with parsebytes.
    assert peak < 3.5 * len(raw)


_BASE64_ISH = st.lists(st.sampled_from([*b"aGVsbG8=+/*", *b" \t\r\n\x0b\x0c"]), max_size=80).map(bytes)


@given(st.one_of(st.binary(max_size=300), _BASE64_ISH))
def test_base64_whitespace_is_what_split_splits_on(data: bytes) -> None:
    assert lenient_b64decode(data) == _lenient_b64decode_reference(data)


def _lenient_b64decode_reference(data: bytes) -> tuple[bytes, str | None]:
    """lenient_b64decode as it was, with b"".join(data.split())."""
    import base64
    import binascii
    import re

    try:
        return base64.b64decode(b"".join(data.split()), validate=True), None
    except (binascii.Error, ValueError):
        pass
    cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
    joined = b"".join(data.split())
    defect = "InvalidBase64CharactersDefect" if len(cleaned) != len(joined) else "InvalidBase64PaddingDefect"
    decoded = bytearray()
    for segment in re.findall(rb"[A-Za-z0-9+/]+", cleaned):
        usable = len(segment) - len(segment) % 4
        tail = segment[usable:]
        decoded += base64.b64decode(segment[:usable] + (tail + b"=" * (4 - len(tail)) if len(tail) >= 2 else b""))
    return bytes(decoded), defect


def test_a_message_with_two_attachments_is_parsed_within_two_and_a_half_times_its_size() -> None:
    """What a parse worker holds at its peak above the message itself (docs/performance.md, "Edge memory per large
    message"): 6.9x with parsebytes and the lines split out of base64, 2.7x with neither, and less once an
    attachment's text in the tree is let go of when it is decoded."""
    parts = [
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + f'Content-Disposition: attachment; filename="{n}.pdf"\r\n\r\n'.encode()
        + base64.encodebytes(bytes(range(256)) * 4096).replace(b"\n", b"\r\n")  # 1 MiB each
        for n in range(2)
    ]
    raw = b'From: a@x.test\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"".join(parts) + b"--b--\r\n"
    tracemalloc.start()
    try:
        parsed = parse_message(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [len(a.data) for a in parsed.attachments] == [1 << 20, 1 << 20]
    assert peak < 2.5 * len(raw)
