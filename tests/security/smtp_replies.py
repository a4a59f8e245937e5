"""What an edge reply may look like, built from the documents that promise it (docs/smtp.md, docs/errors.md).

Pure: the fuzz tests hand it the raw bytes a session produced and get back every broken promise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
_DOCUMENTED = re.compile(r"`([2-5]\d\d)(?: ([245]\.\d{1,3}\.\d{1,3}))?[ `]")
_LINE = re.compile(rb"^([2-5]\d\d)([ -])(.*)$")
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")


@dataclass(frozen=True)
class Documented:
    codes: frozenset[int]
    pairs: frozenset[tuple[int, str]]


def documented(*names: str) -> Documented:
    """Every `NNN x.y.z ...` reply the documents list: the codes, and the (code, enhanced code) pairs."""
    codes: set[int] = set()
    pairs: set[tuple[int, str]] = set()
    for name in names or ("smtp.md", "errors.md"):
        for code, enhanced in _DOCUMENTED.findall((DOCS / name).read_text()):
            codes.add(int(code))
            if enhanced:
                pairs.add((int(code), enhanced))
    return Documented(frozenset(codes), frozenset(pairs))


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


def broken_promises(replies: list[Reply], allowed: Documented, hostname: str = "localhost") -> list[str]:
    """Codes the documents do not list, and 2xx/4xx/5xx replies without a matching enhanced status code (the
    greeting and the EHLO/HELO answers are exempt, as docs/smtp.md says)."""
    problems: list[str] = []
    for reply in replies:
        if reply.code not in allowed.codes:
            problems.append(f"undocumented code {reply.code}: {reply.lines!r}")
            continue
        first = reply.lines[0]
        greeting_or_hello = reply.code in (220, 250) and (first == hostname or first.startswith(hostname + " "))
        if greeting_or_hello or reply.code // 100 == 3:
            continue
        for line in reply.lines:
            enhanced = _ENHANCED.match(line)
            if enhanced is None:
                problems.append(f"no enhanced status code: {reply.code} {line!r}")
            elif int(enhanced[1]) != reply.code // 100:
                problems.append(f"enhanced code class differs: {reply.code} {line!r}")
            elif (reply.code, line.split(" ", 1)[0]) not in allowed.pairs:
                problems.append(f"undocumented pair {reply.code} {line.split(' ', 1)[0]}: {line!r}")
    return problems
