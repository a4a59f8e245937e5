"""Hostile and broken input: never an exception but MessageRejected where documented, always quick (pytest-timeout)."""

from __future__ import annotations

import base64

import pytest

from gateway_mime import AttachmentTooLarge, ParsedMessage, parse_message
from gateway_mime.parser import derived_message_id, message_identity

HEAD = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\nMessage-ID: <m@example.com>\r\n"


def parse(raw: bytes, limit: int | None = None) -> ParsedMessage:
    parsed = parse_message(raw, max_attachment_bytes=limit)
    for value in (parsed.subject, parsed.text_body, parsed.html_body, *[a.filename for a in parsed.attachments]):
        value.encode("utf-8")  # no lone surrogates anywhere
    return parsed


def nested_multiparts(levels: int) -> bytes:
    raw = HEAD + b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    for level in range(1, levels):
        raw += b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (level - 1, level)
    raw += b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeepest\r\n" % (levels - 1)
    for level in range(levels - 1, -1, -1):
        raw += b"--b%d--\r\n" % level
    return raw


# A guard against hangs and quadratic blow-ups, not a speed target (those live in bench/): generous enough that a
# busy shared machine never trips it (the 20,000-part case takes ~5 s under coverage on an idle 2-core machine).
HANG_GUARD_SECONDS = 60


def many_parts(count: int) -> bytes:
    part = b"--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n"
    return HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + part * count + b"--b--\r\n"


@pytest.mark.timeout(HANG_GUARD_SECONDS)
def test_nesting_within_the_cap_is_kept() -> None:
    parsed = parse(nested_multiparts(99))
    assert parsed.text_body == "deepest"
    assert parsed.defects == ()


@pytest.mark.timeout(HANG_GUARD_SECONDS)
@pytest.mark.parametrize("levels", [101, 500, 1_500, 5_000])
def test_deep_nesting_is_cut_with_a_defect(levels: int) -> None:
    """500 levels parse in the stdlib; 1,500 and 5,000 overflow its recursion and go through the structure bound."""
    parsed = parse(nested_multiparts(levels))
    assert parsed.subject == "s"
    assert parsed.text_body == ""
    assert "NestingTooDeepDefect" in parsed.defects


@pytest.mark.timeout(HANG_GUARD_SECONDS)
def test_message_rfc822_chain_is_bounded() -> None:
    raw = HEAD + b"Content-Type: message/rfc822\r\n\r\n" * 3_000 + b"Subject: inner\r\n\r\nbody\r\n"
    parsed = parse(raw)
    assert parsed.subject == "s"
    assert [a.filename for a in parsed.attachments] == ["message.eml"]
    assert "NestingTooDeepDefect" in parsed.defects


@pytest.mark.timeout(HANG_GUARD_SECONDS)
def test_part_count_at_the_limit_is_kept() -> None:
    parsed = parse(many_parts(9_999))
    assert len(parsed.attachments) == 9_999
    assert "TooManyPartsDefect" not in parsed.defects


@pytest.mark.timeout(HANG_GUARD_SECONDS)
@pytest.mark.parametrize("count", [20_000, 300_000])
def test_huge_part_counts_are_cut(count: int) -> None:
    parsed = parse(many_parts(count))
    assert 9_000 <= len(parsed.attachments) < 10_000
    assert all(a.data == b"x" for a in parsed.attachments)
    assert "TooManyPartsDefect" in parsed.defects


