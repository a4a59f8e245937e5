"""A service whose port is taken says which port and exits with status 1, rather than uvicorn's bare exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.certs import DevCertificate

pytestmark = pytest.mark.e2e


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield int(holder.getsockname()[1])
    holder.close()


def _run(module: str, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, "PYTHONUNBUFFERED": "1", **settings},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _assert_names_the_port(result: subprocess.CompletedProcess[str], what: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert what in output, output
    assert "Traceback" not in output and "Pipe to stdout was broken" not in output, output


def test_edge_with_its_http_port_taken(busy_port: int, dev_certificate: DevCertificate) -> None:
    result = _run(
        "smtp_edge",
        {
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(busy_port),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_STARTTLS_PORT": "0",
            "SMTP_TLS_PORT": "0",
            "TLS_CERT_FILE": str(dev_certificate.cert_file),
            "TLS_KEY_FILE": str(dev_certificate.key_file),
        },
    )
    _assert_names_the_port(
        result, f"smtp-edge HTTP (health, metrics) cannot listen on 127.0.0.1:{busy_port}: address already in use"
    )


def test_forwarder_with_its_http_port_taken(busy_port: int) -> None:
    result = _run(
        "forwarder", {"HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(busy_port), "GRPC_HOST": "127.0.0.1", "GRPC_PORT": "0"}
    )
    _assert_names_the_port(
        result, f"forwarder HTTP (health, metrics) cannot listen on 127.0.0.1:{busy_port}: address already in use"
    )


def test_edge_with_its_smtp_port_taken(busy_port: int, dev_certificate: DevCertificate) -> None:
    result = _run(
        "smtp_edge",
        {
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_STARTTLS_PORT": str(busy_port),
            "SMTP_TLS_PORT": "0",
            "TLS_CERT_FILE": str(dev_certificate.cert_file),
            "TLS_KEY_FILE": str(dev_certificate.key_file),
        },
    )
    _assert_names_the_port(result, f"('127.0.0.1', {busy_port}): address already in use")
