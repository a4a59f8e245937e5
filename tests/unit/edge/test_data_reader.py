"""Bulk DATA reading: end-of-data detection across piece boundaries, line-ending normalisation, dot-unstuffing and
line limits."""

from __future__ import annotations

import asyncio
import re
import tracemalloc

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from smtp_edge.smtp import data_reader
from smtp_edge.smtp.data_reader import (
    END_OF_DATA,
    BareNewline,
    DataOutcome,
    DataProblem,
    LineScan,
    find_empty_line,
    find_end_of_data,
    finish,
    normalize_line_endings,
    read_data,
    scan_lines,
)


@pytest.mark.parametrize(
    ("collected", "content"),
    [
        (b"\r\n.\r\n", b""),
        (b"\r\nhello\r\n.\r\n", b"hello\r\n"),
        (b"\r\n..leading dot\r\n.\r\n", b".leading dot\r\n"),
        (b"\r\na\r\n..\r\n...\r\nb\r\n.\r\n", b"a\r\n.\r\n..\r\nb\r\n"),
        (b"\r\n.x\r\n.\r\n", b"x\r\n"),  # RFC 5321 4.5.2: any leading period goes
        (b"\r\nno.dot.here\r\n.\r\n", b"no.dot.here\r\n"),
    ],
)
def test_finish_unstuffs(collected: bytes, content: bytes) -> None:
    outcome = finish(bytearray(collected))
    assert (outcome.content, outcome.problem) == (content, None)


def test_line_length_limit_counts_octets_with_crlf() -> None:
    at_limit = b"\r\n" + b"x" * 998 + b"\r\n.\r\n"
    stuffed_at_limit = b"\r\n." + b"x" * 998 + b"\r\n.\r\n"  # the transparent dot is allowed on top
    over = b"\r\n" + b"x" * 1000 + b"\r\n.\r\n"
    assert finish(bytearray(at_limit)).problem is None
    assert finish(bytearray(stuffed_at_limit)).problem is None
    assert finish(bytearray(over)).problem is DataProblem.LINE_TOO_LONG


async def _read(chunks: list[bytes], limit: int | None = None) -> tuple[bytes, DataProblem | None, bytes]:
    reader = asyncio.StreamReader(limit=1001)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    outcome = await read_data(reader, limit)
    rest = await reader.read()
    return outcome.content, outcome.problem, rest


async def test_end_of_data_split_across_pieces_and_pipelined_rest_kept() -> None:
    content, problem, rest = await _read([b"Subject: x\r\n\r\nbody\r", b"\n", b".", b"\r", b"\nQUIT\r\n"])
    assert (content, problem, rest) == (b"Subject: x\r\n\r\nbody\r\n", None, b"QUIT\r\n")


async def test_empty_message_and_lone_dot_line() -> None:
    assert await _read([b".\r\nNOOP\r\n"]) == (b"", None, b"NOOP\r\n")


async def test_large_message_over_many_pieces() -> None:
    body = b"".join(b"line %d ..\r\n" % i for i in range(200_000))
    content, problem, rest = await _read([body[i : i + 7777] for i in range(0, len(body), 7777)] + [b".\r\n"])
    assert problem is None and rest == b""
    assert content == body


async def test_too_much_data_is_read_to_the_end_and_refused() -> None:
    content, problem, rest = await _read([b"x" * 900 + b"\r\n"] * 100 + [b".\r\nRSET\r\n"], limit=10_000)
    assert (content, problem, rest) == (b"", DataProblem.TOO_MUCH_DATA, b"RSET\r\n")


async def test_a_dropped_connection_is_a_reset() -> None:
    with pytest.raises(ConnectionResetError):
        await _read([b"partial message\r\n"])


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (b"a\r\nb\r\n", None),
        (b"", None),
        (b"a\nb\r\n", b"a\r\nb\r\n"),
        (b"a\rb\r\n", b"a\r\nb\r\n"),
        (b"a\r\n.\nMAIL FROM:<x>\r\n", b"a\r\n.\r\nMAIL FROM:<x>\r\n"),
        (b"a\r\r\n", b"a\r\n\r\n"),
        (b"a\n\r\n", b"a\r\n\r\n"),
        (b"\n\n\r\r", b"\r\n\r\n\r\n\r\n"),
        (b"a\n\rb", b"a\r\n\r\nb"),  # LF then CR: two line ends, not one reversed CRLF
    ],
)
def test_normalize_line_endings(raw: bytes, normalized: bytes | None) -> None:
    result = normalize_line_endings(bytearray(raw))
    assert (None if result is None else bytes(result)) == normalized


