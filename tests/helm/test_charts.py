"""The charts' contract with the services, read from the chart sources: values paths, environment variables, probes,
shutdown timing, and the one Dockerfile. Rendering, template syntax, lint and the Kubernetes schemas are Helm's own
engine's job (test_render.py).

Every check is a function returning a list of problems, so the self-tests at the bottom can show that each one
fails on a broken chart.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "helm"
CHARTS = ("smtp-edge", "forwarder")

REQUIRED_TEMPLATES = (
    "_helpers.tpl",
    "deployment.yaml",
    "service.yaml",
    "configmap.yaml",
    "hpa.yaml",
    "pdb.yaml",
    "servicemonitor.yaml",
    "serviceaccount.yaml",
    "prometheusrule.yaml",
    "dashboard.yaml",
    "networkpolicy.yaml",
    "NOTES.txt",
)

# What each service reads from its environment and the chart must set (docs/configuration.md).
SERVICE_ENV = {
    "smtp-edge": (
        "SMTP_HOST",
        "SMTP_STARTTLS_PORT",
        "SMTP_TLS_PORT",
        "SMTP_HOSTNAME",
        "HTTP_HOST",
        "HTTP_PORT",
        "FORWARDER_ADDRESS",
        "FORWARDER_LB_POLICY",
        "FORWARDER_TIMEOUT_SECONDS",
        "TLS_CERT_FILE",
        "TLS_KEY_FILE",
        "MESSAGE_SIZE_LIMIT",
        "MAX_RECIPIENTS",
        "PROXY_PROTOCOL",
        "SHUTDOWN_GRACE_SECONDS",
        "LOG_LEVEL",
    ),
    "forwarder": (
        "GRPC_HOST",
        "GRPC_PORT",
        "HTTP_HOST",
        "HTTP_PORT",
        "CAKEMAIL_API_URL",
        "CAKEMAIL_API_TIMEOUT_SECONDS",
        "TOKEN_CACHE_TTL_SECONDS",
        "TOKEN_CACHE_MAX_ENTRIES",
        "MAX_INFLIGHT_API_CALLS",
        "DELIVERY_RECORD_RETENTION_SECONDS",
        "DELIVERY_RECORD_MAX_ENTRIES",
        "REDIS_TIMEOUT_SECONDS",
        "SHUTDOWN_GRACE_SECONDS",
        "LOG_LEVEL",
    ),
}

# The settings class each chart configures. Unknown variables are silently ignored by pydantic-settings
# (extra="ignore"), so a misspelt key in a chart would never be noticed at run time.
SETTINGS_SOURCE = {
    "smtp-edge": ROOT / "services/smtp-edge/src/smtp_edge/config.py",
    "forwarder": ROOT / "services/forwarder/src/forwarder/config.py",
}
# Set by the chart ahead of the service reading it.
PENDING_SETTINGS: dict[str, set[str]] = {"smtp-edge": set(), "forwarder": set()}

# The one Dockerfile (`--build-arg SERVICE=<name>`): service -> (its module, its source directory).
DOCKERFILE = ROOT / "Dockerfile"
DOCKERFILES = {
    "smtp-edge": ("smtp_edge", "services/smtp-edge/src"),
    "forwarder": ("forwarder", "services/forwarder/src"),
    "cakemail-sandbox": ("cakemail_sandbox", "services/cakemail-sandbox/src"),
}

COMMENT = re.compile(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", re.S)
VALUES_PATH = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


# ---- helpers ----


def chart_dir(chart: str, base: Path = HELM) -> Path:
    return base / chart


def load_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def templates(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((directory / "templates").iterdir()) if p.is_file()}


def strip_comments(text: str) -> str:
    # Keep the line count, so reported line numbers stay right.
    return COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def lookup(values: dict, dotted: str) -> tuple[bool, object]:
    node: object = values
    for part in dotted.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def settings_fields(path: Path) -> set[str]:
    """The environment variable names a pydantic BaseSettings class reads: its annotated fields, upper-cased."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.endswith("Settings"):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id.upper())
    return names


