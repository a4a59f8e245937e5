"""Property: random messages built by the stdlib, sent through the real gateway, reach the API unaltered."""

from __future__ import annotations

import base64
import smtplib
import ssl
import uuid

import pytest
from hypothesis import HealthCheck, given, settings

from devstack.stack import Stack
from tests.conftest import SandboxView
from tests.strategies import Spec, specs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def stack(v1_stack: Stack) -> Stack:
    """This module checks the v1 payload shape (to/cc/bcc, any attachment type): it runs on the v1 flavor."""
    return v1_stack


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=specs)
def test_random_messages_arrive_intact(stack: Stack, client_tls: ssl.SSLContext, spec: Spec) -> None:
    sandbox = SandboxView(stack.sandbox_url)
    tag = uuid.uuid4().hex
    message = spec.message()
    message["X-Tag"] = tag
    with smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30) as client:
        client.starttls(context=client_tls)
        client.login("demo@example.com", "demo-password")
        client.send_message(message, from_addr="bounce@example.com", to_addrs=["bob@example.net"])
    [record] = [e for e in sandbox.emails() if e["payload"]["headers"].get("X-Tag") == tag]
    payload = record["payload"]
    spec.check(payload, [base64.b64decode(a["content"]) for a in payload["attachments"]])
