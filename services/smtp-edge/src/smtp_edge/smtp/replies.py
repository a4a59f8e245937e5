"""Every reply the edge can send, in one table: code, RFC 3463 enhanced code, text.

The rest of the edge sends these constants (formatted where the text has `{fields}`), and `outgoing()` turns the
replies aiosmtpd writes itself into them, so no reply leaves the edge that is not in `TABLE`. docs/smtp.md lists
exactly the table's (code, enhanced code) pairs (tests/unit/edge/test_reply_table.py checks both ways), and the SMTP
fuzzers check every reply they get against `TABLE` (tests/security/smtp_replies.py).

Replies without an enhanced code: the greeting, the EHLO/HELO lines (RFC 2034 exempts them) and the 3xx
intermediate replies (AUTH challenges, DATA's 354).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

_MAX_DETAIL = 200
_FIELD = re.compile(r"\{(\w+)\}")


class Reply(str):
    """One row of the table: the reply line as a string (send it as is, or `.format(...)` its fields)."""

    code: int
    enhanced: str
    text: str
    pattern: re.Pattern[str]

    def __new__(cls, code: int, enhanced: str, text: str) -> Reply:
        line = f"{code} {enhanced} {text}" if enhanced else f"{code} {text}"
        reply = super().__new__(cls, line)
        reply.code, reply.enhanced, reply.text = code, enhanced, text
        # What a sent line may look like: a field is any non-empty text without line breaks.
        parts = _FIELD.split(line)
        reply.pattern = re.compile(
            "".join(re.escape(part) if i % 2 == 0 else "[^\r\n]*" for i, part in enumerate(parts)) + r"\Z"
        )
        return reply


TABLE: list[Reply] = []


def _reply(code: int, enhanced: str, text: str) -> Reply:
    reply = Reply(code, enhanced, text)
    TABLE.append(reply)
    return reply


def safe_text(text: str) -> str:
    """One line of printable ASCII, short: what any SMTP client can show (and never a CR or LF in a reply)."""
    cleaned = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned[:_MAX_DETAIL]


def with_detail(reply: Reply, detail: str) -> str:
    """`reply` followed by ": <detail>" (made safe), or `reply` alone when there is no detail."""
    detail = safe_text(detail)
    return f"{reply}: {detail}" if detail else str(reply)


# ---- Connection -------------------------------------------------------------------------------------------------
IDENT = "ESMTP Cakemail SMTP Gateway"
GREETING = _reply(220, "", "{hostname} " + IDENT)
TOO_MANY_CONNECTIONS_FROM_IP = _reply(421, "4.7.0", "Too many connections from your address, try again later")
TOO_MANY_CONNECTIONS = _reply(421, "4.7.0", "Too many connections, try again later")
DENIED = _reply(421, "4.7.1", "Connections from your address are not accepted here")
AUTH_THROTTLED = _reply(421, "4.7.0", "Too many authentication failures, try again later")
SHUTTING_DOWN = _reply(421, "4.3.2", "Service shutting down, try again later")
TIMEOUT = _reply(421, "4.4.2", "Timeout waiting for a command, closing connection")
# MAX_COMMANDS_WITHOUT_MESSAGE / MAX_RCPT_WITHOUT_MESSAGE (smtp/command_limits.py); {command} is a command name or
# "invalid" (lines that are not commands).
TOO_MANY_COMMANDS = _reply(421, "4.7.0", "Too many {command} commands without a message, closing connection")

# ---- Commands ---------------------------------------------------------------------------------------------------
HELLO = _reply(250, "", "{hostname}")  # HELO's reply, and the EHLO lines (250-<hostname>, 250-SIZE ..., 250 HELP)
SYNTAX = _reply(501, "5.5.4", "Syntax: {syntax}")  # a command with missing or extra arguments (EHLO without a name)
BODY_INVALID = _reply(501, "5.5.4", "BODY can only be one of 7BIT, 8BITMIME")
SMTPUTF8_ARGUMENT = _reply(501, "5.5.4", "SMTPUTF8 takes no arguments")
READY_FOR_TLS = _reply(220, "2.0.0", "Ready to start TLS")
STARTTLS_FIRST = _reply(530, "5.7.0", "Must issue a STARTTLS command first")
TLS_ALREADY_ACTIVE = _reply(503, "5.5.1", "TLS already active")
HELLO_FIRST = _reply(503, "5.5.1", "Send {command} first")
CHALLENGE = _reply(334, "", "{challenge}")
AUTH_OK = _reply(235, "2.7.0", "Authentication successful")
AUTH_INVALID = _reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_MFA = _reply(
    535,
    "5.7.8",
    "Authentication failed: this user is protected by multi-factor authentication, which SMTP AUTH cannot answer",
)
AUTH_TEMPORARY = _reply(454, "4.7.0", "Temporary authentication failure, try again later")
AUTH_ABORTED = _reply(501, "5.7.0", "Auth aborted")
AUTH_BAD_BASE64 = _reply(501, "5.5.2", "Cannot decode base64")
AUTH_BAD_PLAIN = _reply(501, "5.5.2", "Cannot split PLAIN credentials")
AUTH_NOT_UTF8 = _reply(501, "5.5.2", "Credentials must be UTF-8")
AUTH_LINE_TOO_LONG = _reply(500, "5.5.6", "Authentication exchange line is too long")
AUTH_MECHANISM_UNKNOWN = _reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_ARGUMENTS = _reply(501, "5.5.4", "{problem} arguments")
ALREADY_AUTHENTICATED = _reply(503, "5.5.1", "Already authenticated")
AUTH_REQUIRED = _reply(530, "5.7.0", "Authentication required")
HELP = _reply(250, "2.0.0", "Supported commands: {commands}")
HELP_SYNTAX = _reply(250, "2.0.0", "Syntax: {syntax}")
HELP_UNKNOWN = _reply(501, "5.5.4", "No help for {topic} here; Supported commands: {commands}")
SENDER_OK = _reply(250, "2.1.0", "Sender OK")
BAD_SENDER = _reply(501, "5.1.7", "Bad sender address syntax")
OVER_IP_RATE = _reply(450, "4.7.1", "Too many messages from your address ({limit} per {window}), try again later")
OVER_ACCOUNT_RATE = _reply(450, "4.7.1", "Too many messages for this account ({limit} per {window}), try again later")
MALFORMED_ADDRESS = _reply(501, "5.1.3", "Malformed address")
TOO_BIG = _reply(552, "5.3.4", "Message too big (limit {limit} bytes)")
# DATA_BYTES_IN_FLIGHT_LIMIT (smtp/data_budget.py): at MAIL (SIZE=), DATA, or the end of DATA; the client keeps the
# message and retries.
INSUFFICIENT_RESOURCES = _reply(452, "4.3.1", "Insufficient system resources, try again later")
PARAMETERS_UNKNOWN = _reply(555, "5.5.4", "Parameters not recognized")
NESTED_MAIL = _reply(503, "5.5.1", "Nested MAIL command")
RECIPIENT_OK = _reply(250, "2.1.5", "Recipient OK")
BAD_RECIPIENT = _reply(501, "5.1.3", "Bad recipient address syntax")
TOO_MANY_RECIPIENTS = _reply(452, "4.5.3", "Too many recipients (at most {limit} per message)")
NEED_MAIL = _reply(503, "5.5.1", "Need MAIL command first")
NEED_RCPT = _reply(503, "5.5.1", "Need RCPT command first")
START_DATA = _reply(354, "", "End data with <CR><LF>.<CR><LF>")
LINE_TOO_LONG = _reply(500, "5.5.2", "Line too long (RFC 5321 4.5.3.1.6: 1000 octets)")
COMMAND_TOO_LONG = _reply(500, "5.5.2", "Command line too long")
VRFY = _reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
CANNOT_VRFY = _reply(502, "5.5.1", "Could not VRFY {address}")
EXPN = _reply(502, "5.5.1", "EXPN not implemented")
OK = _reply(250, "2.0.0", "OK")
BYE = _reply(221, "2.0.0", "Bye")
UNKNOWN_COMMAND = _reply(500, "5.5.1", 'command "{command}" not recognized')
TOO_MANY_UNKNOWN = _reply(502, "5.5.1", "Too many unrecognized commands, goodbye.")
BAD_SYNTAX = _reply(500, "5.5.2", "Syntax error")
LOCAL_ERROR = _reply(451, "4.3.0", "Local error in processing, try again later")

# ---- End of DATA: the edge's own refusals -------------------------------------------------------------------------
BARE_LINE_ENDING = _reply(550, "5.6.0", "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)")
NO_SENDER = _reply(550, "5.6.0", "Message has no sender: add a From: header (MAIL FROM:<> is empty)")
MESSAGE_REFUSED = _reply(550, "5.6.0", "{reason}")  # the MIME parser's refusal
ATTACHMENT_TOO_LARGE = _reply(552, "5.3.4", "{reason}")
HEADERS_TOO_LARGE = _reply(552, "5.3.4", "Message headers too large (limit {limit} bytes)")

# ---- End of DATA and AUTH: the forwarder's answers (docs/errors.md; forwarding/replies.py picks them) -------------
QUEUED = _reply(250, "2.0.0", "Ok: queued as {ids}")
REJECTED = _reply(550, "5.6.0", "Message rejected")
FORBIDDEN = _reply(550, "5.7.1", "Sending not permitted")
REJECTED_TOO_LARGE = _reply(552, "5.3.4", "Message too big")
UNSUPPORTED = _reply(554, "5.6.1", "Message content not supported")
RECIPIENTS_DEFERRED = _reply(451, "4.3.0", "Not sent to every recipient, try again")
RECIPIENTS_REFUSED = _reply(554, "5.0.0", "Not sent to every recipient")
RATE_LIMITED_FOR = _reply(451, "4.7.1", "Rate limited, try again in {seconds} seconds")
RATE_LIMITED = _reply(451, "4.7.1", "Rate limited, try again later")
SENDING_NOT_PERMITTED_MFA = _reply(550, "5.7.8", "Sending not permitted: " + AUTH_MFA.text.split(": ", 1)[1])
BUSY = _reply(451, "4.3.2", "System busy, try again later")
NOT_PROCESSED = _reply(550, "5.6.0", "Message could not be processed")
TEMPORARY_FAILURE = _reply(451, "4.3.0", "Temporary failure, message not accepted; try again later")

# Forwarder replies that may carry ": <detail>" after their text.
WITH_DETAIL = (REJECTED, FORBIDDEN, REJECTED_TOO_LARGE, UNSUPPORTED, RECIPIENTS_DEFERRED, RECIPIENTS_REFUSED,
               NOT_PROCESSED)  # fmt: skip


# Every row's pattern in one regular expression, in table order (GREETING and HELLO left out: see find()): the first
# alternative that matches is the first row that does. One match instead of a Python loop over 70-odd patterns: the
# loop cost 10-30 us per reply, four replies per message (docs/performance.md).
_FINDABLE = [reply for reply in TABLE if reply not in (GREETING, HELLO)]
_ANY_ROW = re.compile("|".join(f"(?P<r{i}>{reply.pattern.pattern})" for i, reply in enumerate(_FINDABLE)))


def find(line: str) -> Reply | None:
    """The table row a sent reply line is an instance of, if any. The lines that start with the edge's hostname
    (GREETING, HELLO: the greeting and the EHLO/HELO lines) are left to the caller, who knows the hostname: their
    patterns would match any 220 or 250 line."""
    row = _ANY_ROW.match(line)
    if row is not None and row.lastgroup is not None:
        return _FINDABLE[int(row.lastgroup[1:])]
    for reply in WITH_DETAIL:
        if line.startswith(reply + ": ") and "\r" not in line and "\n" not in line:
            return reply
    return None


# ---- aiosmtpd's own replies -> the table ------------------------------------------------------------------------
# aiosmtpd writes these itself (aiosmtpd/smtp.py); GatewaySMTP.push() sends the table's reply instead.
_AIOSMTPD_EXACT: dict[str, Callable[[int], str]] = {
    "250 OK": lambda limit: OK,
    "221 Bye": lambda limit: BYE,
    "220 Ready to start TLS": lambda limit: READY_FOR_TLS,
    "500 Command line too long": lambda limit: COMMAND_TOO_LONG,
    "500 Error: bad syntax": lambda limit: BAD_SYNTAX,
    "501 Not enough value": lambda limit: AUTH_ARGUMENTS.format(problem="Not enough"),
    "501 Too many values": lambda limit: AUTH_ARGUMENTS.format(problem="Too many"),
    "501 5.7.0 Auth aborted": lambda limit: AUTH_ABORTED,
    "501 5.5.2 Can't decode base64": lambda limit: AUTH_BAD_BASE64,
    "502 EXPN not implemented": lambda limit: EXPN,
    "502 5.5.1 Too many unrecognized commands, goodbye.": lambda limit: TOO_MANY_UNKNOWN,
    "503 Already authenticated": lambda limit: ALREADY_AUTHENTICATED,
    "503 Error: need MAIL command": lambda limit: NEED_MAIL,
    "503 Error: need RCPT command": lambda limit: NEED_RCPT,
    "503 Error: nested MAIL command": lambda limit: NESTED_MAIL,
    "504 5.5.4 Unrecognized authentication type": lambda limit: AUTH_MECHANISM_UNKNOWN,
    "530 Must issue a STARTTLS command first": lambda limit: STARTTLS_FIRST,
    "552 Error: message size exceeds fixed maximum message size": lambda limit: TOO_BIG.format(limit=limit),
    "553 5.1.3 Error: malformed address": lambda limit: MALFORMED_ADDRESS,
    "555 MAIL FROM parameters not recognized or not implemented": lambda limit: PARAMETERS_UNKNOWN,
    "555 RCPT TO parameters not recognized or not implemented": lambda limit: PARAMETERS_UNKNOWN,
    "500 Error: command 'AUTH' not recognized": lambda limit: UNKNOWN_COMMAND.format(command="AUTH"),
    "501 Error: BODY can only be one of 7BIT, 8BITMIME": lambda limit: BODY_INVALID,
    "501 Error: SMTPUTF8 takes no arguments": lambda limit: SMTPUTF8_ARGUMENT,
}
_AIOSMTPD_PREFIXES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ('500 Error: command "', lambda rest: UNKNOWN_COMMAND.format(command=_echo(rest.removesuffix('" not recognized')))),
    ("501 Syntax: ", lambda rest: SYNTAX.format(syntax=safe_text(rest))),
    ("503 Error: send ", lambda rest: HELLO_FIRST.format(command=safe_text(rest.removesuffix(" first")))),
    ("502 Could not VRFY ", lambda rest: CANNOT_VRFY.format(address=_echo(rest))),
)
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _echo(text: str) -> str:
    """A client's bytes quoted in a reply: printable ASCII, short."""
    return safe_text(text)[:40]


# The rows without fields, sent as they are: most replies (one set lookup instead of the checks below).
_AS_THEY_ARE = frozenset(
    reply
    for reply in TABLE
    if not _FIELD.search(reply)
    and reply not in _AIOSMTPD_EXACT
    and not reply.startswith(tuple(prefix for prefix, _ in _AIOSMTPD_PREFIXES))
    and not _CONTROL.search(reply)
)


def outgoing(status: str, *, size_limit: int) -> str:
    """The line to send for `status`: a table reply as it is, aiosmtpd's own wording turned into the table's. Never
    a CR, LF or other control character (a client's bytes echoed into a reply must not break the reply's line)."""
    if status in _AS_THEY_ARE:
        return status
    status = _CONTROL.sub("?", status)
    exact = _AIOSMTPD_EXACT.get(status)
    if exact is not None:
        return exact(size_limit)
    for prefix, build in _AIOSMTPD_PREFIXES:
        if status.startswith(prefix):
            return build(status[len(prefix) :])
    if find(status) is None:
        # A reply this table does not know: a bug (a new aiosmtpd reply, say). Sent, but never silently.
        log.error("reply not in the reply table", reply=safe_text(status)[:80])
    return status
