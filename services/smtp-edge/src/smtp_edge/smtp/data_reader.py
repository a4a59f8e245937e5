"""DATA read in bulk instead of line by line.

aiosmtpd reads DATA one line at a time through a 1 KiB-limited StreamReader: about 270,000 Python iterations and
thousands of transport pauses for a 20 MB message, on the event loop every other session shares. Here the reader
looks for the end-of-data sequence itself (a memchr for its dot, then a C search) over pieces of up to 256 KiB,
and the line-ending check, the line-length check and the search for dot-stuffed lines are C-speed passes over each
piece as it arrives (LineScan). Replies come from the reply table (smtp/replies.py).

Line endings (docs/smtp.md): DATA ends only at <CRLF>.<CRLF> as sent on the wire. Inside the message a bare LF or a
bare CR is, by default, a line end like CRLF (Postfix's `smtpd_forbid_bare_newline = normalize`, and what Python's
email parser does with them anyway), so the line-length check, dot-unstuffing and the MIME parser all see the same
lines; `BARE_NEWLINE=reject` refuses such messages instead.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum

from smtp_edge.smtp import replies

END_OF_DATA = b"\r\n.\r\n"
# RFC 5321 4.5.3.1.6: 1000 octets with CRLF, plus one for a transparent dot: a line is too long when 1001 octets
# (its CR included) come before its LF.
_LINE_LIMIT = 1001
# The reader takes DATA in pieces of up to this, and its stream pauses the socket at twice this buffered. It bounds
# what one upload costs the event loop per turn, while every other session waits for the turn to end: with 1 MiB,
# four clients uploading 25 MB at once put a small message's p99 at 340-860 ms, with 256 KiB at 180-410 ms (same runs,
# docs/security.md, "Resource exhaustion").
_PIECE_LIMIT = 256 * 1024
# The end of the header block: an empty line, whatever ends the lines around it (CRLF, or a bare LF or CR, which
# BARE_NEWLINE=normalize makes line ends too), i.e. the first of LF-CR, LF-LF or CR-CR. The DATA command's own CRLF
# comes first, so a message that starts with its empty line (no headers) is found as well. Two patterns, each with
# a literal first byte the engine can skip to: as one alternation (`\n[\r\n]|\r\r`) it tried every offset, 4-8x
# slower, and was a third of the edge's CPU while 4 clients sent headers at the size limit (docs/security.md).
_EMPTY_LINE_AFTER_LF = re.compile(rb"\n[\r\n]")
_EMPTY_LINE_AFTER_CR = re.compile(rb"\r\r")
_BARE_CR = re.compile(rb"\r(?!\n)")


class BareNewline(StrEnum):
    """What a CR or LF outside CRLF inside DATA means (`BARE_NEWLINE`)."""

    NORMALIZE = "normalize"
    REJECT = "reject"


class DataProblem(Enum):
    """The reply (smtp/replies.py) for a message refused while it was read; TOO_MUCH_DATA's has the size limit."""

    LINE_TOO_LONG = replies.LINE_TOO_LONG
    TOO_MUCH_DATA = replies.TOO_BIG
    BARE_LINE_ENDING = replies.BARE_LINE_ENDING
    HEADERS_TOO_LARGE = replies.HEADERS_TOO_LARGE  # {limit}: the header limit
    NO_BUDGET = replies.INSUFFICIENT_RESOURCES  # the bytes in flight budget refused a piece (smtp/data_budget.py)


@dataclass(frozen=True, slots=True)
class DataOutcome:
    content: bytes
    problem: DataProblem | None


def normalize_line_endings(data: bytearray) -> bytearray | None:
    """Every bare LF and bare CR (not part of CRLF) becomes CRLF: C-speed passes, none when there is nothing to do
    (the common case costs three counts). None when `data` already had CRLF line endings only."""
    pairs = data.count(b"\r\n")
    bare_lf = data.count(b"\n") != pairs
    bare_cr = data.count(b"\r") != pairs
    if not bare_lf and not bare_cr:
        return None
    lf_only = data.replace(b"\r\n", b"\n")
    if bare_cr:
        lf_only = lf_only.replace(b"\r", b"\n")
    return lf_only.replace(b"\n", b"\r\n")


def find_empty_line(data: bytearray, start: int) -> int:
    """Where the first empty line at or after `start` begins (the line end before it), or -1."""
    found = [
        m.start() for m in (_EMPTY_LINE_AFTER_LF.search(data, start), _EMPTY_LINE_AFTER_CR.search(data, start)) if m
    ]
    return min(found, default=-1)


