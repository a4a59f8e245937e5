"""Wires the edge together and runs it until SIGTERM: two SMTP listeners, the forwarder channel, ops HTTP."""

from __future__ import annotations

import structlog

from gateway_common.lifecycle import serve_until_signalled
from gateway_common.ops_http import OpsServer, create_ops_app
from smtp_edge.config import EdgeSettings
from smtp_edge.forwarding.client import ForwarderClient
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.policy.admission import Admission
from smtp_edge.policy.auth_throttle import AuthFailureThrottle, parse_allowlist
from smtp_edge.policy.connection_limits import ConnectionLimiter
from smtp_edge.smtp.auth import SaslAuthenticator
from smtp_edge.smtp.handler import GatewayHandler, TransactionLimits
from smtp_edge.smtp.listeners import ListenerConfig, SmtpListeners
from smtp_edge.tls.contexts import CertificateReloader, server_context

log = structlog.get_logger(__name__)


class EdgeApp:
    def __init__(self, settings: EdgeSettings, metrics: EdgeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or EdgeMetrics()
        self.forwarder = ForwarderClient(
            settings.forwarder_address,
            submit_timeout=settings.forwarder_timeout_seconds,
            auth_timeout=settings.auth_timeout_seconds,
            lb_policy=settings.forwarder_lb_policy,
        )
        self.admission = Admission(
            connections=ConnectionLimiter(per_ip=settings.max_connections_per_ip, total=settings.max_connections),
            auth_throttle=AuthFailureThrottle(
                max_failures=settings.auth_failure_limit,
                window_seconds=settings.auth_failure_window_seconds,
                cooldown_seconds=settings.auth_failure_cooldown_seconds,
                allowlist=parse_allowlist(settings.auth_throttle_allowlist.split(",")),
            ),
        )
        self.handler = GatewayHandler(
            self.forwarder,
            SaslAuthenticator(self.forwarder, self.admission.auth_throttle, self.metrics),
            TransactionLimits(
                max_recipients=settings.max_recipients,
                max_attachment_bytes=settings.max_attachment_bytes,
                parse_in_thread_bytes=settings.parse_in_thread_bytes,
                message_id_domain=settings.smtp_hostname,
            ),
            self.metrics,
        )
        tls = server_context(settings.tls_cert_file, settings.tls_key_file)
        self.reloader = CertificateReloader(
            [tls], settings.tls_cert_file, settings.tls_key_file, settings.tls_reload_interval_seconds
        )
        self.listeners = SmtpListeners(
            ListenerConfig(
                host=settings.smtp_host,
                starttls_port=settings.smtp_starttls_port,
                implicit_tls_port=settings.smtp_tls_port,
                hostname=settings.smtp_hostname,
                size_limit=settings.message_size_limit,
                command_timeout=settings.command_timeout_seconds,
                proxy_protocol_timeout=settings.proxy_protocol_timeout_seconds if settings.proxy_protocol else None,
                bare_newline=settings.bare_newline,
            ),
            self.handler,
            tls,
            self.metrics,
            self.admission,
        )
        self.ops = OpsServer(create_ops_app(self.is_ready), settings.http_host, settings.http_port, service="smtp-edge")
        self._stopping = False

    async def is_ready(self) -> bool:
        # Ready while accepting: when the forwarder or the API is down, clients must still reach us and hear
        # a 4xx they will retry on, rather than find no listener behind the load balancer.
        return not self._stopping

    async def start(self) -> None:
        await self.listeners.start()
        self.reloader.start()
        await self.ops.start()
        starttls, implicit = self.listeners.ports()
        log.info(
            "smtp-edge started",
            starttls=f"{self.settings.smtp_host}:{starttls}",
            implicit_tls=f"{self.settings.smtp_host}:{implicit}",
            http=f"{self.settings.http_host}:{self.settings.http_port}",
            forwarder=self.settings.forwarder_address,
        )

    async def stop(self) -> None:
        """Stop accepting, report not-ready, say goodbye to idle sessions, let transactions in flight finish
        within the grace period (no accepted DATA is cut off), then exit."""
        self._stopping = True
        self.listeners.stop_accepting()
        log.info("shutting down", sessions=len(self.listeners.live))
        cut_off = await self.listeners.live.drain(self.settings.shutdown_grace_seconds)
        if cut_off:
            log.warning("grace period over; sessions closed while busy", count=cut_off)
        await self.reloader.stop()
        await self.ops.stop()
        await self.forwarder.close()
        log.info("smtp-edge stopped")


async def serve(settings: EdgeSettings) -> None:
    await serve_until_signalled(EdgeApp(settings))
