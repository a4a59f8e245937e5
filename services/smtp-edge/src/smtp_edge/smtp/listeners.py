"""The two listeners: 587-style STARTTLS and 465-style implicit TLS, the same dialogue behind the TLS layer."""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass, field

from smtp_edge.metrics import EdgeMetrics
from smtp_edge.policy.admission import Admission
from smtp_edge.smtp import replies
from smtp_edge.smtp.data_reader import BareNewline
from smtp_edge.smtp.drain import LiveSessions
from smtp_edge.smtp.handler import GatewayHandler
from smtp_edge.smtp.protocol import GatewaySMTP, SessionLimits


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    host: str
    starttls_port: int
    implicit_tls_port: int
    hostname: str
    size_limit: int
    command_timeout: float
    proxy_protocol_timeout: float | None
    bare_newline: BareNewline = BareNewline.NORMALIZE
    session_limits: SessionLimits = field(default_factory=SessionLimits)


class SmtpListeners:
    def __init__(
        self,
        config: ListenerConfig,
        handler: GatewayHandler,
        tls: ssl.SSLContext,
        metrics: EdgeMetrics,
        admission: Admission,
    ) -> None:
        self._config = config
        self._handler = handler
        self._tls = tls
        self._metrics = metrics
        self._admission = admission
        self.live = LiveSessions()
        self._servers: list[asyncio.Server] = []

    def _protocol(self, listener: str) -> GatewaySMTP:
        return GatewaySMTP(
            self._handler,
            listener=listener,
            metrics=self._metrics,
            admission=self._admission,
            live=self.live,
            # Implicit TLS is started by the protocol itself, before the greeting and after any PROXY header
            # (a TLS server socket would need the handshake first, before a PROXY header could be read). aiosmtpd
            # then sees a TLS session as after STARTTLS, so AUTH is offered there too (aiosmtpd #281).
            tls_before_greeting=listener == "implicit-tls",
            bare_newline=self._config.bare_newline,
            limits=self._config.session_limits,
            proxy_protocol_timeout=self._config.proxy_protocol_timeout,
            hostname=self._config.hostname,
            ident=replies.IDENT,
            data_size_limit=self._config.size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=self._config.command_timeout,
            auth_required=True,
            auth_require_tls=True,
            tls_context=self._tls,
            require_starttls=listener == "starttls",
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for listener, port in (
            ("starttls", self._config.starttls_port),
            ("implicit-tls", self._config.implicit_tls_port),
        ):
            self._servers.append(
                await loop.create_server(
                    functools.partial(self._protocol, listener), self._config.host, port, reuse_address=True
                )
            )

    def ports(self) -> tuple[int, int]:
        starttls, implicit = (s.sockets[0].getsockname()[1] for s in self._servers)
        return int(starttls), int(implicit)

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()
