"""Wires the edge together and runs it until SIGTERM: two SMTP listeners, the forwarder channel, ops HTTP."""

from __future__ import annotations

from pathlib import Path

import structlog

from gateway_common import tracing
from gateway_common.lifecycle import EXIT_CANNOT_START, serve_until_signalled
from gateway_common.ops_http import OpsServer, create_ops_app
from smtp_edge.config import EdgeSettings
from smtp_edge.forwarding.client import ForwarderClient, forwarder_tls
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.policy.access_lists import Access, AccessListError, AccessListFiles
from smtp_edge.policy.admission import Admission
from smtp_edge.policy.auth_throttle import AuthFailureThrottle, in_networks, parse_allowlist
from smtp_edge.policy.connection_limits import ConnectionLimiter
from smtp_edge.policy.counters import Counters, FailoverCounters, MemoryCounters, RedisCounters
from smtp_edge.policy.message_rates import MessageRateLimiter, RateLimits
from smtp_edge.smtp.auth import SaslAuthenticator
from smtp_edge.smtp.data_budget import DataBudget
from smtp_edge.smtp.handler import GatewayHandler, TransactionLimits
from smtp_edge.smtp.listeners import ListenerConfig, SmtpListeners
from smtp_edge.smtp.parse_pool import ParsePool
from smtp_edge.smtp.protocol import SessionLimits
from smtp_edge.tls.contexts import CertificateReloader, server_context

log = structlog.get_logger(__name__)


class EdgeApp:
    def __init__(self, settings: EdgeSettings, metrics: EdgeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or EdgeMetrics()
        self.tracing = tracing.configure("smtp-edge", settings.otel_exporter_otlp_endpoint)
        self.forwarder = ForwarderClient(
            settings.forwarder_address,
            submit_timeout=settings.forwarder_timeout_seconds,
            auth_timeout=settings.auth_timeout_seconds,
            lb_policy=settings.forwarder_lb_policy,
            interceptors=tracing.client_interceptors(self.tracing),
            tls_files=forwarder_tls(
                settings.forwarder_tls_ca_file, settings.forwarder_tls_cert_file, settings.forwarder_tls_key_file
            ),
            tls_check_interval=settings.tls_reload_interval_seconds,
        )
        self.counters = self._counters(settings)
        self.access = AccessListFiles(
            Path(settings.deny_list_file) if settings.deny_list_file else None,
            Path(settings.allow_list_file) if settings.allow_list_file else None,
            check_interval=settings.access_lists_check_interval_seconds,
        )
        throttle_allowlist = parse_allowlist(settings.auth_throttle_allowlist.split(","))

        def allowed(ip: str) -> bool:
            return self.access.check(ip) is Access.ALLOWED

        self.admission = Admission(
            connections=ConnectionLimiter(per_ip=settings.max_connections_per_ip, total=settings.max_connections),
            auth_throttle=AuthFailureThrottle(
                self.counters,
                max_failures=settings.auth_failure_limit,
                window_seconds=settings.auth_failure_window_seconds,
                cooldown_seconds=settings.auth_failure_cooldown_seconds,
                exempt=lambda ip: allowed(ip) or in_networks(ip, throttle_allowlist),
            ),
            access=self.access,
        )
        rates = MessageRateLimiter(
            RateLimits(
                per_ip=settings.rate_limit_per_ip_per_minute,
                per_account=settings.rate_limit_per_account_per_minute,
                window_seconds=settings.rate_limit_window_seconds,
            ),
            self.counters,
            exempt=allowed,
        )
        self.parse_pool = (
            ParsePool(
                settings.parse_processes,
                nice=settings.parse_worker_nice,
                mmap_threshold=settings.malloc_mmap_threshold_bytes,
            )
            if settings.parse_processes
            else None
        )
        self.handler = GatewayHandler(
            self.forwarder,
            SaslAuthenticator(self.forwarder, self.admission.auth_throttle, self.metrics),
            TransactionLimits(
                max_recipients=settings.max_recipients,
                max_attachment_bytes=settings.max_attachment_bytes,
                parse_in_thread_bytes=settings.parse_in_thread_bytes,
                parse_in_process_bytes=settings.parse_in_process_bytes,
                message_id_domain=settings.smtp_hostname,
            ),
            self.metrics,
            rates,
            self.parse_pool,
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
                session_limits=SessionLimits(
                    max_commands_without_message=settings.max_commands_without_message,
                    max_rcpt_without_message=settings.max_rcpt_without_message,
                    header_limit=settings.max_header_bytes,
                    data_budget=DataBudget(settings.data_bytes_in_flight_limit),
                    tls_read_buffer_bytes=settings.tls_read_buffer_bytes,
                ),
            ),
            self.handler,
            tls,
            self.metrics,
            self.admission,
        )
        self.ops = OpsServer(create_ops_app(self.is_ready), settings.http_host, settings.http_port, service="smtp-edge")
        self._stopping = False

    def _counters(self, settings: EdgeSettings) -> Counters:
        """Shared through Redis when configured (falling back to this pod's own while it is unreachable)."""
        if not settings.redis_url:
            return MemoryCounters()
        return FailoverCounters(
            RedisCounters.from_url(
                settings.redis_url, timeout_seconds=settings.redis_timeout_seconds, key_prefix=settings.redis_key_prefix
            ),
            MemoryCounters(),
            retry_after_seconds=settings.redis_retry_after_seconds,
            on_unavailable=self.metrics.shared_counters_unavailable.inc,
        )

    async def is_ready(self) -> bool:
        # Ready while accepting: when the forwarder or the API is down, clients must still reach us and hear
        # a 4xx they will retry on, rather than find no listener behind the load balancer.
        return not self._stopping

    async def start(self) -> None:
        if self.parse_pool is not None:
            await self.parse_pool.start()
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
            shared_counters=bool(self.settings.redis_url),
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
        if self.parse_pool is not None:
            await self.parse_pool.close()
        await self.reloader.stop()
        await self.ops.stop()
        await self.forwarder.close()
        if isinstance(self.counters, FailoverCounters):
            await self.counters.close()
        self.tracing.shutdown()
        log.info("smtp-edge stopped")


async def serve(settings: EdgeSettings) -> None:
    try:
        app = EdgeApp(settings)
    except AccessListError as error:  # a configuration problem: one line, not a traceback
        log.error("cannot start", reason=str(error))
        raise SystemExit(EXIT_CANNOT_START) from None
    await serve_until_signalled(app)
