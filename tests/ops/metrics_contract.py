"""The metric names the alerts and dashboards may use: the design's, plus the few the design lacks.

The services expose them with exactly these labels (docs/operations.md, "Metrics"; tests/ops/test_live_metrics.py
checks it on a real Prometheus). Anything outside this list in a rule or a panel is a typo or an undeclared contract.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ("smtp-edge", "forwarder")

# name -> (type, labels)
DESIGN_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "smtp_connections_total": ("counter", ("status",)),
    "smtp_emails_received_total": ("counter", ()),
    "smtp_emails_forwarded_total": ("counter", ("result",)),
    "smtp_auth_failures_total": ("counter", ()),
    "smtp_api_errors_total": ("counter", ("error_type", "status_code")),
    "smtp_processing_duration_seconds": ("histogram", ("command",)),
    "smtp_api_latency_seconds": ("histogram", ("endpoint", "status_code")),
    "smtp_email_size_bytes": ("histogram", ()),
    "smtp_connection_duration_seconds": ("histogram", ()),
    "smtp_active_connections": ("gauge", ()),
    "smtp_api_key_cache_size": ("gauge", ()),
    "smtp_circuit_breaker_state": ("gauge", ()),
}
# Not in the design: the forwarder's bulkhead (MAX_INFLIGHT_API_CALLS) in use and its size, for the saturation
# alert.
EXTRA_METRICS = {"forwarder_inflight_api_calls": "gauge", "forwarder_inflight_api_calls_limit": "gauge"}
# kube-state-metrics.
CLUSTER_METRICS = {"kube_pod_container_status_restarts_total"}

_HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def allowed_series() -> set[str]:
    names = set(EXTRA_METRICS) | CLUSTER_METRICS
    for name, (kind, _labels) in DESIGN_METRICS.items():
        if kind == "histogram":
            names |= {name + suffix for suffix in _HISTOGRAM_SERIES}
        else:
            names.add(name)
    return names


METRIC_NAME = re.compile(r"\b(?:smtp|forwarder|kube)_[a-z0-9_]+\b")


def metric_names(promql: str) -> set[str]:
    """The gateway's and kube-state-metrics' metric names a PromQL expression reads (string literals excluded)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)
    return set(METRIC_NAME.findall(without_strings))