@pytest.mark.timeout(HANG_GUARD_SECONDS)
@pytest.mark.parametrize(
    "header",
    [
        b"To: " + b"=?utf-8?q?a?= <a@b.example>, " * 20_000,
        b"To: " + b"(" * 50_000 + b"a@b.example",
        b"To: " + b'"' * 50_000,
        b'To: "unterminated <a@example.org>, good@example.org',
        b"To: a@, @b, <>, <<<>>>, ::;;, a@b.example",
        b"Subject: " + b"=?utf-8?q?a?= " * 100_000,
        b"Subject: " + b"=?" * 100_000,
        b"Subject: " + b"x" * 1_000_000,
        b"Subject: =?utf-8?b?####?= =?unknown?x?abc?= =?utf-8?q?=ZZ?=",
        b"X-Long: " + b"a\r\n " * 50_000,
    ],
    ids=[
        "20k-encoded-addresses",
        "nested-comments",
        "quotes",
        "unterminated-quote",
        "junk-addresses",
        "100k-encoded-words",
        "encoded-word-starts",
        "1MB-subject",
        "broken-encoded-words",
        "50k-folds",
    ],
)
def test_hostile_headers(header: bytes) -> None:
    parsed = parse(b"From: a@example.com\r\n" + header + b"\r\n\r\nbody\r\n")
    assert parsed.from_ is not None and parsed.from_.email == "a@example.com"
    assert parsed.text_body == "body\n"


@pytest.mark.timeout(HANG_GUARD_SECONDS)
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"no headers at all, just text\r\n",
        bytes(range(256)) * 64,
        b"\x00" * 10_000,
        HEAD,
        HEAD + b"Content-Type: multipart/mixed\r\n\r\nno delimiter lines at all\r\n",
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nnever closed\r\n',
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b--\r\n',
        HEAD + b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\nContent-Type: image/gif\r\n\r\nx\r\n',
        HEAD + b"Content-Type: pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n",
        HEAD + b"Content-Type: text/plain; charset=zlib\r\n\r\nnot compressed\r\n",
        HEAD + b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\ud800 \\x00\r\n",
        HEAD + b"Content-Type: text/plain; charset=utf-16\r\n\r\n\xff\xfe\x00\xd8\r\n",
        HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n!!!\r\n",
        HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=\r\n",
        HEAD
        + b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"Subject: inner\r\n\r\nbody\r\n")
        + b"\r\n",
        HEAD.replace(b"\r\n", b"\n") + b"\nLF-only message\n",
        HEAD.replace(b"\r\n", b"\r") + b"\rCR-only message\r",
        HEAD + b"Subject: \xff\xfe\x80 invalid utf-8\r\nX-Raw: \xc3\x28\r\n\r\nbody \xff\r\n",
        HEAD + b'Content-Type: text/plain; charset="\r\n\r\nbody\r\n',
        HEAD + b"Content-Disposition: attachment; filename*0*=bogus''%ZZ; filename*1=\"\r\n\r\nx\r\n",
    ],
)
def test_broken_input_never_raises(raw: bytes) -> None:
    parse(raw)


@pytest.mark.timeout(HANG_GUARD_SECONDS)
def test_base64_rfc822_attachment_is_decoded() -> None:
    inner = b"Subject: inner\r\n\r\nbody\r\n"
    raw = (
        HEAD
        + b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(inner)
        + b"\r\n"
    )
    (attachment,) = parse(raw).attachments
    assert attachment.data == inner


@pytest.mark.timeout(HANG_GUARD_SECONDS)
def test_crlf_never_reaches_header_fields() -> None:
    raw = (
        b"From: =?utf-8?q?x=0D=0ABcc=3A_v=40e=2Ecom?= <a@example.com>\r\n"
        b"Subject: =?utf-8?b?" + base64.b64encode(b"a\r\nBcc: v@e.com\x00") + b"?=\r\n"
        b"X-A: =?utf-8?q?1=0A2=0D3?=\r\n"
        b"\r\nbody\r\n"
    )
    parsed = parse(raw)
    assert parsed.subject == "a Bcc: v@e.com"
    assert parsed.from_ is not None and parsed.from_.name == "x Bcc: v@e.com"
    assert parsed.extra_headers == (("X-A", "1 2 3"),)


def _with_attachment(data: bytes, filename: str) -> bytes:
    return (
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''"
        + filename.encode()
        + b"\r\n\r\n"
        + base64.b64encode(data)
        + b"\r\n--b--\r\n"
    )


def test_attachment_at_the_limit_is_accepted() -> None:
    parsed = parse(_with_attachment(b"x" * 100, "report.pdf"), limit=100)
    assert [len(a.data) for a in parsed.attachments] == [100]


