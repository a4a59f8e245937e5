"""aiosmtpd's SMTP protocol with the gateway's session, enhanced status codes and per-connection logging."""

from __future__ import annotations

from typing import Any, AnyStr

import structlog
from aiosmtpd.smtp import SMTP

from gateway_common.correlation import new_correlation_id
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.smtp.enhanced_codes import with_enhanced_code
from smtp_edge.smtp.session import GatewaySession

log = structlog.get_logger(__name__)


class GatewaySMTP(SMTP):
    def __init__(self, handler: Any, *, listener: str, metrics: EdgeMetrics, **kwargs: Any) -> None:
        self._listener = listener
        self._metrics = metrics
        self._connection_id = new_correlation_id()
        self._verbatim = True  # the greeting, and EHLO/HELO replies, carry no enhanced codes (RFC 2034)
        super().__init__(handler, **kwargs)

    def _create_session(self) -> GatewaySession:
        return GatewaySession(self.loop, self._connection_id, self._listener)

    async def _handle_client(self) -> None:
        structlog.contextvars.bind_contextvars(session_id=self._connection_id, listener=self._listener)
        self._metrics.sessions.labels(self._listener).inc()
        self._metrics.active_sessions.inc()
        log.info("session opened", peer=str(self.session.peer if self.session else None))
        try:
            await super()._handle_client()
        finally:
            self._metrics.active_sessions.dec()
            log.info("session closed")

    async def smtp_EHLO(self, hostname: str) -> None:
        self._verbatim = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._verbatim = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._verbatim = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._verbatim = False

    async def push(self, status: AnyStr) -> None:
        if self._verbatim and isinstance(status, str) and status.startswith("220 "):
            self._verbatim = False  # the greeting: sent as is, every later reply gets a code
            await super().push(status)
            return
        if not self._verbatim and isinstance(status, str):
            status = with_enhanced_code(status, size_limit=self.data_size_limit or 0)
        await super().push(status)
