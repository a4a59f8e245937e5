"""All edge configuration, from the environment, in one place."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smtp_edge.smtp.data_reader import BareNewline


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_starttls_port: int = 2587
    smtp_tls_port: int = 2465
    smtp_hostname: str = Field(default_factory=socket.getfqdn)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "INFO"
    # uvloop (less CPU per message, docs/performance.md) or asyncio's own loop, for an A/B.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    tls_cert_file: str = ".dev/certs/cert.pem"
    tls_key_file: str = ".dev/certs/key.pem"
    tls_reload_interval_seconds: float = Field(default=30.0, gt=0)

    # A gRPC target: host:port, or dns:///forwarder-headless:50051 so that every forwarder pod behind a headless
    # Service gets a connection (ipv4:127.0.0.1:p1,127.0.0.1:p2 lists addresses).
    forwarder_address: str = "127.0.0.1:50051"
    # How calls spread over the addresses the target resolves to: round_robin over all of them, or pick_first (one
    # HTTP/2 connection to one forwarder, as through a ClusterIP Service).
    forwarder_lb_policy: Literal["round_robin", "pick_first"] = "round_robin"
    # TLS to the forwarder when FORWARDER_TLS_CA_FILE is set (the CA of the forwarder's gRPC certificate); with the
    # certificate and key files also set, the edge presents that client certificate (the forwarder's mTLS).
    forwarder_tls_ca_file: str = ""
    forwarder_tls_cert_file: str = ""
    forwarder_tls_key_file: str = ""
    # Under typical client timeouts (smtplib, Nodemailer and .NET wait minutes for the DATA reply).
    forwarder_timeout_seconds: float = Field(default=45.0, gt=0)
    # OpenTelemetry traces to this OTLP/HTTP collector (e.g. http://otel-collector:4318); empty: tracing off.
    otel_exporter_otlp_endpoint: str = ""
    auth_timeout_seconds: float = Field(default=15.0, gt=0)

    message_size_limit: int = Field(default=26_214_400, gt=0)
    max_attachment_bytes: int = Field(default=10_485_760, gt=0)
    max_recipients: int = Field(default=100, gt=0)
    # Commands a session may send without sending a message (counted per command name since the session began or
    # its last message; docs/smtp.md, "Command limits"): RCPT, and every other command but QUIT. Over: 421 4.7.0.
    max_commands_without_message: int = Field(default=100, gt=0)
    max_rcpt_without_message: int = Field(default=1000, gt=0)
    # Message bytes in flight in this process (read, parsed, being forwarded): over it, 452 4.3.1 and the client
    # retries. The default fits the chart's 1 GiB pod (docs/configuration.md has the arithmetic).
    data_bytes_in_flight_limit: int = Field(default=48 * 1024 * 1024, gt=0)
    # The header block (up to its empty line), refused with 552 5.3.4 while it is read. The default is what the
    # first gRPC frame carries (gateway_mime.frames.MAX_START_FRAME_BYTES): a larger block could never be sent.
    max_header_bytes: int = Field(default=3 * 1024 * 1024, gt=0)
    # A CR or LF outside CRLF inside DATA: "normalize" makes it a line end (Postfix 3.9's default), "reject" refuses
    # the message with 550 5.6.0. End of data is <CRLF>.<CRLF> either way (docs/smtp.md).
    bare_newline: BareNewline = BareNewline.NORMALIZE
    # RFC 5321 4.5.3.2: a server should wait at least 5 minutes for the next command.
    command_timeout_seconds: float = Field(default=300.0, gt=0)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)

    max_connections_per_ip: int = Field(default=50, gt=0)
    max_connections: int = Field(default=2000, gt=0)
    auth_failure_limit: int = Field(default=5, gt=0)
    auth_failure_window_seconds: float = Field(default=300.0, gt=0)
    auth_failure_cooldown_seconds: float = Field(default=900.0, gt=0)
    # Comma-separated CIDRs never throttled for AUTH failures (e.g. a monitoring probe).
    auth_throttle_allowlist: str = ""
    # Messages (transactions, counted at MAIL FROM) per window per client IP and per account; 0 turns one off.
    # Ceilings against a runaway or hostile source, far above one real application server (docs/configuration.md).
    rate_limit_per_ip_per_minute: int = Field(default=3000, ge=0)
    rate_limit_per_account_per_minute: int = Field(default=6000, ge=0)
    # The limits' window; 60 makes them per minute as named. Shorter only for tests.
    rate_limit_window_seconds: float = Field(default=60.0, gt=0)
    # Files of CIDRs, one per line: denied clients get 421 at connect; allowed ones skip the rate limits and the
    # AUTH throttle. Empty: no list. Looked at again (stat) at most every interval, on a connection.
    deny_list_file: str = ""
    allow_list_file: str = ""
    access_lists_check_interval_seconds: float = Field(default=5.0, gt=0)
    # Counters for the rate limits and the AUTH throttle shared by every edge pod; empty: each pod counts alone.
    redis_url: str = ""
    # A slow or dead Redis must not hold SMTP replies up: each call is capped, then the pod counts alone and tries
    # Redis again after the pause.
    redis_timeout_seconds: float = Field(default=0.25, gt=0)
    redis_retry_after_seconds: float = Field(default=5.0, gt=0)
    redis_key_prefix: str = "smtp-gateway:edge:v1"
    # PROXY protocol v1/v2 from a load balancer, so limits and logs see the real client IP.
    proxy_protocol: bool = False
    proxy_protocol_timeout_seconds: float = Field(default=5.0, gt=0)
    # Messages bigger than this are parsed in a worker thread so one big message never stalls other sessions.
    parse_in_thread_bytes: int = Field(default=256 * 1024, ge=0)
    # Messages bigger than this are parsed in one of PARSE_PROCESSES worker processes instead: a thread holds the
    # GIL while it parses, a process does not (docs/security.md, "Resource exhaustion"). 0 processes: no pool.
    parse_in_process_bytes: int = Field(default=8 * 1024, ge=0)
    parse_processes: int = Field(default=1, ge=0)
    # How much lower the parse workers' CPU priority is than the event loop's (`nice` increment, 0-19): a 25 MB parse
    # is throughput work, the loop's replies are latency work (docs/security.md, "Resource exhaustion").
    parse_worker_nice: int = Field(default=10, ge=0, le=19)
    # glibc's mmap threshold for the edge and its parse workers (gateway_common/allocator.py): large message buffers get
    # mappings of their own, returned to the system when freed. 0: glibc's own, self-raising threshold.
    malloc_mmap_threshold_bytes: int = Field(default=1024 * 1024, ge=0, le=32 * 1024 * 1024)
    # The TLS layer's read buffer per connection (asyncio's default is 256 KiB): what one connection's bytes cost the
    # loop per turn, and what an idle TLS connection holds (docs/security.md, "Resource exhaustion").
    tls_read_buffer_bytes: int = Field(default=64 * 1024, ge=16 * 1024)

    @model_validator(mode="after")
    def _limits_fit_together(self) -> EdgeSettings:
        if self.max_rcpt_without_message < self.max_recipients:
            raise ValueError("MAX_RCPT_WITHOUT_MESSAGE must be at least MAX_RECIPIENTS")
        if self.data_bytes_in_flight_limit < self.message_size_limit:
            raise ValueError("DATA_BYTES_IN_FLIGHT_LIMIT must be at least MESSAGE_SIZE_LIMIT (one message must fit)")
        return self