def derived_env(configmap: str) -> set[str]:
    """Variables the configmap template sets itself (not from .Values.config)."""
    return set(re.findall(r'set \$derived "([A-Z0-9_]+)"', configmap))


def chart_env(directory: Path) -> set[str]:
    values = load_yaml(directory / "values.yaml")
    return set(values.get("config") or {}) | derived_env(templates(directory)["configmap.yaml"])


def block(text: str, key: str) -> str:
    """The lines of a YAML block `key:` up to the next line indented as much or less."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"{key}:":
            indent = len(line) - len(line.lstrip())
            body = []
            for following in lines[i + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            return "\n".join(body)
    return ""


# ---- checks: each returns a list of problems ----


def check_chart_yaml(directory: Path) -> list[str]:
    meta = load_yaml(directory / "Chart.yaml")
    problems = []
    if meta.get("apiVersion") != "v2":
        problems.append(f"apiVersion is {meta.get('apiVersion')!r}, not v2")
    if meta.get("name") != directory.name:
        problems.append(f"name {meta.get('name')!r} is not the directory name {directory.name!r}")
    if not re.fullmatch(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?", str(meta.get("version", ""))):
        problems.append(f"version {meta.get('version')!r} is not SemVer")
    if not meta.get("appVersion"):
        problems.append("no appVersion")
    if meta.get("type", "application") != "application":
        problems.append("type is not application")
    return problems


def check_required_templates(directory: Path) -> list[str]:
    present = set(templates(directory))
    return [f"missing templates/{name}" for name in REQUIRED_TEMPLATES if name not in present]


def check_values_paths(directory: Path) -> list[str]:
    values = load_yaml(directory / "values.yaml")
    problems = []
    for name, text in templates(directory).items():
        for match in VALUES_PATH.finditer(strip_comments(text)):
            found, _ = lookup(values, match.group(1))
            if not found:
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{name}:{line}: .Values{match.group(1)} is not in values.yaml")
    return problems


def check_values_contract(directory: Path) -> list[str]:
    values = load_yaml(directory / "values.yaml")
    problems = []
    for path in (
        "image.repository",
        "image.tag",
        "image.pullPolicy",
        "replicaCount",
        "resources.requests.cpu",
        "resources.requests.memory",
        "resources.limits.cpu",
        "resources.limits.memory",
        "config",
        "envFromSecrets",
        "nodeSelector",
        "tolerations",
        "affinity",
        "podSecurityContext",
        "securityContext",
        "autoscaling.enabled",
        "autoscaling.minReplicas",
        "autoscaling.maxReplicas",
        "autoscaling.targetCPUUtilizationPercentage",
        "autoscaling.targetMemoryUtilizationPercentage",
        "podDisruptionBudget.enabled",
        "serviceMonitor.enabled",
        "metrics.podAnnotations",
        "terminationGracePeriodSeconds",
        "shutdown.graceSeconds",
        "shutdown.preStopSleepSeconds",
    ):
        if not lookup(values, path)[0]:
            problems.append(f"values.yaml has no {path}")
    if problems:
        return problems
    if not all(isinstance(v, str) for v in values["config"].values()):
        problems.append("every config value must be a quoted string (Helm prints large numbers as 2.6e+07)")
    if values["serviceMonitor"]["enabled"] is not False:
        problems.append("serviceMonitor.enabled must default to false (the CRD may not exist)")
    scaling = values["autoscaling"]
    if not scaling["minReplicas"] <= scaling["maxReplicas"]:
        problems.append("autoscaling.minReplicas > maxReplicas")
    if scaling["minReplicas"] < 2:
        problems.append("autoscaling.minReplicas < 2: a single pod cannot be drained without an outage")
    security = values["securityContext"]
    if security.get("runAsNonRoot") is not True and values["podSecurityContext"].get("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in (security.get("capabilities") or {}).get("drop", []):
        problems.append("capabilities do not drop ALL")
    return problems


def check_env(directory: Path, chart: str) -> list[str]:
    configmap = templates(directory)["configmap.yaml"]
    known = chart_env(directory)
    problems = [
        f"{name} is set neither in values config nor in configmap.yaml"
        for name in SERVICE_ENV[chart]
        if name not in known
    ]
    settings = settings_fields(SETTINGS_SOURCE[chart]) | PENDING_SETTINGS[chart]
    problems += [f"{name} is not a setting of {SETTINGS_SOURCE[chart].name}" for name in sorted(known - settings)]
    if "merge $derived .Values.config" not in configmap:
        problems.append("configmap.yaml does not render .Values.config")
    return problems


def check_deployment(directory: Path) -> list[str]:
    deployment = templates(directory)["deployment.yaml"]
    problems = []
    liveness, readiness = block(deployment, "livenessProbe"), block(deployment, "readinessProbe")
    if "path: /health/live" not in liveness or "httpGet:" not in liveness:
        problems.append("livenessProbe is not an HTTP GET of /health/live")
    if "path: /health/ready" not in readiness or "httpGet:" not in readiness:
        problems.append("readinessProbe is not an HTTP GET of /health/ready")
    if not re.search(
        r'checksum/config: \{\{ include \(print \$\.Template\.BasePath "/configmap\.yaml"\) \. \| sha256sum \}\}',
        deployment,
    ):
        problems.append("no checksum/config annotation of configmap.yaml on the pod template")
    if "topologySpreadConstraints:" not in deployment:
        problems.append("no topologySpreadConstraints")
    if "terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}" not in deployment:
        problems.append("terminationGracePeriodSeconds does not come from values")
    if "preStop:" not in deployment or ".Values.shutdown.preStopSleepSeconds" not in block(deployment, "preStop"):
        problems.append("no preStop sleep of shutdown.preStopSleepSeconds")
    if "prometheus.io/scrape" not in deployment:
        problems.append("no prometheus.io/scrape pod annotation")
    if "configMapRef:" not in block(deployment, "envFrom"):
        problems.append("the ConfigMap is not loaded with envFrom")
    if "{{- if not .Values.autoscaling.enabled }}\n  replicas:" not in deployment:
        problems.append("replicas is set even when the HPA owns the count")
    return problems


def check_hpa(directory: Path, chart: str) -> list[str]:
    files = templates(directory)
    hpa, deployment = strip_comments(files["hpa.yaml"]), files["deployment.yaml"]
    helper = f'{{{{ include "{chart}.fullname" . }}}}'
    problems = []
    if not hpa.lstrip().startswith("{{- if .Values.autoscaling.enabled }}"):
        problems.append("hpa.yaml is not wrapped in autoscaling.enabled")
    if "apiVersion: autoscaling/v2\n" not in hpa:
        problems.append("the HPA is not autoscaling/v2")
    target = block(hpa, "scaleTargetRef")
    if "kind: Deployment" not in target or f"name: {helper}" not in target:
        problems.append(f"scaleTargetRef is not the Deployment named by {helper}")
    if f"  name: {helper}" not in block(deployment, "metadata"):
        problems.append(f"the Deployment is not named by {helper}")
    for key in ("minReplicas", "maxReplicas", "targetCPUUtilizationPercentage", "targetMemoryUtilizationPercentage"):
        if f".Values.autoscaling.{key}" not in hpa:
            problems.append(f"hpa.yaml ignores autoscaling.{key}")
    return problems


def check_shutdown_timing(directory: Path) -> list[str]:
    values = load_yaml(directory / "values.yaml")
    configmap = templates(directory)["configmap.yaml"]
    grace, pre_stop = values["shutdown"]["graceSeconds"], values["shutdown"]["preStopSleepSeconds"]
    period = values["terminationGracePeriodSeconds"]
    problems = []
    if not period > grace:
        problems.append(f"terminationGracePeriodSeconds {period} <= SHUTDOWN_GRACE_SECONDS {grace}")
    if not period > grace + pre_stop:
        problems.append(
            f"terminationGracePeriodSeconds {period} <= preStop {pre_stop} + SHUTDOWN_GRACE_SECONDS {grace}"
        )
    if not re.search(
        r'set \$derived "SHUTDOWN_GRACE_SECONDS" \(include "[\w-]+\.envValue" \.Values\.shutdown\.graceSeconds\)',
        configmap,
    ):
        problems.append("SHUTDOWN_GRACE_SECONDS is not rendered from shutdown.graceSeconds")
    return problems


def check_servicemonitor(directory: Path) -> list[str]:
    text = templates(directory)["servicemonitor.yaml"]
    problems = []
    if not text.lstrip().startswith("{{- if .Values.serviceMonitor.enabled }}"):
        problems.append("servicemonitor.yaml is not wrapped in serviceMonitor.enabled")
    if "apiVersion: monitoring.coreos.com/v1\n" not in text or "kind: ServiceMonitor" not in text:
        problems.append("not a monitoring.coreos.com/v1 ServiceMonitor")
    if "path: /metrics" not in text:
        problems.append("the ServiceMonitor does not scrape /metrics")
    return problems


REDIS_URL_FROM_SECRET = re.compile(
    r"\{\{- if \.Values\.redis\.existingSecret \}\}\n"
    r"\s+- name: REDIS_URL\n\s+valueFrom:\n\s+secretKeyRef:\n"
    r"\s+name: \{\{ \.Values\.redis\.existingSecret \}\}\n"
    r"\s+key: \{\{ required \"[^\"]+\" \.Values\.redis\.secretKey \| quote \}\}\n"
    r"\s+\{\{- end \}\}"
)


def check_redis_url_from_secret(directory: Path) -> list[str]:
    """The forwarder's REDIS_URL may carry a password: it comes from a Secret's key, never from the ConfigMap, and
    only when a Secret is named (no Secret: the in-memory delivery record)."""
    values, files = load_yaml(directory / "values.yaml"), templates(directory)
    redis = values.get("redis") or {}
    problems = []
    if redis.get("existingSecret") != "":
        problems.append("redis.existingSecret does not default to empty (the in-memory record)")
    if not redis.get("secretKey"):
        problems.append("redis.secretKey has no default")
    if "REDIS_URL" in (values.get("config") or {}):
        problems.append("REDIS_URL is in values config, which lands in a ConfigMap")
    if not REDIS_URL_FROM_SECRET.search(block(files["deployment.yaml"], "env")):
        problems.append("REDIS_URL is not a secretKeyRef of redis.existingSecret / redis.secretKey, guarded by it")
    if not re.search(r'hasKey \.Values\.config "REDIS_URL" \}\}\n\{\{- fail ', files["configmap.yaml"]):
        problems.append("configmap.yaml does not refuse config.REDIS_URL")
    return problems


# ---- the tests ----


@pytest.fixture(params=CHARTS)
def chart(request: pytest.FixtureRequest) -> str:
    return request.param


def test_chart_yaml(chart: str) -> None:
    assert check_chart_yaml(chart_dir(chart)) == []


def test_required_templates_exist(chart: str) -> None:
    assert check_required_templates(chart_dir(chart)) == []


def test_every_values_path_exists(chart: str) -> None:
    assert check_values_paths(chart_dir(chart)) == []


def test_values_contract(chart: str) -> None:
    assert check_values_contract(chart_dir(chart)) == []


def test_service_environment_is_configured(chart: str) -> None:
    assert check_env(chart_dir(chart), chart) == []


def test_deployment(chart: str) -> None:
    assert check_deployment(chart_dir(chart)) == []


def test_hpa_targets_the_deployment(chart: str) -> None:
    assert check_hpa(chart_dir(chart), chart) == []


def test_shutdown_outlasts_the_drain(chart: str) -> None:
    assert check_shutdown_timing(chart_dir(chart)) == []


def test_servicemonitor_is_optional(chart: str) -> None:
    assert check_servicemonitor(chart_dir(chart)) == []


def test_edge_mounts_the_tls_secret_as_a_directory() -> None:
    directory = chart_dir("smtp-edge")
    deployment, configmap = templates(directory)["deployment.yaml"], templates(directory)["configmap.yaml"]
    assert "subPath" not in deployment, "a subPath mount never sees a renewed certificate"
    volumes = block(deployment, "volumes")
    assert "secret:" in volumes
    assert 'secretName: {{ include "smtp-edge.tlsSecretName" . }}' in volumes
    assert "mountPath: {{ .Values.tls.mountPath }}" in block(deployment, "volumeMounts")
    assert '"TLS_CERT_FILE" (printf "%s/tls.crt"' in configmap
    assert '"TLS_KEY_FILE" (printf "%s/tls.key"' in configmap


def test_edge_service_faces_clients_and_keeps_their_address() -> None:
    directory = chart_dir("smtp-edge")
    values, service = load_yaml(directory / "values.yaml"), templates(directory)["service.yaml"]
    assert values["service"]["type"] == "LoadBalancer"
    assert values["service"]["externalTrafficPolicy"] == "Local"
    assert values["service"]["ports"] == {"submission": 587, "submissions": 465}
    assert values["proxyProtocol"]["enabled"] is False
    # The HTTP port is on a separate ClusterIP Service, never on the load balancer.
    lb, metrics = service.split("\n---\n")
    assert "targetPort: http\n" not in lb
    assert "type: ClusterIP" in metrics and "targetPort: http\n" in metrics
    assert "proxyProtocol.serviceAnnotations" in lb
    assert (
        '"PROXY_PROTOCOL" (ternary "true" "false" (.Values.proxyProtocol.enabled'
        in templates(directory)["configmap.yaml"]
    )


def test_forwarder_service_names_its_ports() -> None:
    service = templates(chart_dir("forwarder"))["service.yaml"]
    assert re.search(r"- name: grpc\n(\s+\w+: .*\n)*?\s+appProtocol: grpc\n", service)
    assert "- name: http-metrics" in service
    values = load_yaml(chart_dir("forwarder") / "values.yaml")
    assert values["service"]["type"] == "ClusterIP"
    assert values["service"]["ports"] == {"grpc": 50051, "httpMetrics": 8081}


def test_edge_dials_the_forwarder_release() -> None:
    edge = load_yaml(chart_dir("smtp-edge") / "values.yaml")
    forwarder = load_yaml(chart_dir("forwarder") / "values.yaml")
    forwarder_chart = load_yaml(chart_dir("forwarder") / "Chart.yaml")
    target = edge["config"]["FORWARDER_ADDRESS"]
    assert target.startswith("dns:///"), "a DNS target, so round_robin sees every forwarder pod"
    host, _, port = target.removeprefix("dns:///").partition(":")
    assert host.split(".")[0] == f"{forwarder_chart['name']}-headless"
    assert forwarder["service"]["headless"]["enabled"] is True
    assert int(port) == forwarder["grpc"]["port"] == forwarder["service"]["ports"]["grpc"]
    assert edge["networkPolicy"]["forwarder"]["port"] == forwarder["grpc"]["port"]


def test_forwarder_reads_redis_url_from_a_secret() -> None:
    assert check_redis_url_from_secret(chart_dir("forwarder")) == []


def dockerfile_stages(text: str) -> dict[str, str]:
    """Stage name -> its instructions (comments dropped, continuation lines joined); the unnamed last stage is
    "<final>", anything before the first FROM is "<global>"."""
    lines = re.sub(r"\\\n\s*", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    stages: dict[str, list[str]] = {"<global>": []}
    current = "<global>"
    for line in lines.splitlines():
        match = re.match(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$", line)
        if match:
            current = match.group(1) or "<final>"
            stages[current] = []
        stages[current].append(line)
    return {name: "\n".join(body) + "\n" for name, body in stages.items()}


def check_dockerfile(text: str) -> list[str]:
    """Each service has a stage that an image built with --build-arg SERVICE=<service> ends up on, running the
    service's module from its source directory as a numeric non-root user. No Docker engine needed (none in CI):
    what only a build proves (dependencies install, the image starts) is not checked here."""
    problems = []
    stages = dockerfile_stages(text)
    if not re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", stages["<global>"], re.M):
        problems.append("the base image is not the global ARG PYTHON_IMAGE=python:3.11-slim")
    if not re.search(r"^ARG SERVICE$", stages["<global>"], re.M):
        problems.append("ARG SERVICE is not declared before the first FROM (FROM cannot use it)")
    builder = stages.get("builder", "")
    if not builder.startswith("FROM ${PYTHON_IMAGE} AS builder"):
        problems.append("multi-stage: no builder stage on ${PYTHON_IMAGE}")
    if "grpc_tools.protoc -Iproto --python_out=gen --grpc_python_out=gen" not in builder:
        problems.append("the builder does not generate the gRPC stubs")
    final = stages.get("<final>", "")
    if not final.startswith("FROM service-${SERVICE}\n"):
        problems.append("the final stage is not FROM service-${SERVICE}")
    if not re.search(r"^USER 10001:10001$", final, re.M):
        problems.append("the image does not run as the numeric non-root user 10001")
    for service, (module, src) in DOCKERFILES.items():
        stage = stages.get(f"service-{service}")
        if stage is None:
            problems.append(f"no stage service-{service}")
            continue
        if not stage.startswith("FROM runtime AS "):
            problems.append(f"service-{service} does not build on the shared runtime stage")
        if f"COPY {src} /app/{src}" not in stage:
            problems.append(f"service-{service} does not copy {src}")
        pythonpath = re.search(r"PYTHONPATH=(\S+)", stage)
        # The edge and the forwarder both read messages with the shared MIME core (services/mime-core).
        shared = ["/app/services/mime-core/src"] if service in ("smtp-edge", "forwarder") else []
        if pythonpath is None or pythonpath.group(1).split(":") != [
            "/app/gen",
            f"/app/{src}",
            "/app/services/common/src",
            *shared,
        ]:
            problems.append(f"service-{service}: PYTHONPATH is not gen, {src}, common{', mime-core' if shared else ''}")
        if f'ENTRYPOINT ["python", "-m", "{module}"]' not in stage:
            problems.append(f"service-{service} does not run python -m {module}")
        if not (ROOT / src / module / "__main__.py").is_file():
            problems.append(f"{src}/{module}/__main__.py does not exist: python -m {module} would fail")
    return problems


def test_dockerfile() -> None:
    assert check_dockerfile(DOCKERFILE.read_text()) == []


def test_one_dockerfile_for_every_service() -> None:
    assert sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "services").glob("*/Dockerfile")) == []
    dockerignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in dockerignore, "the context is an allow list"
    for needed in ("requirements/runtime.lock", "requirements/codegen.lock", "proto", "services"):
        assert f"!{needed}" in dockerignore, f"{needed} is not in the build context"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("ARG SERVICE\n", "", "ARG SERVICE is not declared"),
        ("FROM service-${SERVICE}", "FROM service-smtp-edge", "the final stage is not"),
        ("USER 10001:10001", "USER gateway", "numeric non-root user"),
        (
            'ENTRYPOINT ["python", "-m", "forwarder"]',
            'ENTRYPOINT ["python", "-m", "forwarders"]',
            "python -m forwarder",
        ),
        ("AS service-cakemail-sandbox", "AS service-sandbox", "no stage service-cakemail-sandbox"),
        ("COPY services/smtp-edge/src /app/services/smtp-edge/src", "COPY services/smtp-edge /app", "does not copy"),
    ],
)
def test_the_dockerfile_check_catches(old: str, new: str, problem: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    problems = check_dockerfile(text.replace(old, new, 1))
    assert any(problem in p for p in problems), problems


def test_edge_mounts_the_access_lists_as_a_directory_that_does_not_roll_the_pods() -> None:
    directory = chart_dir("smtp-edge")
    found = templates(directory)
    deployment, configmap, lists = (
        found["deployment.yaml"],
        found["configmap.yaml"],
        found["access-lists-configmap.yaml"],
    )
    assert 'name: {{ include "smtp-edge.fullname" . }}-access-lists' in lists
    assert 'name: {{ include "smtp-edge.fullname" . }}-access-lists' in block(deployment, "volumes")
    assert "mountPath: {{ .Values.accessLists.mountPath }}" in block(deployment, "volumeMounts")
    assert '"DENY_LIST_FILE" (printf "%s/deny"' in configmap and "  deny: |" in lists
    assert '"ALLOW_LIST_FILE" (printf "%s/allow"' in configmap and "  allow: |" in lists
    assert "access-lists-configmap.yaml" not in deployment, "a list edit must not restart the pods"


def test_image_defaults_match_the_charts() -> None:
    edge_values = load_yaml(chart_dir("smtp-edge") / "values.yaml")
    forwarder_values = load_yaml(chart_dir("forwarder") / "values.yaml")
    stages = dockerfile_stages(DOCKERFILE.read_text())
    edge, forwarder = stages["service-smtp-edge"], stages["service-forwarder"]
    assert f"SMTP_STARTTLS_PORT={edge_values['smtp']['containerPorts']['submission']} " in edge
    assert f"SMTP_TLS_PORT={edge_values['smtp']['containerPorts']['submissions']} " in edge
    assert f"HTTP_PORT={edge_values['http']['port']} " in edge
    assert f"TLS_CERT_FILE={edge_values['tls']['mountPath']}/tls.crt " in edge
    assert f"GRPC_PORT={forwarder_values['grpc']['port']} " in forwarder
    assert f"HTTP_PORT={forwarder_values['http']['port']}\n" in forwarder


# ---- the checks fail on broken charts ----


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of the edge chart to break."""
    shutil.copytree(chart_dir("smtp-edge"), tmp_path / "smtp-edge")
    return tmp_path / "smtp-edge"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_checks_pass_on_the_unbroken_copy(broken: Path) -> None:
    for check in (check_values_paths, check_deployment):
        assert check(broken) == []
    assert check_env(broken, "smtp-edge") == []
    assert check_hpa(broken, "smtp-edge") == []


