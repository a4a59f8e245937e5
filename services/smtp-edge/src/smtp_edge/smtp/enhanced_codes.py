"""Pure: give aiosmtpd's built-in replies RFC 3463 enhanced status codes (we advertise ENHANCEDSTATUSCODES)."""

from __future__ import annotations

import re

_HAS_ENHANCED = re.compile(r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3}(\s|$)")

# Exact built-in replies -> replacement; "{limit}" is the configured message size limit.
_EXACT: dict[str, str] = {
    "250 OK": "250 2.0.0 OK",
    "221 Bye": "221 2.0.0 Bye",
    "220 Ready to start TLS": "220 2.0.0 Ready to start TLS",
    "454 TLS not available": "454 4.7.0 TLS not available",
    "500 Command line too long": "500 5.5.2 Command line too long",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6: 1000 octets)",
    "500 Error: bad syntax": "500 5.5.2 Syntax error",
    "500 Error: strict ASCII mode": "500 5.5.2 Non-ASCII command without SMTPUTF8",
    "501 Not enough value": "501 5.5.4 Not enough arguments",
    "501 Too many values": "501 5.5.4 Too many arguments",
    "502 EXPN not implemented": "502 5.5.1 EXPN not implemented",
    "503 Already authenticated": "503 5.5.1 Already authenticated",
    "503 Error: need MAIL command": "503 5.5.1 Need MAIL command first",
    "503 Error: need RCPT command": "503 5.5.1 Need RCPT command first",
    "503 Error: nested MAIL command": "503 5.5.1 Nested MAIL command",
    "530 Must issue a STARTTLS command first": "530 5.7.0 Must issue a STARTTLS command first",
    "552 Error: Too much mail data": "552 5.3.4 Message too big (limit {limit} bytes)",
    "552 Error: message size exceeds fixed maximum message size": "552 5.3.4 Message too big (limit {limit} bytes)",
    "553 5.1.3 Error: malformed address": "501 5.1.3 Malformed address",
    "555 MAIL FROM parameters not recognized or not implemented": "555 5.5.4 Parameters not recognized",
}

# Families of built-in replies by prefix (RFC 3463: 5.5.1 bad command, 5.5.2 syntax, 5.5.4 bad arguments).
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("500 Error: command ", "5.5.1"),
    ("501 Syntax:", "5.5.4"),
    ("501 Error:", "5.5.4"),
    ("503 Error: send ", "5.5.1"),
    ("502 Could not VRFY", "5.5.1"),
)

_CLASS_DEFAULT = {"2": "2.0.0", "4": "4.0.0", "5": "5.0.0"}


def with_enhanced_code(reply: str, *, size_limit: int) -> str:
    """Returns the reply with an x.y.z code after the basic code. Intermediate (3xx) replies stay as they are."""
    if reply in _EXACT:
        return _EXACT[reply].format(limit=size_limit)
    if len(reply) < 4 or not reply[:3].isdigit() or reply[3] != " " or reply[0] not in "245":
        return reply
    if _HAS_ENHANCED.match(reply):
        return reply
    for prefix, code in _PREFIXES:
        if reply.startswith(prefix):
            return f"{reply[:3]} {code} {reply[4:].removeprefix('Error: ')}"
    return f"{reply[:3]} {_CLASS_DEFAULT[reply[0]]} {reply[4:]}"
