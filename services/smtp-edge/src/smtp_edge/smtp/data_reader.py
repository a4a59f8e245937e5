"""DATA read in bulk instead of line by line.

aiosmtpd reads DATA one line at a time through a 1 KiB-limited StreamReader: about 270,000 Python iterations and
thousands of transport pauses for a 20 MB message, on the event loop every other session shares. Here the reader
looks for the end-of-data sequence itself (`readuntil`, in C) over pieces of up to 1 MiB, and the line-ending
normalisation, the line-length check and dot-unstuffing are single C-speed passes over the whole message. Replies
come from the reply table (smtp/replies.py).

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
# RFC 5321 4.5.3.1.6: 1000 octets with CRLF, plus one for a transparent dot; [^\n] counts the CR. Anchored at
# line starts: unanchored, the engine would rescan every line from each of its offsets (5x slower on 20 MB).
_OVERLONG_LINE = re.compile(rb"(?m)^[^\n]{1001}")
_PIECE_LIMIT = 1024 * 1024
# The end of the header block: an empty line, whatever ends the lines around it (CRLF, or a bare LF or CR, which
# BARE_NEWLINE=normalize makes line ends too). The DATA command's own CRLF comes first, so a message that starts
# with its empty line (no headers) is found as well.
_EMPTY_LINE = re.compile(rb"\n[\r\n]|\r\r")


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


def finish(collected: bytearray, bare_newline: BareNewline = BareNewline.NORMALIZE) -> DataOutcome:
    """Pure: `collected` is CRLF + the dot-stuffed lines + ".CRLF" (as read); returns the message as sent."""
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
            collected = normalized
    if _OVERLONG_LINE.search(collected):
        return DataOutcome(b"", DataProblem.LINE_TOO_LONG)
    # RFC 5321 4.5.2: a leading period on any line is removed (the leading CRLF makes line one a line too). After
    # normalisation that includes lines that ended in a bare LF or CR: a lone "." there becomes an empty line.
    # Most messages have no such line: then no copy is made here (one copy less of the message in memory).
    content = collected.replace(b"\r\n.", b"\r\n") if b"\r\n." in collected else collected
    return DataOutcome(bytes(memoryview(content)[2:]), None)


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
    # Two private StreamReader attributes (asyncio's reader, on uvloop too): `_buffer` and `_limit`. The public
    # alternative, read(n) plus our own search, cannot give back bytes pipelined after the end of data.
    # tests/unit/edge/test_stream_reader_internals.py fails loudly if a Python upgrade changes either.
    # The DATA command's own CRLF begins the first line: a message may end at once with a lone ".".
    reader._buffer[:0] = b"\r\n"  # type: ignore[attr-defined]
    saved_limit = reader._limit  # type: ignore[attr-defined]
    reader._limit = _PIECE_LIMIT  # type: ignore[attr-defined]
    collected = bytearray()
    received = 0
    problem: DataProblem | None = None
    headers_end = -1 if header_limit else 0  # where the empty line was found; -1: not yet (0: not looked for)
    try:
        while True:
            try:
                piece = await reader.readuntil(END_OF_DATA)
                finished = True
            except asyncio.LimitOverrunError as overrun:
                piece = await reader.readexactly(overrun.consumed)
                finished = False
            received += len(piece)
            on_progress()
            if problem is None:
                if size_limit and received - len(END_OF_DATA) > size_limit:
                    problem = DataProblem.TOO_MUCH_DATA
                elif not admit(len(piece)):
                    problem = DataProblem.NO_BUDGET
                else:
                    scanned = max(len(collected) - 1, 0)
                    collected += piece
                    if headers_end < 0 and header_limit:
                        empty_line = _EMPTY_LINE.search(collected, scanned)
                        if empty_line is not None:
                            headers_end = empty_line.start()
                        # The header block over its limit (or no empty line yet and past it already): refused now,
                        # not after the whole message was parsed.
                        header_bytes = headers_end if headers_end >= 0 else len(collected) - len(END_OF_DATA)
                        if header_bytes > header_limit:
                            problem = DataProblem.HEADERS_TOO_LARGE
                if problem is not None:
                    collected = bytearray()  # drop what was read: memory is not for messages we refuse
            if finished:
                break
    except asyncio.IncompleteReadError as eof:
        raise ConnectionResetError("connection closed during DATA") from eof
    finally:
        reader._limit = saved_limit  # type: ignore[attr-defined]
    if problem is not None:
        return DataOutcome(b"", problem)
    return finish(collected, bare_newline)