def test_attachment_over_the_limit_is_rejected_with_an_smtp_safe_reason() -> None:
    with pytest.raises(AttachmentTooLarge) as rejected:
        parse(_with_attachment(b"x" * 101, "r%C3%A9sum%C3%A9%0D%0Aevil.pdf"), limit=100)
    assert rejected.value.reason == "attachment r?sum? evil.pdf exceeds the 100-byte limit"
    assert rejected.value.reason.isascii() and rejected.value.reason.isprintable()


def test_no_limit_means_no_rejection() -> None:
    assert len(parse(_with_attachment(b"x" * 100_000, "big.pdf")).attachments[0].data) == 100_000


def test_missing_message_id_stays_missing_and_the_identity_comes_from_what_the_client_sent() -> None:
    raw = b"Subject: x\r\n\r\nbody"
    assert parse_message(raw).message_id == ""
    first = message_identity(raw, "", "a@x.test")
    assert first == message_identity(raw, "", "a@x.test")  # the same bytes sent again: the same message
    assert first != message_identity(raw + b"!", "", "a@x.test")
    assert first != message_identity(raw, "", "b@x.test")
    assert message_identity(raw, "<id@client>", "a@x.test") == "<id@client>"
    generated = derived_message_id(first, "relay.example")
    assert generated == derived_message_id(first, "relay.example")
    assert generated.startswith("<") and generated.endswith("@relay.example>")
    assert len(generated) == len("<@relay.example>") + 32


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Message-ID: <a@b>", "<a@b>"),
        (b"Message-ID:   <a@b> (comment)", "<a@b>"),
        (b"Message-ID: a@b", "<a@b>"),
        (b"Message-ID:\r\n <folded@b>", "<folded@b>"),
    ],
)
def test_message_id_kept_or_repaired(header: bytes, expected: str) -> None:
    assert parse(header + b"\r\n\r\nbody").message_id == expected


def test_python_folded_comma_after_a_bare_address_still_separates() -> None:
    """Found by hypothesis: Python 3.11's folder writes the separator as an encoded word after a bare addr-spec."""
    raw = (
        b"From: 0@0.example\r\nTo: =?utf-8?b?MMKhwqHCoQ==?= <a@x.example>, b@x.example\r\n"
        b" =?utf-8?q?=2C?= c@x.example\r\nSubject: s\r\n\r\nbody\r\n"
    )
    parsed = parse(raw)
    assert [a.email for a in parsed.to] == ["a@x.example", "b@x.example", "c@x.example"]
    assert parsed.to[0].name == "0\u00a1\u00a1\u00a1"


def test_the_stdlib_still_stores_payloads_where_the_parser_reads_them() -> None:
    """parser._payload reads Message._payload (child parts, or the body as surrogate-escaped bytes), a private
    attribute: this fails loudly if a Python upgrade changes it, rather than every 8-bit body going missing."""
    from email import policy
    from email.parser import BytesParser

    leaf = BytesParser(policy=policy.default).parsebytes(b"Content-Type: text/plain\r\n\r\nh\xc3\xa9\r\n")
    assert leaf._payload == "h\udcc3\udca9\r\n"  # type: ignore[attr-defined]
    tree = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\nx\r\n--B--\r\n"
    )
    assert isinstance(tree._payload, list) and len(tree._payload) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("charset", ["ascii", "ut\x00f-8", "no-such-charset"])
def test_an_8bit_body_is_read_as_received_whatever_its_charset_says(charset: str) -> None:
    raw = f"From: a@example.com\r\nContent-Type: text/plain; charset={charset}\r\n\r\n".encode() + b"h\xc3\xa9\r\n"
    assert parse(raw).text_body == "h\u00e9\n"


def test_an_attached_message_with_a_boundaryless_multipart_is_forwarded_as_received() -> None:
    inner = b"Subject: inner\r\nContent-Type: multipart/mixed; charset=ut\x00f-8\r\n\r\nh\xff\r\n"
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=O\r\n\r\n"
        b"--O\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--O--\r\n"
    )
    assert [a.data for a in parse(raw).attachments] == [inner]
