"""Shared fixtures: the real stack (sandbox + forwarder + edge as processes on loopback) and SMTP helpers."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.certs import DevCertificate, ensure_dev_certificate
from devstack.stack import Stack, StackPorts, free_port
from smtp_edge.config import EdgeSettings
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def dev_certificate(tmp_path_factory: pytest.TempPathFactory) -> DevCertificate:
    return ensure_dev_certificate(tmp_path_factory.mktemp("certs"))


def in_process_edge_settings(dev_certificate: DevCertificate, forwarder_address: str, **overrides: Any) -> EdgeSettings:
    """EdgeSettings for an edge run inside the test (smtp_edge.app.EdgeApp): free loopback ports, the dev
    certificate, the given forwarder."""
    values: dict[str, Any] = {
        "smtp_starttls_port": free_port(),
        "smtp_tls_port": free_port(),
        "http_port": free_port(),
        "smtp_hostname": "localhost",
        "forwarder_address": forwarder_address,
        "tls_cert_file": str(dev_certificate.cert_file),
        "tls_key_file": str(dev_certificate.key_file),
    }
    return EdgeSettings(**{**values, **overrides})


@pytest.fixture(scope="session")
def client_tls(dev_certificate: DevCertificate) -> ssl.SSLContext:
    """A client context that verifies the edge's certificate against the dev CA (real verification)."""
    context = ssl.create_default_context(cafile=str(dev_certificate.ca_file))
    return context


class SandboxView:
    """What the Cakemail API sandbox recorded, read over its real HTTP API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    @classmethod
    def cleared(cls, base_url: str) -> SandboxView:
        """A view of a sandbox with nothing recorded yet: what every test's sandbox fixture starts from."""
        view = cls(base_url)
        view.clear()
        return view

    def revoke_tokens(self) -> None:
        """Every access token and refresh token the sandbox issued stops working (as a revocation would)."""
        self._request("POST", "/sandbox/tokens/revoke")

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def faults(self, table: dict[str, Any]) -> None:
        """Fault injection per route (docs/cakemail-api.md); {} clears every fault."""
        self._request("PUT", "/sandbox/faults", table)

    def reset(self) -> None:
        """Emails, counters, faults, tokens and idempotency memory: all forgotten."""
        self._request("POST", "/sandbox/reset")

    def emails(self, content: bool = True) -> list[dict[str, Any]]:
        data = self._request("GET", "/sandbox/emails" + ("" if content else "?content=0"))
        return list(data["emails"])

    def clear(self) -> None:
        self._request("DELETE", "/sandbox/emails")

    def stats(self) -> dict[str, int]:
        return dict(self._request("GET", "/sandbox/stats"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the whole session (tests/redis_server.py). Share it: keep
    your keys apart (a prefix of your own) rather than flushing what other tests wrote."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("stack-logs")
    running = Stack(StackPorts.ephemeral(), dev_certificate, log_dir=logs)
    running.start()
    yield running
    codes = running.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exit {codes}; logs in {logs}"


@pytest.fixture
def sandbox(stack: Stack) -> SandboxView:
    return SandboxView.cleared(stack.sandbox_url)


def log_text(stack: Stack) -> str:
    return "\n".join(Path(s.log_path).read_text() for s in stack.services if s.log_path)


def metric(port: int, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples matching the labels, scraped from a service's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