# Each wire form of "a line, a lone dot, a line" that is NOT <CRLF>.<CRLF>; read_data gets the bytes up to the real
# end of data. The dot line is unstuffed like every other line (it becomes empty) and the text after it stays.
NOT_END_OF_DATA = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n"]


@pytest.mark.parametrize("sequence", NOT_END_OF_DATA, ids=lambda s: repr(s).replace("\\", "/"))
async def test_bare_dot_sequences_never_end_data(sequence: bytes) -> None:
    wire = b"Subject: s\r\n\r\nhello" + sequence + b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<e@x.test>\r\n.\r\nNOOP\r\n"
    content, problem, rest = await _read([wire])
    assert problem is None and rest == b"NOOP\r\n"
    assert content == b"Subject: s\r\n\r\nhello\r\n\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<e@x.test>\r\n"


@pytest.mark.parametrize(
    ("collected", "content"),
    [
        # smtplib's sendmail(bytes) with an LF-only message: last line's LF, then smtplib's CRLF, then ".CRLF".
        (b"\r\nSubject: x\n\nbody\n\r\n.\r\n", b"Subject: x\r\n\r\nbody\r\n"),
        (b"\r\nSubject: x\n\n..dot\nbody\n\r\n.\r\n", b"Subject: x\r\n\r\n.dot\r\nbody\r\n"),
        (b"\r\nSubject: x\r\n\nbody\r\n.\r\n", b"Subject: x\r\n\r\nbody\r\n"),  # mixed
        (b"\r\nbody\r\n\r\n.\r\n", b"body\r\n\r\n"),  # a CRLF-only empty last line stays
        (b"\r\nbody\rmore\r\n.\r\n", b"body\r\nmore\r\n"),  # bare CR: a line end too
        (b"\r\nbody\r.x\r\n.\r\n", b"body\r\nx\r\n"),  # ... so a dot after it is unstuffed like any line's
    ],
)
def test_finish_normalizes_line_endings(collected: bytes, content: bytes) -> None:
    outcome = finish(bytearray(collected))
    assert (outcome.content, outcome.problem) == (content, None)


def test_the_line_length_check_sees_normalized_lines() -> None:
    lf_lines = b"\r\n" + (b"x" * 998 + b"\n") * 3 + b"\r\n.\r\n"  # each line fits once its LF is a line end
    assert finish(bytearray(lf_lines)).problem is None
    assert finish(bytearray(b"\r\n" + b"x" * 600 + b"\r" + b"y" * 600 + b"\r\n.\r\n")).problem is None
    assert finish(bytearray(b"\r\n" + b"x" * 1001 + b"\n\r\n.\r\n")).problem is DataProblem.LINE_TOO_LONG


@pytest.mark.parametrize("collected", [b"\r\na\nb\r\n.\r\n", b"\r\na\rb\r\n.\r\n", b"\r\nhello\n\r\n.\r\n"])
def test_reject_mode_refuses_bare_line_endings(collected: bytes) -> None:
    outcome = finish(bytearray(collected), BareNewline.REJECT)
    assert (outcome.content, outcome.problem) == (b"", DataProblem.BARE_LINE_ENDING)
    clean = finish(bytearray(b"\r\na\r\n..b\r\n.\r\n"), BareNewline.REJECT)
    assert (clean.content, clean.problem) == (b"a\r\n.b\r\n", None)


@given(st.lists(st.sampled_from([b"a", b"b", b".", b" ", b"\r", b"\n", b"\r\n", b".."]), max_size=40))
def test_normalized_content_has_crlf_line_endings_only(pieces: list[bytes]) -> None:
    outcome = finish(bytearray(b"\r\n" + b"".join(pieces) + b"\r\n.\r\n"))
    assert outcome.problem is None
    text = outcome.content
    assert text.count(b"\r") == text.count(b"\n") == text.count(b"\r\n")
    assert text.endswith(b"\r\n") or text == b""


async def _read_with(
    chunks: list[bytes], *, header_limit: int | None = None, admit: object = None
) -> tuple[bytes, DataProblem | None, bytes]:
    reader = asyncio.StreamReader(limit=1001)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    kwargs: dict[str, object] = {"header_limit": header_limit}
    if admit is not None:
        kwargs["admit"] = admit
    outcome = await read_data(reader, None, **kwargs)  # type: ignore[arg-type]
    return outcome.content, outcome.problem, await reader.read()


@pytest.mark.parametrize("blank", [b"\r\n\r\n", b"\n\n", b"\r\n\n", b"\r\r\n", b"\n\r\n"])
async def test_headers_under_the_limit_pass_whatever_the_line_ends(blank: bytes) -> None:
    headers = b"X-H: " + b"v" * 90 + b"\r\n" * 9 + b"Subject: s"
    body = (b"b" * 98 + b"\r\n") * 50  # a body far longer than the header limit is no header
    content, problem, rest = await _read_with([headers + blank + body + b".\r\nQUIT\r\n"], header_limit=200)
    assert problem is None and rest == b"QUIT\r\n"
    assert content.endswith(body)