def test_catches_an_unknown_values_path(broken: Path) -> None:
    edit(broken / "templates/deployment.yaml", ".Values.tmpVolume.sizeLimit", ".Values.tmpVolume.size")
    line = line_of(broken / "templates/deployment.yaml", ".Values.tmpVolume.size ")
    assert check_values_paths(broken) == [f"deployment.yaml:{line}: .Values.tmpVolume.size is not in values.yaml"]


def test_catches_a_missing_or_misspelt_variable(broken: Path) -> None:
    edit(broken / "values.yaml", "  MAX_RECIPIENTS:", "  MAX_RECIPIENT:")
    assert check_env(broken, "smtp-edge") == [
        "MAX_RECIPIENTS is set neither in values config nor in configmap.yaml",
        "MAX_RECIPIENT is not a setting of config.py",
    ]


def test_catches_wrong_probes_and_a_short_grace_period(broken: Path) -> None:
    edit(broken / "templates/deployment.yaml", "path: /health/ready", "path: /health/live")
    assert check_deployment(broken) == ["readinessProbe is not an HTTP GET of /health/ready"]
    edit(broken / "values.yaml", "terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: 25")
    assert len(check_shutdown_timing(broken)) == 2


def test_catches_an_hpa_aimed_elsewhere(broken: Path) -> None:
    edit(broken / "templates/hpa.yaml", '    name: {{ include "smtp-edge.fullname" . }}', "    name: smtp-edge")
    assert len(check_hpa(broken, "smtp-edge")) == 1


def test_catches_an_insecure_container(broken: Path) -> None:
    edit(broken / "values.yaml", "  readOnlyRootFilesystem: true", "  readOnlyRootFilesystem: false")
    assert check_values_contract(broken) == ["readOnlyRootFilesystem is not true"]


def test_catches_a_redis_url_outside_a_secret(tmp_path: Path) -> None:
    directory = tmp_path / "forwarder"
    shutil.copytree(chart_dir("forwarder"), directory)
    edit(directory / "templates/deployment.yaml", "name: {{ .Values.redis.existingSecret }}", "name: redis")
    edit(
        directory / "values.yaml", '  LOG_LEVEL: "INFO"', '  LOG_LEVEL: "INFO"\n  REDIS_URL: "redis://:pw@redis:6379/0"'
    )
    edit(directory / "templates/configmap.yaml", 'hasKey .Values.config "REDIS_URL"', 'hasKey .Values.config "REDIS"')
    assert check_redis_url_from_secret(directory) == [
        "REDIS_URL is in values config, which lands in a ConfigMap",
        "REDIS_URL is not a secretKeyRef of redis.existingSecret / redis.secretKey, guarded by it",
        "configmap.yaml does not refuse config.REDIS_URL",
    ]
