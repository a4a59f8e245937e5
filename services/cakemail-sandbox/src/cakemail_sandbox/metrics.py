"""Prometheus metrics of one sandbox, in its own registry (several sandboxes may share a test process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter


@dataclass
class SandboxMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    requests: Counter = field(init=False)
    faults: Counter = field(init=False)
    emails: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "sandbox_requests",
            "API requests by fault-table route and answered status ('none' when no answer was sent)",
            ["route", "status"],
            registry=self.registry,
        )
        self.faults = Counter(
            "sandbox_faults_applied", "Injected faults by route and kind", ["route", "kind"], registry=self.registry
        )
        self.emails = Counter(
            "sandbox_emails_recorded",
            "Emails recorded by API flavor (v1, v2) and status (queued, rejected)",
            ["flavor", "status"],
            registry=self.registry,
        )