async def test_a_message_without_headers_passes() -> None:
    body = (b"b" * 98 + b"\r\n") * 30
    content, problem, _ = await _read_with([b"\r\n" + body + b".\r\n"], header_limit=100)
    assert (problem, content) == (None, b"\r\n" + body)


async def test_a_header_block_over_the_limit_is_refused_while_read_and_the_rest_dropped() -> None:
    line = b"X-Filler: " + b"x" * 988 + b"\r\n"
    pieces = [line] * 3000  # ~3 MB of headers
    content, problem, rest = await _read_with([*pieces, b"\r\nbody\r\n.\r\nNOOP\r\n"], header_limit=1_000_000)
    assert (content, problem, rest) == (b"", DataProblem.HEADERS_TOO_LARGE, b"NOOP\r\n")


async def test_an_empty_line_found_past_the_limit_is_still_too_large() -> None:
    headers = (b"X-Filler: " + b"x" * 88 + b"\r\n") * 30  # 3000 bytes, one piece
    _, problem, _ = await _read_with([headers + b"\r\nbody\r\n.\r\n"], header_limit=1000)
    assert problem is DataProblem.HEADERS_TOO_LARGE


async def test_headers_only_over_the_limit_are_refused() -> None:
    headers = (b"X-Filler: " + b"x" * 88 + b"\r\n") * 30
    _, problem, _ = await _read_with([headers + b".\r\n"], header_limit=1000)
    assert problem is DataProblem.HEADERS_TOO_LARGE


async def test_a_piece_the_budget_refuses_drops_the_message_and_reads_on() -> None:
    asked: list[int] = []

    def admit(size: int) -> bool:
        asked.append(size)
        return len(asked) < 2  # the first piece fits, the second does not

    big = (b"x" * 998 + b"\r\n") * 1500  # 1.5 MB: two pieces
    content, problem, rest = await _read_with([b"Subject: s\r\n\r\n", big, b".\r\nQUIT\r\n"], admit=admit)
    assert (content, problem, rest) == (b"", DataProblem.NO_BUDGET, b"QUIT\r\n")
    assert len(asked) == 2  # not asked again for what is read and dropped


def test_finish_without_dot_stuffing_returns_the_same_bytes() -> None:
    collected = bytearray(b"\r\nSubject: s\r\n\r\nbody\r\n.\r\n")
    assert finish(collected).content == b"Subject: s\r\n\r\nbody\r\n"


# The reader's fast paths against the plain definitions they replace: a line is too long when 1001 octets come
# before its LF (the regex finish() used), and the header block ends at the first LF-CR, LF-LF or CR-CR.
_TOO_LONG_REFERENCE = re.compile(rb"(?m)^[^\n]{1001}")
_EMPTY_LINE_REFERENCE = re.compile(rb"\n[\r\n]|\r\r")
_LINE_PARTS = st.sampled_from([b"x" * 499, b"x" * 997, b"y", b".", b"\r", b"\n", b"\r\n", b"\r\n.", b".."])


@given(st.lists(_LINE_PARTS, max_size=30))
def test_scan_lines_agrees_with_the_line_regex(parts: list[bytes]) -> None:
    data = bytearray(b"".join(parts))
    assert scan_lines(data, 0, len(data))[0] == (_TOO_LONG_REFERENCE.search(data) is not None)


@given(st.lists(_LINE_PARTS, max_size=30), st.integers(min_value=0, max_value=40))
@example([b"y", b"\r", b"\r", b"y", b"\n", b"\n"], 0)  # CR-CR before an LF-LF: the CR pattern's match comes first
@example([b"y", b"\n", b"\r", b"y", b"\r", b"\r"], 0)  # LF-CR first
def test_find_empty_line_agrees_with_the_alternation(parts: list[bytes], start: int) -> None:
    data = bytearray(b"".join(parts))
    found = _EMPTY_LINE_REFERENCE.search(data, start)
    assert find_empty_line(data, start) == (found.start() if found else -1)


@given(
    st.lists(_LINE_PARTS, max_size=30),
    st.lists(st.integers(min_value=1, max_value=3000), max_size=6),
    st.sampled_from(list(BareNewline)),
)
def test_finish_after_a_piecewise_scan_equals_finish_over_the_whole(
    parts: list[bytes], cuts: list[int], mode: BareNewline
) -> None:
    """The scan sees the message in pieces split anywhere (a CRLF or CRLF-dot cut in two included), like read_data."""
    whole = b"\r\n" + b"".join(parts) + b"\r\n.\r\n"
    collected, scan = bytearray(), LineScan()
    offset = 0
    for cut in [*sorted(cuts), len(whole)]:
        collected += whole[offset:cut]
        offset = max(offset, min(cut, len(whole)))
        scan.feed(collected)
    assert bytes(collected) == whole
    assert finish(bytearray(whole), mode, scan) == finish(bytearray(whole), mode)


