"""The decoding helpers on their own: charset fallbacks, RFC 2047 words, lenient base64, scrubbing, bounding."""

from __future__ import annotations

import pytest

from gateway_mime.structure import TOO_DEEP_TYPE, bound_structure, needs_bounding
from gateway_mime.text import (
    clean_body_text,
    clean_header_text,
    codec_for,
    decode_bytes,
    decode_encoded_words,
    lenient_b64decode,
    scrub,
)


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("Grüße".encode(), "utf-8", ("Grüße", None)),
        ("“quoted” €".encode("cp1252"), "iso-8859-1", ("“quoted” €", None)),  # labelled latin-1, really cp1252
        ("\x81".encode("latin-1"), "iso-8859-1", ("\x81", None)),  # undefined in cp1252: plain latin-1
        ("髙橋".encode("cp932"), "shift_jis", ("髙橋", None)),  # Windows-31J extension
        ("镕".encode("gbk"), "gb2312", ("镕", None)),  # GBK extension
        ("Grüße".encode(), "x-unknown", ("Grüße", "UnknownCharsetDefect")),
        ("Grüße".encode("latin-1"), "x-unknown", ("Grüße", "UnknownCharsetDefect")),
        ("Grüße".encode(), "us-ascii", ("Grüße", "UndecodableBytesDefect")),
        ("Grüße".encode(), None, ("Grüße", None)),
        ("Grüße".encode(), "koi8-r", ("Grц╪ц÷e", None)),  # a single-byte charset never fails: label wins
        ("Grüße".encode(), "zlib", ("Grüße", "UnknownCharsetDefect")),  # not a text charset
        # Declared UTF-8 with a stray byte: replacement keeps the rest readable (cp1252 would garble all of it).
        (b"ok \xff\xfe", "utf-8", ("ok \ufffd\ufffd", "UndecodableBytesDefect")),
        (b"\x82\xa0\x81\x20", "shift_jis", ("あ\ufffd ", "UndecodableBytesDefect")),
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, expected: tuple[str, str | None]) -> None:
    assert decode_bytes(data, charset) == expected


@pytest.mark.parametrize(
    ("label", "codec"),
    [("UTF8", "utf-8"), ('"iso-8859-8-i"', "iso8859-8"), ("base64", None), ("unicode_escape", None), ("", None)],
)
def test_codec_for(label: str, codec: str | None) -> None:
    assert codec_for(label) == codec


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=", "café"),  # a character split across two words
        ("=?utf-8?q?a?=  \t =?iso-8859-1?q?=E9?=", "aé"),  # whitespace between words is not text
        ("x =?utf-8?b?w6k=?= y", "x é y"),
        ("=?utf-8*en?q?hi_there?=", "hi there"),  # RFC 2231 language suffix
        ("=?x-unknown?q?caf=E9?=", "café"),
        ("=?utf-8?b?w6k?=", "é"),  # missing padding
        ("no words", "no words"),
    ],
)
def test_decode_encoded_words(value: str, expected: str) -> None:
    assert decode_encoded_words(value) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"aGVsbG8=", (b"hello", None)),
        (b"aGVs\r\nbG8=", (b"hello", None)),
        (b"aGVsbG8", (b"hello", "InvalidBase64PaddingDefect")),
        (b"aGV*sbG8=", (b"hello", "InvalidBase64CharactersDefect")),
        (b"aGk=aGk=", (b"hihi", "InvalidBase64PaddingDefect")),  # concatenated padded chunks
        (b"!!!!", (b"", "InvalidBase64CharactersDefect")),
        (b"a", (b"", "InvalidBase64PaddingDefect")),
    ],
)
def test_lenient_b64decode(data: bytes, expected: tuple[bytes, str | None]) -> None:
    assert lenient_b64decode(data) == expected


def test_scrub_reads_escaped_bytes_as_utf8_then_cp1252() -> None:
    escaped = (
        "Grüße".encode().decode("ascii", "surrogateescape")
        + " "
        + "é".encode("latin-1").decode("ascii", "surrogateescape")
    )
    assert scrub(escaped) == "Grüße é"
    assert scrub("lone \ud800") == "lone \ufffd"


def test_clean_header_text_and_body_text() -> None:
    assert clean_header_text(" a\r\nBcc: x\x00\ty\x7f ") == "a Bcc: x y"
    assert clean_body_text("a\r\nb\rc\n\x00d") == "a\nb\nc\nd"


def _nested(levels: int) -> bytes:
    raw = b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    for level in range(1, levels):
        raw += b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (level - 1, level)
    raw += b"--b%d\r\n\r\nleaf\r\n" % (levels - 1)
    return raw + b"".join(b"--b%d--\r\n" % level for level in range(levels - 1, -1, -1))


def test_bound_structure_leaves_shallow_messages_alone() -> None:
    raw = _nested(5)
    assert bound_structure(raw, max_depth=10, max_parts=100) == (raw, ())


def test_bound_structure_defuses_deep_containers() -> None:
    bounded, defects = bound_structure(_nested(8), max_depth=3, max_parts=100)
    assert defects == ("NestingTooDeepDefect",)
    # The part at depth 3 (the root is 0) becomes a leaf: what it held is now its body, so nothing deeper is seen.
    assert bounded.count(TOO_DEEP_TYPE.encode()) == 1
    assert bounded.count(b"multipart/mixed") == 7


def test_bound_structure_cuts_and_closes_after_the_part_limit() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n\r\nx\r\n" * 10 + b"--b--\r\n"
    bounded, defects = bound_structure(raw, max_depth=10, max_parts=3)
    assert defects == ("TooManyPartsDefect",)
    assert bounded.count(b"--b\r\n") == 3
    assert bounded.endswith(b"--b--\r\n")


def test_needs_bounding_counts_delimiter_lines() -> None:
    assert not needs_bounding(b"\r\n--b" * 3, 3)
    assert needs_bounding(b"\r\n--b" * 4, 3)
