"""What an edge reply may look like: a row of the edge's reply table (smtp_edge/smtp/replies.py, which docs/smtp.md
lists exactly; tests/unit/edge/test_reply_table.py checks that).

Pure: the fuzz tests hand it the raw bytes a session produced and get back every broken promise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtp_edge.smtp import replies

_LINE = re.compile(rb"^([2-5]\d\d)([ -])(.*)$")


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]


def parse(stream: bytes) -> tuple[list[Reply], list[str]]:
    """The replies in a session's output, and every line that is not a well-formed reply line."""
    problems: list[str] = []
    replies: list[Reply] = []
    *complete, rest = stream.split(b"\r\n")
    if rest:
        problems.append(f"output does not end with CRLF: {rest[:80]!r}")
    pending: list[str] = []
    pending_code: int | None = None
    for raw in complete:
        match = _LINE.match(raw)
        if match is None or b"\r" in raw or b"\n" in raw:
            problems.append(f"malformed reply line {raw[:120]!r}")
            continue
        code, separator, text = int(match[1]), match[2], match[3].decode("utf-8", "replace")
        if pending_code is not None and code != pending_code:
            problems.append(f"multi-line reply changes code {pending_code} -> {code}: {raw[:120]!r}")
        pending.append(text)
        pending_code = code
        if separator == b" ":
            replies.append(Reply(code, tuple(pending)))
            pending, pending_code = [], None
    if pending:
        problems.append(f"unfinished multi-line reply {pending!r}")
    return replies, problems


def broken_promises(found: list[Reply], hostname: str = "localhost") -> list[str]:
    """Replies that are not rows of the reply table. The greeting and the EHLO/HELO lines (the rows whose text
    starts with the hostname) are recognised by that hostname."""
    problems: list[str] = []
    for reply in found:
        first = reply.lines[0]
        if reply.code in (220, 250) and (first == hostname or first.startswith(hostname + " ")):
            continue
        for line in reply.lines:
            if replies.find(f"{reply.code} {line}") is None:
                problems.append(f"not in the reply table: {reply.code} {line!r}")
    return problems