def test_a_scan_that_did_not_see_everything_is_not_trusted() -> None:
    scan = LineScan()
    scan.feed(bytearray(b"\r\nshort\r\n"))
    whole = bytearray(b"\r\nshort\r\n" + b"x" * 1001 + b"\r\n.\r\n")  # the scan never saw the long line
    assert finish(whole, BareNewline.NORMALIZE, scan).problem is DataProblem.LINE_TOO_LONG


async def test_read_data_finds_a_long_line_and_a_stuffed_dot_across_its_pieces() -> None:
    filler = (b"f" * 98 + b"\r\n") * (data_reader._PIECE_LIMIT // 100)  # just under the first piece
    long_line = b"x" * 1000 + b"\r\n"
    content, problem, _ = await _read([b"Subject: s\r\n\r\n", filler, long_line, filler, b".\r\n"])
    assert problem is DataProblem.LINE_TOO_LONG
    ok_line = b"x" * 998 + b"\r\n"
    stuffed = b"..x" + b"y" * 995 + b"\r\n"  # 998 octets once the dot is gone
    content, problem, _ = await _read([b"Subject: s\r\n\r\n", filler, ok_line, stuffed, filler, b".\r\n"])
    assert (content, problem) == (b"Subject: s\r\n\r\n" + filler + ok_line + stuffed[1:] + filler, None)


@given(st.lists(st.sampled_from([b"x", b".", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b"..", b"\r\n."]), max_size=25))
def test_find_end_of_data_is_the_first_terminator_from_start(parts: list[bytes]) -> None:
    data = bytearray(b"".join(parts))
    for start in range(len(data) + 1):
        found = data.find(END_OF_DATA, start)
        assert find_end_of_data(data, start) == (found + 5 if found >= 0 else -1)


async def test_bytes_pipelined_behind_the_end_go_back_in_front_of_what_is_buffered() -> None:
    """A read may take the end of data and the commands behind it at once, with more still buffered behind them."""
    reader = asyncio.StreamReader(limit=1001)
    body = (b"x" * 98 + b"\r\n") * (data_reader._PIECE_LIMIT // 100 - 1)
    head = b"Subject: s\r\n\r\n" + body + b".\r\nMAIL FROM:<a@b.test>\r\n"
    rcpt = b"RCPT TO:<" + b"c" * 180 + b"@d.test>\r\n"
    reader.feed_data(head + rcpt)  # longer than one read: the read ends inside the RCPT, the rest stays buffered
    assert len(head) < data_reader._PIECE_LIMIT < len(head + rcpt)
    reader.feed_eof()
    outcome = await read_data(reader, None)
    assert (outcome.problem, outcome.content) == (None, b"Subject: s\r\n\r\n" + body)
    assert await reader.read() == b"MAIL FROM:<a@b.test>\r\n" + rcpt


_MESSAGE_LINES = (b"x" * 76 + b"\r\n") * 40_000  # ~3 MiB: big enough that the copies dominate what is traced


@pytest.mark.parametrize(
    ("lines", "scanned", "copies"),
    [
        (_MESSAGE_LINES, True, 1),  # the common case: CRLF only, nothing to unstuff
        (b"..stuffed\r\n" + _MESSAGE_LINES, True, 1),  # a line to unstuff
        (b"..stuffed\r\n" + _MESSAGE_LINES, False, 1),  # the same, without a scan
        # Normalised, then unstuffed: normalize_line_endings makes two copies while it works (a rare path).
        (b"bare LF\n..stuffed\r\n" + _MESSAGE_LINES, False, 2),
    ],
)
def test_finish_holds_one_copy_of_the_message_more_at_most(lines: bytes, scanned: bool, copies: int) -> None:
    """What the edge holds per message in flight (docs/performance.md): finish() empties what it was given (the
    caller's reference would keep it alive) as soon as a copy replaces it."""
    tracemalloc.start()
    try:
        collected = bytearray(b"\r\n" + lines + b".\r\n")
        scan = LineScan()
        if scanned:
            scan.feed(collected)
        size = len(collected)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        outcome = finish(collected, BareNewline.NORMALIZE, scan)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < (copies + 0.1) * size  # above `collected` itself
    assert outcome == DataOutcome(lines.replace(b"LF\n", b"LF\r\n").replace(b"\n..", b"\n.").removeprefix(b"."), None)
    assert collected == bytearray()
