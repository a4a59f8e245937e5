"""The Grafana dashboards: every panel's query parses and runs on a real Prometheus server (Debian's prometheus on a
free loopback port, with the charts' alert rules loaded), and reads only declared metrics."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import free_port
from tests.ops.metrics_contract import CHARTS, ROOT, allowed_series, metric_names
from tests.ops.promtool import binary

# Grafana's own variables, as Grafana would substitute them before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": ".*"}


def dashboard(chart: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "helm" / chart / "files/dashboard.json").read_text())
    return data


def queries(chart: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel."""
    return [(panel["title"], target["expr"]) for panel in dashboard(chart)["panels"] for target in panel["targets"]]


def grafana_expand(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr}"
    return expr


class Prometheus:
    def __init__(self, workdir: Path, scrape: dict[str, str] | None = None) -> None:
        """`scrape`: job name -> host:port of a /metrics to scrape every second."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        rules = [str(ROOT / "helm" / chart / "files/prometheus-rules.yaml") for chart in CHARTS]
        jobs = [{"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in (scrape or {}).items()]
        settings = {"evaluation_interval": "1s", "scrape_interval": "1s", "scrape_timeout": "1s"}
        config.write_text(json.dumps({"global": settings, "rule_files": rules, "scrape_configs": jobs}))
        self.log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus not ready in time")

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as error:  # a bad query is a 400 with a JSON body naming the error
            body = error.read()
        result: dict[str, Any] = json.loads(body)
        return result

    def stop(self) -> int:
        self.process.terminate()
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.log.close()
        return code


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        server.wait_ready()
        yield server
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("chart", CHARTS)
def test_every_panel_query_runs_on_prometheus(prometheus: Prometheus, chart: str) -> None:
    results = {}
    for title, expr in queries(chart):
        answer = prometheus.get("/api/v1/query", query=grafana_expand(expr))
        results[f"{title}: {expr}"] = (answer["status"], answer.get("error"))
    assert {query: result for query, result in results.items() if result[0] != "success"} == {}


def test_prometheus_rejects_a_broken_query(prometheus: Prometheus) -> None:
    """The check above can fail: a query with a typo is an error, not an empty result."""
    answer = prometheus.get("/api/v1/query", query="sum(rate(smtp_emails_received_total[5m])")
    assert answer["status"] == "error"
    assert answer["errorType"] == "bad_data"


def test_prometheus_loaded_every_alert_rule(prometheus: Prometheus) -> None:
    groups = prometheus.get("/api/v1/rules", type="alert")["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(loaded) >= {"SmtpGatewayErrorRateHigh", "SmtpGatewayCircuitBreakerOpen", "SmtpForwarderSaturated"}
    assert len(loaded) == 9
    # "unknown" until the first evaluation, never "err".
    assert "err" not in loaded.values()


@pytest.mark.parametrize("chart", CHARTS)
def test_dashboard_shape(chart: str) -> None:
    board = dashboard(chart)
    assert board["uid"] == f"smtp-gateway-{chart.removeprefix('smtp-')}"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
    unknown = {expr: metric_names(expr) - allowed_series() for _, expr in queries(chart)}
    unknown[variables["namespace"]["definition"]] = (
        metric_names(variables["namespace"]["definition"]) - allowed_series()
    )
    assert {expr: names for expr, names in unknown.items() if names} == {}


def test_the_edge_dashboard_has_the_designs_panels() -> None:
    exprs = [expr for _, expr in queries("smtp-edge")]
    assert any("rate(smtp_emails_received_total" in e and "[1h]" in e and "* 3600" in e for e in exprs)
    assert any("histogram_quantile(0.99" in e and "smtp_processing_duration_seconds_bucket" in e for e in exprs)
    assert any('smtp_emails_forwarded_total{namespace=~"$namespace", result="failure"}' in e for e in exprs)
    forwarder = [expr for _, expr in queries("forwarder")]
    assert any("histogram_quantile(0.95" in e and "smtp_api_latency_seconds_bucket" in e for e in forwarder)
