"""HELP by session state: the table of what it lists (the e2e test checks the list against what the edge does)."""

from __future__ import annotations

import pytest

from smtp_edge.smtp.help import SessionState, available_commands, help_reply

BEFORE_TLS = SessionState(tls=False, helo_only=False, authenticated=False)
TLS = SessionState(tls=True, helo_only=False, authenticated=False)
HELO_ONLY = SessionState(tls=True, helo_only=True, authenticated=False)
AUTHENTICATED = SessionState(tls=True, helo_only=False, authenticated=True)


@pytest.mark.parametrize(
    ("state", "commands"),
    [
        (BEFORE_TLS, "EHLO NOOP QUIT STARTTLS"),
        (TLS, "AUTH EHLO HELO HELP NOOP QUIT RSET"),
        (HELO_ONLY, "EHLO HELO HELP NOOP QUIT RSET"),
        (AUTHENTICATED, "DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY"),
    ],
)
def test_available_commands(state: SessionState, commands: str) -> None:
    assert " ".join(available_commands(state)) == commands


@pytest.mark.parametrize(
    ("state", "arg", "reply"),
    [
        (TLS, "", "250 2.0.0 Supported commands: AUTH EHLO HELO HELP NOOP QUIT RSET"),
        (TLS, "auth", "250 2.0.0 Syntax: AUTH <mechanism> [initial-response]"),
        (AUTHENTICATED, "MAIL", "250 2.0.0 Syntax: MAIL FROM:<address> [SP <mail-parameters>]"),
        (TLS, "MAIL", "501 5.5.4 No help for 'MAIL' here; Supported commands: AUTH EHLO HELO HELP NOOP QUIT RSET"),
        (AUTHENTICATED, "AUTH", "501 5.5.4 No help for 'AUTH' here; " + help_reply(AUTHENTICATED, "")[10:]),
    ],
)
def test_help_reply(state: SessionState, arg: str, reply: str) -> None:
    assert help_reply(state, arg) == reply
