"""Wires the forwarder together and runs it until SIGTERM: gRPC, ops HTTP, one pooled API client."""

from __future__ import annotations

import random

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from forwarder.api.factory import create_api
from forwarder.config import ForwarderSettings
from forwarder.delivery import open_delivery_record
from forwarder.grpc_api.servicer import ForwarderServicer
from forwarder.grpc_api.tls import GrpcTlsFiles, ReloadingServerCredentials
from forwarder.metrics import ForwarderMetrics
from forwarder.resilience.breaker import BreakerSettings, BreakerState, CircuitBreaker
from forwarder.resilience.bulkhead import Bulkhead
from forwarder.resilience.pipeline import ApiPipeline
from forwarder.resilience.retry import RetryPolicy
from forwarder.submission.assembly import RawLimits
from forwarder.submission.service import SubmissionService, SubmissionSettings
from gateway_common import tracing
from gateway_common.lifecycle import serve_until_signalled
from gateway_common.ops_http import OpsServer, create_ops_app

log = structlog.get_logger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ForwarderService"].full_name


class ForwarderApp:
    def __init__(self, settings: ForwarderSettings, metrics: ForwarderMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ForwarderMetrics()
        self.metrics.inflight_api_calls_limit.set(settings.max_inflight_api_calls)
        self.tracing = tracing.configure("forwarder", settings.otel_exporter_otlp_endpoint)
        pipeline = ApiPipeline(
            bulkhead=Bulkhead(
                settings.max_inflight_api_calls, self.metrics, queue_wait_seconds=settings.saturation_wait_seconds
            ),
            breaker=CircuitBreaker(
                BreakerSettings(
                    window_seconds=settings.breaker_window_seconds,
                    min_requests=settings.breaker_min_requests,
                    failure_ratio=settings.breaker_failure_ratio,
                    open_seconds=settings.breaker_open_seconds,
                    half_open_probes=settings.breaker_half_open_probes,
                ),
                on_change=self._circuit_changed,
            ),
            retry=RetryPolicy(
                max_attempts=settings.retry_max_attempts,
                base_delay=settings.retry_base_delay_seconds,
                max_delay=settings.retry_max_delay_seconds,
            ),
            rng=random.Random(),
            metrics=self.metrics,
        )
        self.api = create_api(settings, pipeline)
        self.record = open_delivery_record(settings)
        self.service = SubmissionService(
            self.api,
            self.record,
            self.metrics,
            token_ttl_cap_seconds=settings.token_cache_ttl_seconds,
            token_cache_max_entries=settings.token_cache_max_entries,
            settings=SubmissionSettings(
                recipient_concurrency=settings.recipient_concurrency,
                lease_seconds_without_deadline=settings.cakemail_api_timeout_seconds * settings.retry_max_attempts
                + settings.retry_max_delay_seconds * settings.retry_max_attempts,
            ),
        )
        self.health = health.aio.HealthServicer()
        self.grpc_server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.grpc_max_receive_message_bytes),
                ("grpc.so_reuseport", 0),
                # Edges hold long-lived HTTP/2 connections; ageing them out makes the edges re-resolve the
                # forwarders' DNS name and spread load onto pods the autoscaler added.
                ("grpc.max_connection_age_ms", round(settings.grpc_max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", round(settings.grpc_max_connection_age_grace_seconds * 1000)),
            ],
            interceptors=tracing.server_interceptors(self.tracing),
        )
        pb_grpc.add_ForwarderServiceServicer_to_server(
            ForwarderServicer(
                self.service,
                self.metrics,
                size_limit=settings.message_size_limit,
                raw_limits=RawLimits(
                    size_limit=settings.message_size_limit,
                    max_attachment_bytes=settings.max_attachment_bytes,
                    message_id_domain=settings.message_id_domain,
                ),
            ),
            self.grpc_server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc_server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.grpc_server,
        )
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        if settings.grpc_tls_cert_file and settings.grpc_tls_key_file:
            files = GrpcTlsFiles(
                settings.grpc_tls_cert_file, settings.grpc_tls_key_file, settings.grpc_tls_client_ca_file
            )
            self.grpc_port = self.grpc_server.add_secure_port(address, ReloadingServerCredentials(files).credentials())
        else:
            self.grpc_port = self.grpc_server.add_insecure_port(address)
        self.ops = OpsServer(create_ops_app(self.is_ready), settings.http_host, settings.http_port, service="forwarder")
        self._stopping = False

    def _circuit_changed(self, old: BreakerState, new: BreakerState) -> None:
        self.metrics.circuit_state.set(int(new))
        log.warning("api circuit breaker changed state", old=old.name.lower(), new=new.name.lower())

    async def is_ready(self) -> bool:
        # Not tied to the API's health: during an API outage this pod must stay in the Service so callers
        # get a fast, truthful UNAVAILABLE (and SMTP clients a 451) instead of no route at all.
        return not self._stopping

    async def start(self) -> None:
        await self.grpc_server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self.ops.start()
        log.info(
            "forwarder started",
            grpc=f"{self.settings.grpc_host}:{self.grpc_port}",
            http=f"{self.settings.http_host}:{self.settings.http_port}",
            api=self.settings.cakemail_api_url,
            flavor=self.settings.cakemail_api_flavor,
        )

    async def stop(self) -> None:
        """Report not-serving, let in-flight calls finish within the grace period, then close."""
        self._stopping = True
        await self.health.enter_graceful_shutdown()
        await self.grpc_server.stop(self.settings.shutdown_grace_seconds)
        await self.ops.stop()
        await self.api.aclose()
        await self.record.aclose()
        self.tracing.shutdown()
        log.info("forwarder stopped")


async def serve(settings: ForwarderSettings) -> None:
    await serve_until_signalled(ForwarderApp(settings))
