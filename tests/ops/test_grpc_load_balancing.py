"""One edge spreads its gRPC calls over every forwarder its target resolves to (FORWARDER_LB_POLICY=round_robin).

In a cluster the target is dns:///forwarder-headless:50051, which resolves to one address per forwarder pod; here an
ipv4: list of two real forwarder processes stands in for it. With pick_first, the policy a ClusterIP Service amounts
to, every call lands on one forwarder: the same test then fails its spread check, which is what makes it a test.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.certs import DevCertificate
from devstack.stack import ServiceProcess, Stack, StackPorts, free_port
from tests.conftest import metric

pytestmark = pytest.mark.e2e

MESSAGES = 12
MESSAGE = b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: spread %d\r\n\r\nbody\r\n"


class TwoForwarders:
    def __init__(self, stack: Stack, second: ServiceProcess, second_http_port: int) -> None:
        self.stack = stack
        self.http_ports = (stack.ports.forwarder_http, second_http_port)
        self.second = second

    def submissions(self) -> tuple[float, float]:
        """SubmitMessage calls each forwarder answered, from its own /metrics."""
        first, second = (metric(port, "forwarder_submissions_total") for port in self.http_ports)
        return first, second


def _start(policy: str, certificate: DevCertificate, logs: Path) -> Iterator[TwoForwarders]:
    ports = StackPorts.ephemeral()
    second_grpc, second_http = free_port(), free_port()
    target = f"ipv4:127.0.0.1:{ports.forwarder_grpc},127.0.0.1:{second_grpc}"
    stack = Stack(
        ports,
        certificate,
        log_dir=logs,
        extra_env={"edge": {"FORWARDER_ADDRESS": target, "FORWARDER_LB_POLICY": policy}},
    )
    # The second forwarder: the first one's environment (the same sandbox), its own ports.
    second = ServiceProcess(
        "forwarder-2",
        "forwarder",
        {**stack.forwarder.env, "GRPC_PORT": str(second_grpc), "HTTP_PORT": str(second_http)},
        f"http://127.0.0.1:{second_http}/health/live",
        logs / "forwarder-2.log",
    )
    with stack:
        second.start()
        try:
            second.wait_ready(deadline=time.monotonic() + 30)
            yield TwoForwarders(stack, second, second_http)
        finally:
            code = second.stop()
    assert code == 0, f"forwarder-2 exited with {code}; logs in {logs}"


@pytest.fixture
def round_robin(dev_certificate: DevCertificate, tmp_path: Path) -> Iterator[TwoForwarders]:
    yield from _start("round_robin", dev_certificate, tmp_path)


@pytest.fixture
def pick_first(dev_certificate: DevCertificate, tmp_path: Path) -> Iterator[TwoForwarders]:
    yield from _start("pick_first", dev_certificate, tmp_path)


def _send(forwarders: TwoForwarders, tls: ssl.SSLContext) -> None:
    client = smtplib.SMTP("127.0.0.1", forwarders.stack.ports.smtp_starttls, timeout=30)
    try:
        client.starttls(context=tls)
        client.login("demo@example.com", "demo-password")
        for number in range(MESSAGES):
            assert client.sendmail("ann@example.com", ["bob@example.net"], MESSAGE % number) == {}
    finally:
        client.quit()


def test_round_robin_spreads_one_edges_calls_over_both_forwarders(
    round_robin: TwoForwarders, client_tls: ssl.SSLContext
) -> None:
    _send(round_robin, client_tls)
    first, second = round_robin.submissions()
    assert first + second == MESSAGES
    # round_robin takes turns over the ready subchannels: neither forwarder is left idle.
    assert first >= MESSAGES // 4 and second >= MESSAGES // 4, (first, second)


def test_pick_first_pins_the_edge_to_one_forwarder(pick_first: TwoForwarders, client_tls: ssl.SSLContext) -> None:
    """What a ClusterIP Service does to one long-lived HTTP/2 connection, and what round_robin is there to avoid."""
    _send(pick_first, client_tls)
    assert sorted(pick_first.submissions()) == [0, MESSAGES]
