"""The delivery record in a real redis-server, shared by two forwarder processes: a client's resend that lands on
the other forwarder still sends nobody twice. And with Redis unreachable the forwarder fails closed (451)."""

from __future__ import annotations

import dataclasses
import smtplib
import ssl
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from devstack.certs import DevCertificate
from devstack.stack import ServiceProcess, Stack, StackPorts, free_port
from tests.conftest import SandboxView

pytestmark = pytest.mark.e2e

RECIPIENTS = ["bob@example.net", "carol@example.org", "dave@example.com"]


@dataclasses.dataclass
class TwoGateways:
    """Stack A (sandbox, forwarder A, edge A) plus forwarder B and edge B in front of the same sandbox."""

    stack: Stack
    edge_b_port: int


@pytest.fixture(scope="module")
def two_gateways(
    dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[TwoGateways]:
    logs = tmp_path_factory.mktemp("shared-record-logs")
    record_url = redis_url.rsplit("/", 1)[0] + "/3"  # a database of this module's own on the shared server
    stack = Stack(
        StackPorts.ephemeral(), dev_certificate, log_dir=logs, extra_env={"forwarder": {"REDIS_URL": record_url}}
    )
    grpc_b, http_b, smtp_b, tls_b, edge_http_b = (free_port() for _ in range(5))
    forwarder_b = dataclasses.replace(
        stack.forwarder,
        name="forwarder-b",
        env={**stack.forwarder.env, "GRPC_PORT": str(grpc_b), "HTTP_PORT": str(http_b)},
        ready_url=f"http://127.0.0.1:{http_b}/health/live",
        log_path=logs / "forwarder-b.log",
    )
    edge_b = dataclasses.replace(
        stack.edge,
        name="smtp-edge-b",
        env={
            **stack.edge.env,
            "SMTP_STARTTLS_PORT": str(smtp_b),
            "SMTP_TLS_PORT": str(tls_b),
            "HTTP_PORT": str(edge_http_b),
            "FORWARDER_ADDRESS": f"127.0.0.1:{grpc_b}",
        },
        ready_url=f"http://127.0.0.1:{edge_http_b}/health/ready",
        log_path=logs / "smtp-edge-b.log",
    )
    extra: list[ServiceProcess] = [forwarder_b, edge_b]
    stack.start()
    try:
        deadline = time.monotonic() + 60
        for service in extra:
            service.start()
        for service in extra:
            service.wait_ready(deadline)
        yield TwoGateways(stack, smtp_b)
    finally:
        codes = [service.stop() for service in reversed(extra)]
        codes += list(stack.stop().values())
    assert all(code == 0 for code in codes), f"unclean exit {codes}; logs in {logs}"


def _send(port: int, tls: ssl.SSLContext, message: EmailMessage) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=tls)
        client.login("demo@example.com", "demo-password")
        try:
            client.send_message(message, from_addr="bounce@example.com", to_addrs=RECIPIENTS)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code
        return 250


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ann@example.com"
    message["Subject"] = f"shared {uuid.uuid4().hex}"
    message.set_content("once each")  # no Message-ID: the identity is a digest of the bytes, the same on resend
    return message


def test_a_resend_through_the_other_forwarder_sends_nobody_twice(
    two_gateways: TwoGateways, client_tls: ssl.SSLContext
) -> None:
    sandbox = SandboxView(two_gateways.stack.sandbox_url)
    sandbox.clear()
    message = _message()
    sandbox.faults({"emails": {"error_status": 500, "count": 1}})
    try:
        assert _send(two_gateways.stack.ports.smtp_starttls, client_tls, message) == 451
    finally:
        sandbox.faults({})
    assert len(sandbox.emails()) == 2
    assert _send(two_gateways.edge_b_port, client_tls, message) == 250  # the resend lands on forwarder B
    assert sorted(r["email"] for r in sandbox.emails()) == sorted(RECIPIENTS)
    assert _send(two_gateways.stack.ports.smtp_starttls, client_tls, message) == 250  # and back on A
    assert len(sandbox.emails()) == 3


def test_an_unreachable_redis_fails_closed_with_451(
    dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory, client_tls: ssl.SSLContext
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    logs = tmp_path_factory.mktemp("dead-redis-logs")
    with Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=logs,
        extra_env={"forwarder": {"REDIS_URL": dead, "REDIS_TIMEOUT_SECONDS": "0.5"}},
    ) as stack:
        sandbox = SandboxView(stack.sandbox_url)
        with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30) as client:
            client.starttls(context=client_tls)
            client.login("demo@example.com", "demo-password")
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.send_message(_message(), from_addr="bounce@example.com", to_addrs=RECIPIENTS)
        assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (451, b"4.3.0")
        assert sandbox.emails() == []  # nothing sent without a record of it
