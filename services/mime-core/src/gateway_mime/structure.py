"""A line scan that bounds a message's MIME structure before the stdlib parser sees it.

The stdlib parser recurses once per nesting level (RecursionError near 1,000 levels) and builds one object per
part (a 25 MB message can hold millions of empty parts). Only messages that trip one of those limits are rewritten:
multipart or message/* parts nested deeper than the depth limit get a marker content type (the walk then drops
them), and the message is cut, with every open multipart closed, before the part past the part limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Content type given to a part the scan cut off for nesting; the walk drops parts of this type.
TOO_DEEP_TYPE = "application/x-smtp-edge-nested-too-deep"

_CONTENT_TYPE = re.compile(rb"content-type[ \t]*:[ \t]*([^;\s]*)", re.IGNORECASE)
_BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"]*)"|([^\s;"]+))""", re.IGNORECASE)
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def needs_bounding(raw: bytes, max_parts: int) -> bool:
    """Cheap (C-speed) upper bound on the part count: every part needs a line starting with "--"."""
    return raw.count(b"\n--") + raw.count(b"\r--") > max_parts


@dataclass(slots=True)
class _Scan:
    max_depth: int
    max_parts: int
    out: list[bytes] = field(default_factory=list)
    # One entry per open container: a multipart's boundary, or None for a message/* part.
    stack: list[bytes | None] = field(default_factory=list)
    headers: list[bytes] | None = field(default_factory=list)
    parts: int = 0
    defects: list[str] = field(default_factory=list)

    def end_headers(self) -> None:
        block = self.headers or []
        self.headers = None
        index = next((i for i, line in enumerate(block) if _CONTENT_TYPE.match(line)), None)
        if index is None:
            self.out.extend(block)
            return
        end = index + 1
        while end < len(block) and block[end][:1] in (b" ", b"\t"):
            end += 1
        value = b"".join(line.strip(b"\r\n") for line in block[index:end])
        match = _CONTENT_TYPE.match(value)
        ctype = match.group(1).lower() if match else b""
        boundary = _BOUNDARY.search(value)
        container = ctype.startswith(b"multipart/") and boundary is not None
        container = container or (ctype.startswith(b"message/") and ctype != b"message/delivery-status")
        if container and len(self.stack) >= self.max_depth:
            block[index:end] = [b"Content-Type: " + TOO_DEEP_TYPE.encode() + b"\r\n"]
            if "NestingTooDeepDefect" not in self.defects:
                self.defects.append("NestingTooDeepDefect")
        elif container and boundary is not None and ctype.startswith(b"multipart/"):
            self.stack.append(boundary.group(1) if boundary.group(1) is not None else boundary.group(2))
        elif container:
            self.stack.append(None)
            self.headers = []  # the body of a message/* part starts with the enclosed message's headers
        self.out.extend(block)

    def boundary_line(self, line: bytes) -> bool:
        """Handles a delimiter of an open multipart; False when the line is ordinary content."""
        core = line.rstrip(b"\r\n").rstrip(b" \t")
        for level in range(len(self.stack) - 1, -1, -1):
            boundary = self.stack[level]
            if boundary is None or not core.startswith(b"--" + boundary):
                continue
            rest = core[len(boundary) + 2 :]
            if rest == b"--":
                del self.stack[level:]
                self.out.append(line)
                return True
            if rest:
                continue
            self.parts += 1
            if self.parts > self.max_parts:
                self.close_all()
                return True
            del self.stack[level + 1 :]
            self.out.append(line)
            self.headers = []
            return True
        return False

    def close_all(self) -> None:
        if "TooManyPartsDefect" not in self.defects:
            self.defects.append("TooManyPartsDefect")
        for boundary in reversed(self.stack):
            if boundary is not None:
                self.out.append(b"\r\n--" + boundary + b"--\r\n")
        self.stack.clear()


def bound_structure(raw: bytes, *, max_depth: int, max_parts: int) -> tuple[bytes, tuple[str, ...]]:
    """The message with nesting beyond max_depth defused and parts beyond max_parts cut; plus the defects applied."""
    scan = _Scan(max_depth=max_depth, max_parts=max_parts)
    lines = raw.splitlines(keepends=True)
    for line in lines:
        if scan.headers is not None:
            if line in (b"\r\n", b"\n", b"\r"):
                scan.end_headers()
                scan.out.append(line)
                continue
            if _HEADER_LINE.match(line) or (scan.headers and line[:1] in (b" ", b"\t")):
                scan.headers.append(line)
                continue
            scan.end_headers()  # a line that is no header ends the block, as in the stdlib parser
        if line.startswith(b"--") and scan.stack and scan.boundary_line(line):
            if scan.parts > max_parts:
                break
            continue
        scan.out.append(line)
    if scan.headers is not None:
        scan.end_headers()
    return b"".join(scan.out), tuple(scan.defects)