def scan_lines(data: bytearray, line_start: int, end: int) -> tuple[bool, int]:
    """Whether a line starting at or after `line_start` (a line start) has _LINE_LIMIT octets before its LF within
    data[:end], and the line start to go on from. Jumps a window of _LINE_LIMIT octets at a time to the last LF in
    it (rfind, in C): ~20x faster than a regex that visits every line, and never more than two windows per line."""
    rfind = data.rfind
    while end - line_start >= _LINE_LIMIT:
        newline = rfind(b"\n", line_start, line_start + _LINE_LIMIT)
        if newline < 0:
            return True, line_start
        line_start = newline + 1
    return False, line_start


class LineScan:
    """What finish() needs to know of a message's lines, learned piece by piece while it is read: at the end of a
    25 MB upload the passes over all of it at once (line endings, line lengths, dot-stuffing) held the event loop
    for ~350 ms, and every other session with it (docs/security.md, "Resource exhaustion"). Only the common case is
    learned this way, lines that all end in CRLF; a message with a bare LF or CR gets the whole passes in finish()."""

    __slots__ = ("_line_start", "checked", "crlf_only", "first_dot_line", "overlong")

    def __init__(self) -> None:
        self.crlf_only = True
        self.overlong = False
        self.first_dot_line = -1  # where the first CRLF followed by a dot begins
        self.checked = 0  # data[:checked] was looked at
        self._line_start = 0

    def feed(self, data: bytearray) -> None:
        """Looks at what was appended to `data` since the last call."""
        if not self.crlf_only:
            return
        start = self.checked
        end = len(data) - 1 if data.endswith(b"\r") else len(data)  # a CRLF split between pieces: next time
        if end <= start:
            return
        # No CR without its LF, and as many LFs as CRs: then every line end is a CRLF.
        if _BARE_CR.search(data, start, end) or data.count(b"\n", start, end) != data.count(b"\r", start, end):
            self.crlf_only = False
            return
        if self.first_dot_line < 0:
            dot = data.find(b".", start, end)  # memchr first: base64 has no dot, so most large messages stop here
            if dot >= 0:
                self.first_dot_line = data.find(b"\r\n.", max(dot - 2, 0), end)
        if not self.overlong:
            self.overlong, self._line_start = scan_lines(data, self._line_start, end)
        self.checked = end


def finish(
    collected: bytearray, bare_newline: BareNewline = BareNewline.NORMALIZE, scan: LineScan | None = None
) -> DataOutcome:
    """Pure but for `collected`, emptied once a copy replaces it: CRLF + the dot-stuffed lines + ".CRLF" (as read);
    returns the message as sent. `scan`, when it saw all of `collected`, spares the passes over it (LineScan)."""
    if scan is not None and scan.crlf_only and scan.checked == len(collected):
        del collected[-3:]
        if scan.overlong:
            return DataOutcome(b"", DataProblem.LINE_TOO_LONG)
        # The terminator's own CRLF-dot begins at len - 2: a dot line before it is one to unstuff.
        return DataOutcome(_content(collected, unstuff=0 <= scan.first_dot_line < len(collected) - 2), None)
    del collected[-3:]  # the final ".\r\n"; `collected` now ends with the CRLF that ended the last line
    if bare_newline is BareNewline.REJECT:
        if normalize_line_endings(collected) is not None:
            return DataOutcome(b"", DataProblem.BARE_LINE_ENDING)
    else:
        # A last line ended by a bare LF right before <CRLF>.<CRLF>: the CRLF is the terminator's, not an empty line
        # (smtplib appends CRLF to bytes that do not end with it, e.g. EmailMessage.as_bytes()).
        if collected.endswith(b"\n\r\n") and not collected.endswith(b"\r\n\r\n"):
            del collected[-2:]
        normalized = normalize_line_endings(collected)
        if normalized is not None:
            collected.clear()  # the caller's reference would keep the unnormalized copy alive until it returns
            collected = normalized
    if scan_lines(collected, 0, len(collected))[0]:
        return DataOutcome(b"", DataProblem.LINE_TOO_LONG)
    # RFC 5321 4.5.2: a leading period on any line is removed (the leading CRLF makes line one a line too). After
    # normalisation that includes lines that ended in a bare LF or CR: a lone "." there becomes an empty line.
    return DataOutcome(_content(collected, unstuff=b"\r\n." in collected), None)


