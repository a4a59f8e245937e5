"""The edge's Prometheus metrics: the design's SMTP-side names (docs/operations.md, "Metrics") and a few more.
Labels carry outcomes, commands and reply codes, never addresses, user names or secrets."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Up to the largest message the edge accepts (MESSAGE_SIZE_LIMIT, 25 MiB by default).
SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 5e6, 1e7, 2.5e7)
# Fast commands in milliseconds; DATA and AUTH wait on the forwarder and the API (the alert's line is 2 s).
PROCESSING_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
CONNECTION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
# The commands whose series exist from the start (others appear when first used).
COMMANDS = ("EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT")


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        # The design's names.
        self.connections = Counter(
            "smtp_connections",
            "SMTP connections by how they were handled: accepted, refused (an admission policy), tls_failed",
            ["status"],
            registry=registry,
        )
        self.active_connections = Gauge("smtp_active_connections", "SMTP connections open", registry=registry)
        self.connection_duration = Histogram(
            "smtp_connection_duration_seconds",
            "How long SMTP connections stay open",
            buckets=CONNECTION_BUCKETS,
            registry=registry,
        )
        self.emails_received = Counter(
            "smtp_emails_received", "Messages received to the end of DATA (refused ones included)", registry=registry
        )
        self.emails_forwarded = Counter(
            "smtp_emails_forwarded",
            "Messages handed to the forwarder, by final outcome: success (Cakemail accepted, 250) or failure",
            ["result"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "smtp_auth_failures", "AUTH attempts refused for their credentials", registry=registry
        )
        self.processing_duration = Histogram(
            "smtp_processing_duration_seconds",
            "Time to answer an SMTP command (DATA: from the end of the data to the reply, forwarder and API included)",
            ["command"],
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.email_size = Histogram(
            "smtp_email_size_bytes", "Size of messages received", buckets=SIZE_BUCKETS, registry=registry
        )
        # Beyond the design.
        self.sessions = Counter("smtp_sessions_total", "SMTP connections accepted", ["listener"], registry=registry)
        self.auth_attempts = Counter(
            "smtp_auth_attempts_total",
            "AUTH attempts by mechanism and outcome",
            ["mechanism", "outcome"],
            registry=registry,
        )
        self.messages = Counter(
            "smtp_messages_total", "DATA transactions by SMTP reply code", ["code"], registry=registry
        )
        self.forward_latency = Histogram(
            "smtp_forward_seconds",
            "Time from end of DATA to the forwarder's answer",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.client_gone_during_forward = Counter(
            "smtp_client_disconnected_during_forward_total",
            "Clients that hung up while their message was being forwarded, by the forwarding outcome",
            ["outcome"],
            registry=registry,
        )
        self.policy_refusals = Counter(
            "smtp_policy_refusals_total",
            "Clients turned away by an abuse policy (deny_list, connections, auth_throttle, rate_ip, rate_account, "
            "command_limit, data_budget)",
            ["policy"],
            registry=registry,
        )
        self.shared_counters_unavailable = Counter(
            "smtp_shared_counters_unavailable_total",
            "Times the shared (Redis) counters could not be reached and this pod counted on its own",
            registry=registry,
        )

        for result in ("success", "failure"):  # both series exist from the start: the error rate is a number
            self.emails_forwarded.labels(result)
        for status in ("accepted", "refused", "tls_failed"):
            self.connections.labels(status)
        # Each command's series, made once: every connection wraps each command with its timer (labels() is ~3 us).
        self._command_timers: dict[str, Callable[[float], None]] = {
            command: self.processing_duration.labels(command).observe for command in COMMANDS
        }

    def command_timer(self, command: str) -> Callable[[float], None]:
        timer = self._command_timers.get(command)
        if timer is None:
            timer = self._command_timers[command] = self.processing_duration.labels(command).observe
        return timer

    def forwarded(self, accepted: bool) -> None:
        self.emails_forwarded.labels("success" if accepted else "failure").inc()
