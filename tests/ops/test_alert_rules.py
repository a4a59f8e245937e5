"""The charts' alert rules: valid for promtool, a firing and a silent unit test per alert, design metric names only,
and a runbook section per alert."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.ops.metrics_contract import CHARTS, ROOT, allowed_series, metric_names
from tests.ops.promtool import promtool

RULE_TESTS = ROOT / "tests/ops/rules"
OPERATIONS = ROOT / "docs/operations.md"


def rules_file(chart: str, root: Path = ROOT) -> Path:
    return root / "helm" / chart / "files/prometheus-rules.yaml"


def rule_tests_file(chart: str, root: Path = ROOT) -> Path:
    return root / "tests/ops/rules" / f"{chart}.test.yaml"


def alerts(chart: str) -> dict[str, dict]:
    groups = yaml.safe_load(rules_file(chart).read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


@pytest.fixture(params=CHARTS)
def chart(request: pytest.FixtureRequest) -> str:
    return request.param


def test_promtool_checks_the_rules(chart: str) -> None:
    result = promtool("check", "rules", rules_file(chart))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts(chart))} rules found" in result.stdout


def test_promtool_unit_tests_pass(chart: str) -> None:
    result = promtool("test", "rules", rule_tests_file(chart))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case(chart: str) -> None:
    suite = yaml.safe_load(rule_tests_file(chart).read_text())
    assert suite["rule_files"] == [f"../../../helm/{chart}/files/prometheus-rules.yaml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in suite["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = set(alerts(chart))
    assert names - firing == set(), "alerts without a test that fires them"
    assert names - silent == set(), "alerts without a healthy series that keeps them silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_the_charts_cover_what_an_on_call_needs() -> None:
    everything = {name: rule for chart in CHARTS for name, rule in alerts(chart).items()}
    reads = {name: metric_names(rule["expr"]) for name, rule in everything.items()}
    assert "smtp_emails_forwarded_total" in reads["SmtpGatewayErrorRateHigh"]
    assert "> 0.01" in everything["SmtpGatewayErrorRateHigh"]["expr"]
    assert "smtp_processing_duration_seconds_bucket" in reads["SmtpGatewayLatencyHigh"]
    assert re.search(r"histogram_quantile\(0\.99,.*\)\s*> 2\s*$", everything["SmtpGatewayLatencyHigh"]["expr"], re.S)
    assert reads["SmtpGatewayCircuitBreakerOpen"] == {"smtp_circuit_breaker_state"}
    assert reads["SmtpGatewayApiLatencyHigh"] == {"smtp_api_latency_seconds_bucket"}
    assert reads["SmtpGatewayAuthFailureSpike"] == {"smtp_auth_failures_total"}
    assert reads["SmtpForwarderSaturated"] == {"forwarder_inflight_api_calls", "forwarder_inflight_api_calls_limit"}
    assert (
        reads["SmtpEdgePodsRestarting"]
        == reads["SmtpForwarderPodsRestarting"]
        == {"kube_pod_container_status_restarts_total"}
    )
    assert reads["SmtpGatewayNoTraffic"] == {"smtp_emails_received_total"}
    for name, rule in everything.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_rules_read_only_declared_metrics(chart: str) -> None:
    unknown = {name: metric_names(rule["expr"]) - allowed_series() for name, rule in alerts(chart).items()}
    assert {name: names for name, names in unknown.items() if names} == {}


def test_every_alert_has_a_runbook_section(chart: str) -> None:
    headings = set(re.findall(r"^### (\w+)$", OPERATIONS.read_text(), re.M))
    assert set(alerts(chart)) - headings == set()


# ---- the unit tests can fail ----


@pytest.mark.parametrize(
    ("chart", "original", "broken", "alert"),
    [
        ("smtp-edge", "          > 0.01\n", "          > 0.1\n", "SmtpGatewayErrorRateHigh"),
        ("smtp-edge", "          > 2\n", "          > 5\n", "SmtpGatewayLatencyHigh"),
        ("forwarder", "[2m])) >= 2\n", "[2m])) >= 3\n", "SmtpGatewayCircuitBreakerOpen"),
        ("forwarder", ") > 0.8\n", ") > 0.1\n", "SmtpForwarderSaturated"),
    ],
)
def test_a_changed_threshold_fails_the_unit_tests(
    tmp_path: Path, chart: str, original: str, broken: str, alert: str
) -> None:
    """Too strict and too lax alike: the firing case goes silent, or the healthy case fires."""
    rules, suite = rules_file(chart, tmp_path), rule_tests_file(chart, tmp_path)
    rules.parent.mkdir(parents=True)
    suite.parent.mkdir(parents=True)
    shutil.copy(rule_tests_file(chart), suite)
    text = rules_file(chart).read_text()
    assert text.count(original) == 1
    rules.write_text(text.replace(original, broken))
    result = promtool("test", "rules", suite)
    assert result.returncode != 0
    assert f"alertname: {alert}," in result.stdout + result.stderr
