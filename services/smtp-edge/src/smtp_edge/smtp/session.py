"""Per-connection state the gateway adds to aiosmtpd's Session."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import Session

from gateway_mime.frames import SmtpCredentials


class GatewaySession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop, correlation_id: str, listener: str) -> None:
        super().__init__(loop)
        # One id for the whole connection (aiosmtpd makes a new Session after STARTTLS; the id survives).
        self.correlation_id = correlation_id
        self.listener = listener
        # Kept in memory for this connection only: the forwarder needs them with every message.
        self.credentials: SmtpCredentials | None = None
        self.messages = 0
