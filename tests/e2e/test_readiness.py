"""Readiness means "this process can take work", never "my dependencies are up" (docs/deployment.md, section 7):
during an API or forwarder outage both services stay in their Services and clients hear a 4xx they retry on."""

from __future__ import annotations

import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("readiness-logs"),
        extra_env={"edge": {"AUTH_TIMEOUT_SECONDS": "5"}},
    )
    with running:
        yield running


def _ready_status(base_url: str) -> int:
    try:
        with urllib.request.urlopen(f"{base_url}/health/ready", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_readiness_does_not_follow_dependencies(own_stack: Stack, client_tls: ssl.SSLContext) -> None:
    own_stack.sandbox.stop()  # the Cakemail API is down
    assert _ready_status(own_stack.forwarder_http_url) == 200
    assert _ready_status(own_stack.edge_http_url) == 200

    own_stack.forwarder.stop()  # and now the forwarder too
    assert _ready_status(own_stack.edge_http_url) == 200
    client = smtplib.SMTP("127.0.0.1", own_stack.ports.smtp_starttls, timeout=30)
    try:
        client.starttls(context=client_tls)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("demo@example.com", "demo-password")
        assert refused.value.smtp_code == 454  # temporary: the client keeps its message and retries
    finally:
        client.close()
