"""Pure: what HELP says, from the session's state, so it lists exactly the commands that work there.

Before STARTTLS on the STARTTLS listener only EHLO, NOOP, STARTTLS and QUIT are accepted (RFC 3207 4), so HELP is
neither accepted nor advertised there. "Works" means the command is allowed in this state; the transaction's own
order (MAIL before RCPT before DATA) still applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from smtp_edge.smtp import replies

SYNTAX: dict[str, str] = {
    "AUTH": "AUTH <mechanism> [initial-response]",
    "DATA": "DATA",
    "EHLO": "EHLO hostname",
    "HELO": "HELO hostname",
    "HELP": "HELP [command]",
    "MAIL": "MAIL FROM:<address> [SP <mail-parameters>]",
    "NOOP": "NOOP [ignored]",
    "QUIT": "QUIT",
    "RCPT": "RCPT TO:<address> [SP <mail-parameters>]",
    "RSET": "RSET",
    "STARTTLS": "STARTTLS",
    "VRFY": "VRFY <address>",
}

BEFORE_STARTTLS = ("EHLO", "NOOP", "QUIT", "STARTTLS")


@dataclass(frozen=True, slots=True)
class SessionState:
    tls: bool
    helo_only: bool  # HELO without EHLO: no ESMTP, so no AUTH
    authenticated: bool


def available_commands(state: SessionState) -> tuple[str, ...]:
    if not state.tls:
        return BEFORE_STARTTLS
    commands = {"EHLO", "HELO", "HELP", "NOOP", "QUIT", "RSET"}
    if state.authenticated:
        commands |= {"MAIL", "RCPT", "DATA", "VRFY"}
    elif not state.helo_only:
        commands.add("AUTH")
    return tuple(sorted(commands))


def help_reply(state: SessionState, arg: str) -> str:
    commands = available_commands(state)
    listing = " ".join(commands)
    if not arg:
        return replies.HELP.format(commands=listing)
    command = arg.strip().upper()
    if command in commands:
        return replies.HELP_SYNTAX.format(syntax=SYNTAX[command])
    return replies.HELP_UNKNOWN.format(topic=repr(command[:20]), commands=listing)
