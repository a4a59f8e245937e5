"""Helm's own engine, without a helm binary: helm-python-sdk binds Helm's Go SDK (chart loading, values coalescing,
values.schema.json, templates, lint). Rendered objects are checked against the Kubernetes OpenAPI schemas offline
with kubernetes-validate (strict: an unknown field is an error)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml
from helm_python import _native

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "helm"
PRODUCTION = Path(__file__).resolve().parent / "production"

# The CRDs the charts render for when the cluster serves them (Capabilities.APIVersions).
CRD_API_VERSIONS = (
    "monitoring.coreos.com/v1/PrometheusRule",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "cert-manager.io/v1/Certificate",
)
# Kubernetes versions whose schemas every object must pass: the oldest kubernetes-validate ships and a recent one.
KUBERNETES_VERSIONS = ("1.25.0", "1.33.0")
# Kinds of CRDs, whose schemas kubernetes-validate does not ship; checked by their own tests (promtool for rules).
CUSTOM_KINDS = {"PrometheusRule", "ServiceMonitor", "Certificate"}


@cache
def _chart(path: Path) -> helm.Chart:
    return helm.Chart.load(path)


def production_values(chart: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PRODUCTION / f"{chart}.yaml").read_text())
    return data


def render(
    chart: str | Path,
    values: dict[str, Any] | None = None,
    *,
    api_versions: Iterable[str] = CRD_API_VERSIONS,
    name: str | None = None,
    namespace: str = "mail",
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would print it (values validated against the schema).

    The SDK's Chart.render takes no API versions; its native call does (the same options `helm template
    --api-versions` sets), so Capabilities.APIVersions.Has sees the CRDs named here.
    """
    path = chart if isinstance(chart, Path) else HELM / chart
    loaded = _chart(path) if not isinstance(chart, Path) else helm.Chart.load(path)
    options = {
        "name": name or path.name,
        "namespace": namespace,
        "is_install": True,
        "api_versions": list(api_versions),
    }
    rendered: dict[str, str] = json.loads(
        _native.call_string("helm_render", loaded._raw(), json.dumps(values or {}), json.dumps(options))
    )
    return rendered


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt and empty documents left out)."""
    found = []
    for template, text in sorted(rendered.items()):
        if template.endswith(".txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                assert isinstance(document, dict), f"{template} renders a non-object"
                found.append(document)
    return found


def by_kind(rendered: dict[str, str], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects(rendered) if obj["kind"] == kind]


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """kubernetes-validate's complaints about one object, strict (unknown fields are errors)."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(part) for part in error.path)
        return [f"{obj['kind']}/{obj['metadata']['name']} at {where or '.'}: {error.message}"]
    return []


def lint(chart: str, values: dict[str, Any] | None = None) -> list[str]:
    """helm lint --strict: its warnings and errors (info messages such as 'icon is recommended' left out)."""
    report = helm.lint(HELM / chart, values, strict=True, namespace="mail")
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + list(report["errors"])
