"""The edge's Prometheus metrics. Labels carry reply codes and outcomes, never addresses or secrets."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.sessions = Counter("smtp_sessions_total", "SMTP connections accepted", ["listener"], registry=registry)
        self.active_sessions = Gauge("smtp_active_sessions", "SMTP connections open", registry=registry)
        self.auth_attempts = Counter(
            "smtp_auth_attempts_total",
            "AUTH attempts by mechanism and outcome",
            ["mechanism", "outcome"],
            registry=registry,
        )
        self.messages = Counter(
            "smtp_messages_total", "DATA transactions by SMTP reply code", ["code"], registry=registry
        )
        self.message_bytes = Histogram(
            "smtp_message_bytes",
            "Size of messages received",
            buckets=(1e3, 1e4, 1e5, 1e6, 5e6, 1e7, 2.5e7),
            registry=registry,
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
            "Clients turned away by an abuse policy (deny_list, connections, auth_throttle, rate_ip, rate_account)",
            ["policy"],
            registry=registry,
        )
        self.shared_counters_unavailable = Counter(
            "smtp_shared_counters_unavailable_total",
            "Times the shared (Redis) counters could not be reached and this pod counted on its own",
            registry=registry,
        )
