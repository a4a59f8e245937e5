"""How much a session may ask of the edge without sending a message (docs/smtp.md, "Command limits").

Every command but QUIT is counted, per command name, since the session began or since its last message (a DATA
whose message was read, whatever the reply): RCPT up to `MAX_RCPT_WITHOUT_MESSAGE`, every other command (and lines
that are not commands: empty, over-long, refused before STARTTLS, counted together as "invalid") up to
`MAX_COMMANDS_WITHOUT_MESSAGE`. The next one over is answered `421 4.7.0` and the connection closed.

aiosmtpd's own `command_call_limit` counts per session and never forgives: a pooled connection that sends a
thousand messages (RSET and RCPT for each) would hit it. Counting since the last message bounds a session that
only talks (pipelined NOOPs, RCPT floods answered `452`, MAIL and RSET loops) and never a session that sends mail.
"""

from __future__ import annotations

from collections import Counter

INVALID = "invalid"  # the name under which lines that are not commands are counted


class CommandBudget:
    def __init__(self, *, max_commands: int, max_rcpt: int) -> None:
        self._max_commands = max_commands
        self._max_rcpt = max_rcpt
        self._counts: Counter[str] = Counter()

    def spend(self, command: str) -> bool:
        """Counts one `command`; False when that is one more than the session may send before its next message."""
        if command == "QUIT":
            return True
        self._counts[command] += 1
        limit = self._max_rcpt if command == "RCPT" else self._max_commands
        return self._counts[command] <= limit

    def message_received(self) -> None:
        """A message was read: the session made progress, every count starts again."""
        self._counts.clear()
