"""The design's metrics, proven with a real Prometheus (Debian's, on a free loopback port) scraping both services of
the running stack every second: after real SMTP traffic (messages, a failed AUTH, an API error), the design's key
queries return numbers through Prometheus' HTTP API, and every declared metric carries exactly its declared labels."""

from __future__ import annotations

import json
import math
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView, log_text
from tests.ops.metrics_contract import DESIGN_METRICS, EXTRA_METRICS
from tests.ops.test_dashboards import Prometheus

pytestmark = pytest.mark.e2e

# Labels Prometheus adds to every scraped series, and the histogram bucket's own.
SCRAPE_LABELS = {"__name__", "job", "instance"}
PASSWORD = "demo-password"


@pytest.fixture(scope="module")
def scraping(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(
        tmp_path_factory.mktemp("prometheus-scraping"),
        scrape={
            "smtp-edge": f"127.0.0.1:{stack.ports.edge_http}",
            "forwarder": f"127.0.0.1:{stack.ports.forwarder_http}",
        },
    )
    try:
        server.wait_ready()
        yield server
    finally:
        assert server.stop() == 0


def values(prometheus: Prometheus, query: str) -> list[float]:
    answer = prometheus.get("/api/v1/query", query=query)
    assert answer["status"] == "success", (query, answer)
    return [float(sample["value"][1]) for sample in answer["data"]["result"]]


def wait_for(prometheus: Prometheus, query: str, condition: Callable[[float], bool], timeout: float = 60) -> float:
    """The first value of `query` that meets `condition`, polled until the deadline (scrapes come every second)."""
    deadline = time.monotonic() + timeout
    seen: list[float] = []
    while time.monotonic() < deadline:
        seen = values(prometheus, query)
        if seen and condition(seen[0]):
            return seen[0]
        time.sleep(0.2)
    raise AssertionError(f"{query}: last answer {seen}")


def _message(subject: str) -> bytes:
    return (
        f"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4()}@metrics.test>\r\n\r\nmeasured\r\n"
    ).encode()


def _send_one(stack: Stack, tls: ssl.SSLContext) -> None:
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30) as client:
        client.starttls(context=tls)
        client.login("demo@example.com", PASSWORD)
        client.sendmail("ann@example.com", ["bob@example.net"], _message("metrics first"))


def _traffic(stack: Stack, tls: ssl.SSLContext, sandbox: SandboxView) -> None:
    """Three delivered messages, one the API fails for good (a 5xx on every attempt), one refused AUTH."""
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30) as client:
        client.starttls(context=tls)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("demo@example.com", "not-the-password")
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30) as client:
        client.starttls(context=tls)
        client.login("demo@example.com", PASSWORD)
        for number in range(3):
            client.sendmail("ann@example.com", ["bob@example.net"], _message(f"metrics {number}"))
        sandbox.faults({"emails": {"error_status": 500}})
        try:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("ann@example.com", ["bob@example.net"], _message("metrics failure"))
        finally:
            sandbox.faults({})
        assert refused.value.smtp_code // 100 == 4


