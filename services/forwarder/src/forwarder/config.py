"""All forwarder configuration, from the environment, in one place."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ForwarderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8081
    log_level: str = "INFO"
    # uvloop (less CPU per message, docs/performance.md) or asyncio's own loop, for an A/B.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    # Which Cakemail API the forwarder speaks (docs/cakemail-api.md): v2, the real API; v1, the design document's.
    cakemail_api_flavor: Literal["v1", "v2"] = "v2"
    cakemail_api_url: str = "http://127.0.0.1:8090"
    cakemail_api_timeout_seconds: float = Field(default=20.0, gt=0)
    cakemail_api_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    # An idle pooled connection is reused only this long: below the API's own idle timeout (uvicorn's 5 s, load
    # balancers' 60 s), or a send (never repeated: it may have arrived) races the server closing the connection.
    cakemail_api_keepalive_seconds: float = Field(default=4.0, gt=0)

    # v2: content.type when a message has no X-Email-API-Type header, and list_id when it has no X-List-Id.
    cakemail_email_api_type: Literal["marketing", "transactional"] = "transactional"
    cakemail_list_id: int | None = Field(default=None, ge=1)
    # v2: each account's senders are looked up once (all pages) and kept this long.
    sender_cache_ttl_seconds: float = Field(default=300.0, gt=0)
    sender_cache_max_entries: int = Field(default=10_000, gt=0)
    # v2: POST /v2/emails calls in flight for one message (one call per recipient). 50: a 100-recipient message
    # takes 2 API latencies (~13 at 8, 4 at 32; docs/performance.md, "Fan-out").
    recipient_concurrency: int = Field(default=50, gt=0)
    # v2: how far around a lost answer the activity logs are searched before a resend sends again.
    ambiguous_lookup_window_seconds: float = Field(default=60.0, gt=0)

    # glibc's mmap threshold (gateway_common/allocator.py): a large message's attachment buffers get mappings of
    # their own, returned to the system when freed. 0: glibc's own, self-raising threshold.
    malloc_mmap_threshold_bytes: int = Field(default=1024 * 1024, ge=0, le=32 * 1024 * 1024)

    token_cache_ttl_seconds: float = Field(default=900.0, gt=0)
    token_cache_max_entries: int = Field(default=10_000, gt=0)
    max_inflight_api_calls: int = Field(default=200, gt=0)

    # Retries of API calls that are safe to repeat (docs/errors.md), bounded by attempts and the caller's deadline.
    retry_max_attempts: int = Field(default=3, ge=1)
    retry_base_delay_seconds: float = Field(default=0.1, ge=0)
    retry_max_delay_seconds: float = Field(default=2.0, ge=0)
    # Circuit breaker on the API host: opens when failure_ratio of at least min_requests calls in the window failed.
    breaker_window_seconds: float = Field(default=30.0, gt=0)
    breaker_min_requests: int = Field(default=10, ge=1)
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_open_seconds: float = Field(default=15.0, gt=0)
    breaker_half_open_probes: int = Field(default=2, ge=1)
    # How long a call may wait for a free slot when every slot is taken, before RESOURCE_EXHAUSTED.
    saturation_wait_seconds: float = Field(default=0.05, ge=0)

    # A message the forwarder will assemble at most (the edge enforces the SMTP-level limit first).
    message_size_limit: int = Field(default=26_214_400, gt=0)
    # The largest gRPC message accepted: frames are at most 1 MiB of content plus metadata.
    grpc_max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # SubmitRawMessage parses messages itself, with the SMTP edge's limits: keep these equal to the edge's
    # MAX_ATTACHMENT_BYTES and SMTP_HOSTNAME (the domain of the Message-ID given to a message that had none).
    max_attachment_bytes: int = Field(default=10_485_760, gt=0)
    message_id_domain: str = Field(default_factory=socket.getfqdn)
    # TLS on the gRPC port when both files are set (PEM; re-read when they change); with GRPC_TLS_CLIENT_CA_FILE
    # also set, mutual TLS: every client (edges, direct callers) must present a certificate that CA signed.
    grpc_tls_cert_file: str = ""
    grpc_tls_key_file: str = ""
    grpc_tls_client_ca_file: str = ""
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    # gRPC clients re-resolve DNS only when a connection closes: ageing connections out lets edges find the pods the
    # autoscaler added. The grace lets calls in flight on an aged connection finish.
    grpc_max_connection_age_seconds: float = Field(default=300.0, gt=0)
    grpc_max_connection_age_grace_seconds: float = Field(default=60.0, gt=0)
    # OpenTelemetry traces to this OTLP/HTTP collector (e.g. http://otel-collector:4318); empty: tracing off.
    otel_exporter_otlp_endpoint: str = ""

    # The delivery record (forwarder.delivery): which recipients of a client's message were already handed to the
    # API, so a resend is sent once. In Redis when REDIS_URL is set (shared by every replica; the URL may carry a
    # password, hence secret), else in process memory, bounded by DELIVERY_RECORD_MAX_ENTRIES.
    redis_url: SecretStr | None = None
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    delivery_record_retention_seconds: float = Field(default=86_400.0, gt=0)
    delivery_record_max_entries: int = Field(default=100_000, gt=0)

    @field_validator("cakemail_list_id", mode="before")
    @classmethod
    def _empty_list_id_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
