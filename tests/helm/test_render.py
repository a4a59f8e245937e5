"""Both charts rendered by Helm's own engine (helm-python-sdk), for the default values and a production-like values
file, every object validated against the Kubernetes schemas (kubernetes-validate, strict); helm lint --strict; the
values schemas; and what the ops objects (PrometheusRule, dashboard, NetworkPolicy, headless Service) promise."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.helm.render import (
    CUSTOM_KINDS,
    HELM,
    KUBERNETES_VERSIONS,
    by_kind,
    lint,
    objects,
    production_values,
    render,
    schema_errors,
)
from tests.helm.test_charts import SETTINGS_SOURCE, settings_fields
from tests.ops.promtool import promtool

CHARTS = ("smtp-edge", "forwarder")
VALUE_SETS = ("default", "production")


def values_for(chart: str, value_set: str) -> dict[str, Any]:
    return {} if value_set == "default" else production_values(chart)


@pytest.mark.parametrize("value_set", VALUE_SETS)
@pytest.mark.parametrize("chart", CHARTS)
def test_every_object_passes_the_kubernetes_schemas(chart: str, value_set: str) -> None:
    rendered = objects(render(chart, values_for(chart, value_set)))
    kinds = {obj["kind"] for obj in rendered}
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "PrometheusRule"} <= kinds
    problems = [
        problem
        for obj in rendered
        if obj["kind"] not in CUSTOM_KINDS
        for version in KUBERNETES_VERSIONS
        for problem in schema_errors(obj, version)
    ]
    assert problems == []
    for obj in rendered:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "cakemail-smtp-gateway"


@pytest.mark.parametrize("value_set", VALUE_SETS)
@pytest.mark.parametrize("chart", CHARTS)
def test_helm_lint_strict_is_clean(chart: str, value_set: str) -> None:
    assert lint(chart, values_for(chart, value_set)) == []


def test_the_schema_check_catches_a_misspelt_field() -> None:
    [deployment] = by_kind(render("forwarder"), "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy "] = "Always"
    assert schema_errors(deployment, KUBERNETES_VERSIONS[0]) == []
    [problem] = schema_errors(broken, KUBERNETES_VERSIONS[0])
    assert "imagePullPolicy " in problem


# ---- values.schema.json: a wrong value fails at install ----


@pytest.mark.parametrize(
    ("chart", "values", "complaint"),
    [
        ("smtp-edge", {"replicaCount": "two"}, "/replicaCount"),
        ("smtp-edge", {"config": {"MAX_RECIPIENT": "5"}}, "MAX_RECIPIENT"),
        ("smtp-edge", {"config": {"MAX_RECIPIENTS": 5}}, "/config/MAX_RECIPIENTS"),
        ("smtp-edge", {"config": {"FORWARDER_LB_POLICY": "least_request"}}, "/config/FORWARDER_LB_POLICY"),
        ("smtp-edge", {"service": {"type": "Loadbalancer"}}, "/service/type"),
        ("smtp-edge", {"smtp": {"containerPorts": {"submission": 70000}}}, "/smtp/containerPorts/submission"),
        ("smtp-edge", {"networkPolicy": {"monitoring": {"podSelector": {"matchLabel": {}}}}}, "matchLabel"),
        ("smtp-edge", {"autoscaling": {"targetCPUUtilizationPercentage": 160}}, "targetCPUUtilizationPercentage"),
        ("smtp-edge", {"prometheusRules": {"enabled": False}}, "prometheusRules"),
        ("forwarder", {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ("forwarder", {"config": {"CAKEMAIL_API_KEY": "x"}}, "CAKEMAIL_API_KEY"),
        ("forwarder", {"networkPolicy": {"api": {"cidrs": []}}}, "/networkPolicy/api/cidrs"),
        ("forwarder", {"service": {"headless": {"enabled": "yes"}}}, "/service/headless/enabled"),
    ],
)
def test_values_schema_refuses_wrong_values(chart: str, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match="schema") as refused:
        render(chart, values)
    assert complaint in str(refused.value)


@pytest.mark.parametrize("chart", CHARTS)
def test_values_schema_lists_every_setting_of_the_service(chart: str) -> None:
    schema = json.loads((HELM / chart / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert schema["properties"]["config"]["additionalProperties"] is False
    # REDIS_URL may carry a password: never in the ConfigMap (templates/configmap.yaml refuses it, and so does this).
    assert set(schema["properties"]["config"]["properties"]) == settings_fields(SETTINGS_SOURCE[chart]) - {"REDIS_URL"}


# ---- PrometheusRule ----


@pytest.mark.parametrize("chart", CHARTS)
def test_prometheusrule_only_where_the_crd_is_served(chart: str) -> None:
    assert len(by_kind(render(chart), "PrometheusRule")) == 1
    assert by_kind(render(chart, api_versions=()), "PrometheusRule") == []
    assert by_kind(render(chart, {"prometheusRule": {"enabled": False}}), "PrometheusRule") == []


@pytest.mark.parametrize("chart", CHARTS)
def test_prometheusrule_carries_the_rule_file(chart: str, tmp_path: Path) -> None:
    """The rendered rules are the file promtool tests, plus runbook links and the extra labels; promtool accepts them
    and their unit tests pass against them too."""
    [rule] = by_kind(render(chart, production_values(chart)), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load((HELM / chart / "files/prometheus-rules.yaml").read_text())
    rendered = rule["spec"]["groups"]
    for group in rendered:
        for alert in group["rules"]:
            assert alert["annotations"].pop("runbook_url").endswith(f"/docs/operations.md#{alert['alert'].lower()}")
            assert alert["labels"].pop("team") == "mail"
    assert rendered == source["groups"]

    # The rendered spec as a rule file, run through promtool and the unit tests.
    tree = tmp_path / "helm" / chart / "files"
    tree.mkdir(parents=True)
    (tree / "prometheus-rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    suite = tmp_path / "tests/ops/rules" / f"{chart}.test.yaml"
    suite.parent.mkdir(parents=True)
    shutil.copy(HELM.parent / "tests/ops/rules" / f"{chart}.test.yaml", suite)
    checked = promtool("check", "rules", tree / "prometheus-rules.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", suite)
    assert tested.returncode == 0, tested.stdout + tested.stderr


# ---- Grafana dashboard ----


@pytest.mark.parametrize("chart", CHARTS)
def test_dashboard_configmap_for_grafanas_sidecar(chart: str) -> None:
    [configmap] = [c for c in by_kind(render(chart), "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((HELM / chart / "files/dashboard.json").read_text())
    assert json.loads(configmap["data"][f"{chart}.json"]) == shipped
    production = by_kind(render(chart, production_values(chart)), "ConfigMap")
    [configmap] = [c for c in production if "grafana_dashboard" in c["metadata"]["labels"]]
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Mail"}
    off = render(chart, {"grafanaDashboard": {"enabled": False}})
    assert [c for c in by_kind(off, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")] == []


# ---- NetworkPolicy ----


def _ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(port["port"], port["protocol"]) for port in rule["ports"]}


def test_edge_networkpolicy() -> None:
    [policy] = by_kind(render("smtp-edge"), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "smtp-edge"
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    smtp, ops = spec["ingress"]
    assert _ports(smtp) == {("submission", "TCP"), ("submissions", "TCP")}
    assert "from" not in smtp, "SMTP is open to anywhere"
    assert _ports(ops) == {("http", "TCP")}
    assert ops["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    forwarder, dns = spec["egress"]
    assert _ports(forwarder) == {(50051, "TCP")}
    assert forwarder["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "forwarder"}}}]
    assert _ports(dns) == {(53, "UDP"), (53, "TCP")}
    assert by_kind(render("smtp-edge", {"networkPolicy": {"enabled": False}}), "NetworkPolicy") == []


def test_forwarder_networkpolicy() -> None:
    [policy] = by_kind(render("forwarder"), "NetworkPolicy")
    grpc, ops = policy["spec"]["ingress"]
    assert _ports(grpc) == {("grpc", "TCP")}
    assert grpc["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "smtp-edge"}}},
        {"podSelector": {"matchLabels": {"gateway.cakemail.com/forwarder-client": "true"}}},
    ]
    assert _ports(ops) == {("http-metrics", "TCP")}
    assert ops["from"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    api, dns = policy["spec"]["egress"]
    assert _ports(api) == {(443, "TCP")}
    assert api["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert _ports(dns) == {(53, "UDP"), (53, "TCP")}

    # With the delivery record in Redis, Redis is reachable too; the internal callers' namespace is named.
    [policy] = by_kind(render("forwarder", production_values("forwarder")), "NetworkPolicy")
    api, dns, redis = policy["spec"]["egress"]
    assert _ports(redis) == {(6379, "TCP")}
    assert redis["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "redis"}}
    assert policy["spec"]["ingress"][0]["from"][1]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "billing"}
    }


# ---- gRPC load balancing: the headless Service the edge dials ----


def test_edge_dials_every_forwarder_pod_through_the_headless_service() -> None:
    services = {s["metadata"]["name"]: s for s in by_kind(render("forwarder", name="forwarder"), "Service")}
    headless = services["forwarder-headless"]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is False
    [port] = headless["ports"]
    [deployment] = by_kind(render("forwarder", name="forwarder"), "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    # A headless name resolves to pod addresses: the client dials the container port itself.
    assert port["port"] == grpc_port
    assert services["forwarder"]["spec"]["type"] == "ClusterIP", "the ClusterIP Service stays for other callers"

    [edge_env] = [c for c in by_kind(render("smtp-edge"), "ConfigMap") if "FORWARDER_ADDRESS" in c.get("data", {})]
    assert edge_env["data"]["FORWARDER_ADDRESS"] == f"dns:///forwarder-headless:{grpc_port}"
    assert edge_env["data"]["FORWARDER_LB_POLICY"] == "round_robin"
    [edge_policy] = by_kind(render("smtp-edge"), "NetworkPolicy")
    assert edge_policy["spec"]["egress"][0]["ports"][0]["port"] == grpc_port
    assert (
        by_kind(render("forwarder", {"service": {"headless": {"enabled": False}}}), "Service")[0]["metadata"]["name"]
        == "forwarder"
    )


# ---- gRPC TLS and mTLS between the edge and the forwarder, from Secrets ----


def _env(chart: str, values: dict[str, Any]) -> dict[str, str]:
    [configmap] = [c for c in by_kind(render(chart, values), "ConfigMap") if c["metadata"]["name"] == chart]
    return dict(configmap["data"])


def _pod(chart: str, values: dict[str, Any]) -> dict[str, Any]:
    [deployment] = by_kind(render(chart, values), "Deployment")
    return dict(deployment["spec"]["template"]["spec"])


def test_forwarder_grpc_tls_and_client_ca_come_from_secrets_mounted_as_directories() -> None:
    assert not {"GRPC_TLS_CERT_FILE", "GRPC_TLS_CLIENT_CA_FILE"} & set(_env("forwarder", {}))
    tls = {"grpcTls": {"enabled": True, "secretName": "fw-tls", "clientCa": {"secretName": "callers-ca"}}}
    env = _env("forwarder", tls)
    assert env["GRPC_TLS_CERT_FILE"] == "/etc/forwarder/grpc-tls/tls.crt"
    assert env["GRPC_TLS_KEY_FILE"] == "/etc/forwarder/grpc-tls/tls.key"
    assert env["GRPC_TLS_CLIENT_CA_FILE"] == "/etc/forwarder/grpc-client-ca/ca.crt"
    pod = _pod("forwarder", tls)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["grpc-tls"]["secret"]["secretName"] == "fw-tls"
    assert volumes["grpc-client-ca"]["secret"]["secretName"] == "callers-ca"
    [container] = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["grpc-tls"]["mountPath"] == "/etc/forwarder/grpc-tls" and mounts["grpc-tls"]["readOnly"]
    assert mounts["grpc-client-ca"]["mountPath"] == "/etc/forwarder/grpc-client-ca"
    assert all("subPath" not in m for m in container["volumeMounts"]), "a subPath mount never sees a renewal"
    # TLS without client certificates: no client CA at all.
    server_only = {"grpcTls": {"enabled": True, "secretName": "fw-tls"}}
    assert "GRPC_TLS_CLIENT_CA_FILE" not in _env("forwarder", server_only)
    assert "grpc-client-ca" not in {v["name"] for v in _pod("forwarder", server_only)["volumes"]}


def test_edge_presents_its_client_certificate_from_secrets_mounted_as_directories() -> None:
    assert "FORWARDER_TLS_CA_FILE" not in _env("smtp-edge", {})
    tls = {"forwarderTls": {"enabled": True, "caSecretName": "fw-ca", "clientCertSecretName": "edge-client"}}
    env = _env("smtp-edge", tls)
    assert env["FORWARDER_TLS_CA_FILE"] == "/etc/smtp-edge/forwarder-tls/ca/ca.crt"
    assert env["FORWARDER_TLS_CERT_FILE"] == "/etc/smtp-edge/forwarder-tls/client/tls.crt"
    assert env["FORWARDER_TLS_KEY_FILE"] == "/etc/smtp-edge/forwarder-tls/client/tls.key"
    pod = _pod("smtp-edge", tls)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["forwarder-ca"]["secret"]["secretName"] == "fw-ca"
    assert volumes["forwarder-client-cert"]["secret"]["secretName"] == "edge-client"
    [container] = pod["containers"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/smtp-edge/forwarder-tls/ca", "/etc/smtp-edge/forwarder-tls/client"} <= mounts
    assert all("subPath" not in m for m in container["volumeMounts"])
    ca_only = _env("smtp-edge", {"forwarderTls": {"enabled": True, "caSecretName": "fw-ca"}})
    assert "FORWARDER_TLS_CERT_FILE" not in ca_only and ca_only["FORWARDER_TLS_CA_FILE"].endswith("/ca/ca.crt")


@pytest.mark.parametrize(
    ("chart", "values", "complaint"),
    [
        ("forwarder", {"grpcTls": {"enabled": True}}, "grpcTls.secretName"),
        ("forwarder", {"config": {"GRPC_TLS_CERT_FILE": "/x"}}, "config.GRPC_TLS_CERT_FILE is set from grpcTls"),
        ("smtp-edge", {"forwarderTls": {"enabled": True}}, "forwarderTls.caSecretName"),
        ("smtp-edge", {"config": {"FORWARDER_TLS_KEY_FILE": "/x"}}, "config.FORWARDER_TLS_KEY_FILE is set from"),
    ],
)
def test_grpc_tls_settings_are_refused_when_incomplete_or_set_twice(
    chart: str, values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmRenderError) as refused:
        render(chart, values)
    assert complaint in str(refused.value)


@pytest.mark.parametrize(
    ("chart", "values", "complaint"),
    [
        ("forwarder", {"grpcTls": {"enabled": "yes"}}, "/grpcTls/enabled"),
        ("forwarder", {"grpcTls": {"mountPath": "relative"}}, "/grpcTls/mountPath"),
        ("forwarder", {"grpcTls": {"clientCa": {"secret": "x"}}}, "secret"),
        ("smtp-edge", {"forwarderTls": {"caKey": "a/b"}}, "/forwarderTls/caKey"),
        ("smtp-edge", {"forwarderTls": {"clientCert": "x"}}, "clientCert"),
    ],
)
def test_grpc_tls_values_schema(chart: str, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match="schema") as refused:
        render(chart, values)
    assert complaint in str(refused.value)
