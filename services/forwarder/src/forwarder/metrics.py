"""The forwarder's Prometheus metrics: the design's API-side names (docs/operations.md, "Metrics") and a few more.
Labels carry outcomes, endpoints and status codes, never addresses, user names or secrets."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class ForwarderMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.token_cache_hits = Counter(
            "forwarder_token_cache_hits_total", "Credential lookups answered from the cache", registry=registry
        )
        self.token_cache_misses = Counter(
            "forwarder_token_cache_misses_total", "Credential lookups that needed the API", registry=registry
        )
        self.token_cache_size = Gauge(
            "smtp_api_key_cache_size", "Credentials (API tokens) in this process's cache", registry=registry
        )
        self.api_requests = Counter(
            "forwarder_api_requests_total",
            "Cakemail API calls by route and outcome",
            ["route", "outcome"],
            registry=registry,
        )
        self.api_latency = Histogram(
            "smtp_api_latency_seconds",
            "Cakemail API call latency, by endpoint (route name) and HTTP status (none: no answer)",
            ["endpoint", "status_code"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.submissions = Counter(
            "forwarder_submissions_total", "SubmitMessage calls by result", ["result"], registry=registry
        )
        self.submission_bytes = Histogram(
            "forwarder_submission_bytes",
            "Assembled message content size",
            buckets=(1e3, 1e4, 1e5, 1e6, 5e6, 1e7, 2.5e7),
            registry=registry,
        )
        self.api_retries = Counter(
            "forwarder_api_retries_total", "API calls repeated after a retryable failure", ["route"], registry=registry
        )
        self.circuit_state = Gauge(
            "smtp_circuit_breaker_state", "API circuit breaker: 0 closed, 1 half-open, 2 open", registry=registry
        )
        self.api_errors = Counter(
            "smtp_api_errors",
            "Failed Cakemail API calls, by error type and HTTP status (none: no answer)",
            ["error_type", "status_code"],
            registry=registry,
        )
        self.recipients = Counter(
            "forwarder_recipients_total",
            "Envelope recipients by outcome: sent, already_sent (a resend), refused, deferred",
            ["result"],
            registry=registry,
        )
        self.ambiguous_submissions = Counter(
            "forwarder_ambiguous_submissions_total",
            "API calls whose answer was lost (answer_lost) and how a resend settled them: found (not sent again), "
            "not_found (sent), lookup_failed (deferred)",
            ["resolution"],
            registry=registry,
        )
        self.inflight_api_calls = Gauge(
            "forwarder_inflight_api_calls", "Cakemail API calls in flight", registry=registry
        )
        self.inflight_api_calls_limit = Gauge(
            "forwarder_inflight_api_calls_limit",
            "MAX_INFLIGHT_API_CALLS: API calls allowed in flight",
            registry=registry,
        )
