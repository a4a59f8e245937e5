"""When the API or the forwarder is down, the client hears a 4xx and still owns its message."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Iterator

import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView
from tests.e2e.v2 import text_of

pytestmark = pytest.mark.e2e

MESSAGE = b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: outage\r\n\r\nkeep me\r\n"


@pytest.fixture
def own_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: these tests stop and restart its services."""
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("outage-logs"),
        extra_env={"edge": {"FORWARDER_TIMEOUT_SECONDS": "10", "AUTH_TIMEOUT_SECONDS": "5"}},
    )
    with running:
        yield running


def _login(stack: Stack, tls: ssl.SSLContext) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, timeout=30)
    client.starttls(context=tls)
    client.login("demo@example.com", "demo-password")
    return client


def test_stopped_sandbox_gets_451_and_the_resend_is_delivered_once(
    own_stack: Stack, client_tls: ssl.SSLContext
) -> None:
    client = _login(own_stack, client_tls)
    own_stack.sandbox.stop()
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("ann@example.com", ["bob@example.net"], MESSAGE)
    assert refused.value.smtp_code == 451
    assert refused.value.smtp_error.startswith(b"4.3.0")
    assert time.monotonic() - started < 10, "the edge must answer within its forwarder deadline"

    # The API comes back (with no memory of tokens): the client's retry goes through, exactly once.
    own_stack.sandbox.start()
    own_stack.sandbox.wait_ready(time.monotonic() + 30)
    sandbox = SandboxView(own_stack.sandbox_url)
    assert sandbox.emails() == []
    client.sendmail("ann@example.com", ["bob@example.net"], MESSAGE)
    client.quit()
    [record] = sandbox.emails()
    assert text_of(record) == "keep me\n"


def test_stopped_forwarder_gets_454_at_auth_and_451_at_data(own_stack: Stack, client_tls: ssl.SSLContext) -> None:
    client = _login(own_stack, client_tls)
    own_stack.forwarder.stop()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("ann@example.com", ["bob@example.net"], MESSAGE)
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (451, b"4.3.0")
    client.quit()

    fresh = smtplib.SMTP("127.0.0.1", own_stack.ports.smtp_starttls, timeout=30)
    try:
        fresh.starttls(context=client_tls)
        with pytest.raises(smtplib.SMTPAuthenticationError) as auth_refused:
            fresh.login("demo@example.com", "demo-password")
        assert (auth_refused.value.smtp_code, auth_refused.value.smtp_error[:5]) == (454, b"4.7.0")
    finally:
        fresh.close()