def _content(collected: bytearray, *, unstuff: bool) -> bytes:
    """The message (`collected` without its leading CRLF, dot-unstuffed when `unstuff`); empties `collected`. Never
    more than two copies of the message at once: the one being made and the one it is made from (the edge's memory
    per message in flight, docs/performance.md). Most messages have no line to unstuff: then one copy is made."""
    if unstuff:
        unstuffed = collected.replace(b"\r\n.", b"\r\n")
        collected.clear()
        collected = unstuffed
    content = bytes(memoryview(collected)[2:])
    collected.clear()
    return content


def find_end_of_data(data: bytearray, start: int) -> int:
    """The index just past the first <CRLF>.<CRLF> that begins at or after `start`, or -1. A dot is looked for
    first (memchr, ~20x faster than the 5-byte search): a base64 attachment has none, so most of a large message is
    passed over at that speed."""
    dot = data.find(b".", start + 2)  # the terminator's dot is its third byte
    if dot < 0:
        return -1
    found = data.find(END_OF_DATA, dot - 2)
    return found + len(END_OF_DATA) if found >= 0 else -1


async def read_data(
    reader: asyncio.StreamReader,
    size_limit: int | None,
    on_progress: Callable[[], None] = lambda: None,
    bare_newline: BareNewline = BareNewline.NORMALIZE,
    *,
    header_limit: int | None = None,
    admit: Callable[[int], bool] = lambda size: True,
) -> DataOutcome:
    """Reads up to and including the end-of-data line. Over the size limit, over `header_limit` bytes before the
    header block's empty line, or when `admit` refuses a piece's bytes (the bytes in flight budget), what was read is
    dropped at once and the rest read and dropped, so the reply comes after the client finished sending (RFC 5321
    4.2.5) and the session stays usable. `on_progress` runs after every piece: a slow but moving upload is not an
    idle client."""
    # Two private StreamReader attributes (asyncio's reader, on uvloop too): `_limit`, raised so that the reader
    # pauses its socket at twice _PIECE_LIMIT buffered and not at twice aiosmtpd's line limit (a pause and a resume
    # every 2 KiB), and `_buffer`, where the bytes the client pipelined after the end of data go back, in front of
    # anything buffered behind them, for aiosmtpd's command loop (feed_data appends, and refuses after EOF).
    # tests/unit/edge/test_stream_reader_internals.py fails loudly if a Python upgrade changes either.
    saved_limit = reader._limit  # type: ignore[attr-defined]
    reader._limit = _PIECE_LIMIT  # type: ignore[attr-defined]
    # The DATA command's own CRLF begins the first line: a message may end at once with a lone ".". Once the message
    # is refused, `kept` holds only the last bytes, for a terminator split between two reads.
    kept = bytearray(b"\r\n")
    scan = LineScan()
    received = len(kept)
    problem: DataProblem | None = None
    headers_end = -1 if header_limit else 0  # where the empty line was found; -1: not yet (0: not looked for)
    try:
        while True:
            piece = await reader.read(_PIECE_LIMIT)
            if not piece:
                raise ConnectionResetError("connection closed during DATA")
            before = len(kept)
            kept += piece
            end = find_end_of_data(kept, max(before - len(END_OF_DATA) + 1, 0))
            if end >= 0 and end < len(kept):
                reader._buffer[:0] = kept[end:]  # type: ignore[attr-defined]  # pipelined after the end of data
                del kept[end:]
            received += len(kept) - before
            on_progress()
            if problem is None:
                if size_limit and received - len(END_OF_DATA) > size_limit:
                    problem = DataProblem.TOO_MUCH_DATA
                elif not admit(len(kept) - before):
                    problem = DataProblem.NO_BUDGET
                else:
                    scan.feed(kept)
                    if headers_end < 0 and header_limit:
                        headers_end = find_empty_line(kept, max(before - 1, 0))
                        # The header block over its limit (or no empty line yet and past it already): refused now,
                        # not after the whole message was parsed.
                        header_bytes = headers_end if headers_end >= 0 else len(kept) - len(END_OF_DATA)
                        if header_bytes > header_limit:
                            problem = DataProblem.HEADERS_TOO_LARGE
            if end >= 0:
                break
            if problem is not None:
                del kept[: -len(END_OF_DATA)]  # memory is not for messages we refuse
    finally:
        reader._limit = saved_limit  # type: ignore[attr-defined]
    if problem is not None:
        return DataOutcome(b"", problem)
    return finish(kept, bare_newline, scan)