def test_the_designs_queries_answer_through_prometheus(
    scraping: Prometheus, stack: Stack, client_tls: ssl.SSLContext, sandbox: SandboxView
) -> None:
    # Both services scraped before the traffic, so that rates see it as an increase.
    wait_for(scraping, "count(up == 1)", lambda up: up == 2)
    wait_for(scraping, "count(smtp_active_connections) + count(smtp_circuit_breaker_state)", lambda n: n == 2)
    # One message first, scraped, so that every labelled series (API endpoints and statuses) exists before the
    # traffic measured below: a series first seen with its final value shows no increase to a rate.
    received_before = values(scraping, "sum(smtp_emails_received_total)")[0]
    _send_one(stack, client_tls)
    wait_for(scraping, "sum(smtp_emails_received_total)", lambda n: n >= received_before + 1)
    wait_for(scraping, 'sum(smtp_api_latency_seconds_count{endpoint="emails"})', lambda n: n >= 1)
    _traffic(stack, client_tls, sandbox)

    wait_for(scraping, "sum(smtp_emails_received_total)", lambda n: n >= received_before + 5)
    per_hour = wait_for(scraping, "sum(rate(smtp_emails_received_total[1h])) * 3600", lambda v: v > 0)
    assert math.isfinite(per_hour)
    p99 = wait_for(
        scraping,
        "histogram_quantile(0.99, sum by (le) (rate(smtp_processing_duration_seconds_bucket[5m])))",
        math.isfinite,
    )
    assert p99 > 0
    error_rate = wait_for(
        scraping,
        'sum(rate(smtp_emails_forwarded_total{result="failure"}[5m])) / sum(rate(smtp_emails_forwarded_total[5m]))',
        lambda rate: math.isfinite(rate) and rate > 0,
    )
    assert error_rate < 1  # three of the four messages went through
    api_p95 = wait_for(
        scraping,
        "histogram_quantile(0.95, sum by (le) (rate(smtp_api_latency_seconds_bucket[5m])))",
        math.isfinite,
    )
    assert api_p95 > 0
    wait_for(scraping, "sum(smtp_auth_failures_total)", lambda n: n >= 1)
    wait_for(scraping, 'sum(smtp_api_errors_total{error_type="unavailable", status_code="500"})', lambda n: n >= 1)
    wait_for(scraping, 'sum(smtp_connections_total{status="accepted"})', lambda n: n >= 2)
    # The saturation alert's expression: in use over the limit (MAX_INFLIGHT_API_CALLS, 200 by default).
    assert values(scraping, "max(forwarder_inflight_api_calls_limit)") == [200.0]
    usage = values(
        scraping, "max(avg_over_time(forwarder_inflight_api_calls[1m]) / forwarder_inflight_api_calls_limit)"
    )
    assert len(usage) == 1 and 0 <= usage[0] < 1
    assert values(scraping, "max(smtp_circuit_breaker_state)") == [0.0]
    assert values(scraping, "max(smtp_api_key_cache_size)")[0] >= 1


def test_every_declared_metric_has_exactly_its_labels(
    scraping: Prometheus, stack: Stack, client_tls: ssl.SSLContext, sandbox: SandboxView
) -> None:
    wait_for(scraping, "count(smtp_api_errors_total)", lambda n: n >= 1)  # the traffic of the test above
    expected: dict[str, set[str]] = {}
    for name, (kind, labels) in DESIGN_METRICS.items():
        series = f"{name}_bucket" if kind == "histogram" else name
        expected[series] = set(labels) | ({"le"} if kind == "histogram" else set())
    expected |= {name: set() for name in EXTRA_METRICS}
    found: dict[str, set[str]] = {}
    for series in expected:
        answer = scraping.get("/api/v1/series", **{"match[]": series})
        assert answer["status"] == "success", answer
        jobs = {labels["job"] for labels in answer["data"]}
        assert len(jobs) == 1, f"{series} exposed by {jobs or 'nobody'}"
        found[series] = {key for labels in answer["data"] for key in labels} - SCRAPE_LABELS
    assert found == expected


def test_the_edge_logs_who_authenticated_never_the_password(stack: Stack, client_tls: ssl.SSLContext) -> None:
    username = "demo@example.com"
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30) as client:
        client.starttls(context=client_tls)
        client.login(username, PASSWORD)
        client.sendmail("ann@example.com", ["bob@example.net"], _message("who sent this"))
    lines = [json.loads(line) for line in log_text(stack).splitlines() if line.startswith("{")]
    forwarded = [line for line in lines if line.get("message") == "message forwarded"]
    assert forwarded and forwarded[-1].get("authenticated_user") == username
    assert any(line.get("message") == "auth accepted" and line.get("authenticated_user") == username for line in lines)
    assert PASSWORD not in log_text(stack)
