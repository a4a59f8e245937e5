"""The typed client package (clients/python) and its CLI against the running stack: sync and asyncio sends, raw
submissions, every rich error as a typed exception with its details, retries driven by RetryInfo."""

from __future__ import annotations

import json
import subprocess
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from cakemail_gateway import (
    AsyncGatewayClient,
    GatewayClient,
    InvalidCredentials,
    InvalidRequest,
    MessageRefused,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    SenderNotConfirmed,
    TemporaryError,
)
from cakemail_gateway.cli import EXIT_AUTH, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from devstack.stack import Stack
from tests.conftest import SandboxView

pytestmark = pytest.mark.e2e

USER = {"username": "demo@example.com", "password": "demo-password"}
CLI = [str(Path(sys.executable).with_name("cakemail-gateway")), "send"]


def _target(stack: Stack) -> str:
    return f"127.0.0.1:{stack.ports.forwarder_grpc}"


def _message(subject: str, sender: str = "svc@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Internal Service <{sender}>"
    message["To"] = "Bob <bob@example.net>"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="client.example")
    message.set_content("text part\n")
    message.add_alternative("<p>html part</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4 tiny", maintype="application", subtype="pdf", filename="r.pdf")
    return message


def test_reflection_lists_submit_raw_message(stack: Stack) -> None:
    with grpc.insecure_channel(_target(stack)) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        service = database.FindFileContainingSymbol("cakemail.gateway.v1.ForwarderService").service[0]
    assert "SubmitRawMessage" in [method.name for method in service.method]


def test_sync_send_of_an_email_message(stack: Stack, sandbox: SandboxView) -> None:
    with GatewayClient(_target(stack), **USER) as client:
        assert client.authenticate().account_id == "1001"
        result = client.send(
            _message("sync send"), sender="svc@example.com", recipients=["bob@example.net", "audit@example.org"]
        )
    records = sandbox.emails()
    assert sorted(r["email"] for r in records) == ["audit@example.org", "bob@example.net"]
    assert sorted(result.message_ids) == sorted(r["id"] for r in records)
    assert {r.recipient: r.result for r in result.recipients} == {
        "bob@example.net": "ACCEPTED",
        "audit@example.org": "ACCEPTED",
    }
    payload = records[0]["payload"]
    assert payload["content"]["subject"] == "sync send" if "content" in payload else payload["subject"] == "sync send"
    assert result.attempts == 1


async def test_async_send_raw(stack: Stack, sandbox: SandboxView) -> None:
    raw = _message("async raw").as_bytes()
    async with AsyncGatewayClient(_target(stack), **USER) as client:
        result = await client.send_raw(raw, sender="svc@example.com", recipients=["carol@example.net"])
    records = sandbox.emails()
    assert [r["email"] for r in records] == ["carol@example.net"]
    assert list(result.message_ids) == [records[0]["id"]]


def test_a_resend_of_the_same_bytes_is_delivered_once(stack: Stack, sandbox: SandboxView) -> None:
    raw = b"From: svc@example.com\r\nTo: dan@example.net\r\nSubject: no message-id\r\n\r\nsame bytes " + (
        make_msgid().encode()
    )
    with GatewayClient(_target(stack), **USER) as client:
        first = client.send_raw(raw, sender="svc@example.com", recipients=["dan@example.net"])
        second = client.send_raw(raw, sender="svc@example.com", recipients=["dan@example.net"])
    assert first.message_ids == second.message_ids
    assert len(sandbox.emails()) == 1


def test_invalid_credentials_are_typed_with_error_info(stack: Stack) -> None:
    client = GatewayClient(_target(stack), username="demo@example.com", password="wrong")
    with client, pytest.raises(InvalidCredentials) as caught:
        client.send(_message("bad password"), sender="svc@example.com", recipients=["bob@example.net"])
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert (caught.value.reason, caught.value.details.domain) == ("INVALID_CREDENTIALS", "gateway.cakemail.com")
    assert not caught.value.retryable


def test_mfa_user_gets_a_precondition_failure(stack: Stack) -> None:
    client = GatewayClient(_target(stack), username="mfa@example.com", password="mfa-password")
    with client, pytest.raises(PermissionDenied) as caught:
        client.authenticate()
    assert caught.value.reason == "MFA_REQUIRED"
    assert [v.type for v in caught.value.details.preconditions] == ["MFA_FREE_LOGIN"]


def test_invalid_input_gets_field_violations(stack: Stack) -> None:
    with GatewayClient(_target(stack), **USER) as client, pytest.raises(InvalidRequest) as caught:
        client.send(_message("nobody"), sender="svc@example.com", recipients=[])
    assert caught.value.reason == "MALFORMED_REQUEST"
    assert [v.field for v in caught.value.details.field_violations] == ["start.envelope.rcpt_tos"]


def test_an_unconfirmed_sender_is_a_precondition_failure(stack: Stack, sandbox: SandboxView) -> None:
    with GatewayClient(_target(stack), **USER) as client, pytest.raises(SenderNotConfirmed) as caught:
        client.send(
            _message("unconfirmed", sender="unconfirmed@example.com"),
            sender="unconfirmed@example.com",
            recipients=["bob@example.net"],
        )
    assert caught.value.result == "REJECTED_FORBIDDEN"
    (violation,) = caught.value.details.preconditions
    assert violation.type == "SENDER_CONFIRMATION" and "unconfirmed@example.com" in violation.subject
    assert sandbox.emails() == []


def test_a_message_the_mime_core_refuses_is_refused_for_good(stack: Stack) -> None:
    big = _message("too big attachment")
    big.add_attachment(b"x" * (11 * 1024 * 1024), maintype="application", subtype="pdf", filename="big.pdf")
    with GatewayClient(_target(stack), **USER) as client, pytest.raises(MessageRefused) as caught:
        client.send(big, sender="svc@example.com", recipients=["bob@example.net"])
    assert (caught.value.result, caught.value.reason) == ("REJECTED_TOO_LARGE", "MESSAGE_TOO_LARGE")


def test_rate_limit_is_retried_after_retry_info(stack: Stack, sandbox: SandboxView) -> None:
    # Three 429s use up the forwarder's own attempts; the client then waits the RetryInfo delay and sends again.
    sandbox.faults({"emails": {"error_status": 429, "retry_after": 1, "count": 3}})
    try:
        with GatewayClient(_target(stack), **USER, retry=RetryPolicy(max_attempts=3)) as client:
            result = client.send(_message("rate limited"), sender="svc@example.com", recipients=["eve@example.net"])
    finally:
        sandbox.faults({})
    assert result.attempts == 2
    assert [r["email"] for r in sandbox.emails()] == ["eve@example.net"]


def test_rate_limit_beyond_the_timeout_is_typed_with_the_api_retry_after(stack: Stack, sandbox: SandboxView) -> None:
    sandbox.faults({"emails": {"error_status": 429, "retry_after": 30}})
    try:
        with GatewayClient(_target(stack), **USER, timeout=10) as client, pytest.raises(RateLimited) as caught:
            client.send(_message("rate limited long"), sender="svc@example.com", recipients=["ivy@example.net"])
    finally:
        sandbox.faults({})
    assert caught.value.result == "RATE_LIMITED" and caught.value.retry_after == 30.0
    assert sandbox.emails() == []


def test_api_outage_is_a_temporary_error_with_retry_info(stack: Stack, sandbox: SandboxView) -> None:
    sandbox.faults({"emails": {"error_status": 503, "count": 3}})
    try:
        client = GatewayClient(_target(stack), **USER, retry=RetryPolicy(max_attempts=1))
        with client, pytest.raises(TemporaryError) as caught:
            client.send(_message("outage"), sender="svc@example.com", recipients=["fay@example.net"])
    finally:
        sandbox.faults({})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.reason == "API_UNAVAILABLE" and caught.value.retry_after == 1.0


def _cli(stack: Stack, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {"CAKEMAIL_GATEWAY_USERNAME": "demo@example.com", "CAKEMAIL_GATEWAY_PASSWORD": "demo-password"}
    return subprocess.run(
        [*CLI, "--server", _target(stack), *args], input=stdin, capture_output=True, env=env, timeout=60, check=False
    )


def test_cli_sends_from_flags_with_an_attachment(stack: Stack, sandbox: SandboxView, tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<h1>hello from the CLI</h1>")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 cli")
    done = _cli(
        stack,
        *("--from", "svc@example.com", "--to", "gus@example.net", "--subject", "from the CLI"),
        *("--text", "plain", "--html-file", str(tmp_path / "page.html"), "--attach", str(tmp_path / "report.pdf")),
        "--json",
    )
    assert done.returncode == EXIT_OK, done.stderr
    outcome = json.loads(done.stdout)
    (record,) = sandbox.emails()
    assert outcome["ok"] and outcome["message_ids"] == [record["id"]]
    assert "hello from the CLI" in json.dumps(record["payload"])


def test_cli_reads_an_eml_on_stdin(stack: Stack, sandbox: SandboxView) -> None:
    eml = b"From: svc@example.com\nTo: hal@example.net\nSubject: stdin\nMessage-ID: " + make_msgid().encode()
    done = _cli(stack, "--from", "svc@example.com", "--to", "hal@example.net", stdin=eml + b"\n\nbody\n")
    assert done.returncode == EXIT_OK, done.stderr
    assert [r["email"] for r in sandbox.emails()] == ["hal@example.net"]


def test_cli_exit_codes(stack: Stack) -> None:
    refused = _cli(stack, "--from", "unconfirmed@example.com", "--to", "bob@example.net", "--subject", "x", "--json")
    assert refused.returncode == EXIT_REFUSED
    assert json.loads(refused.stdout)["reason"] == "SENDER_NOT_CONFIRMED"
    no_recipient = _cli(stack, "--from", "svc@example.com", "--subject", "x")
    assert no_recipient.returncode == EXIT_USAGE
    bad_login = subprocess.run(
        [
            *(*CLI, "--server", _target(stack), "--username", "demo@example.com", "--password", "nope"),
            *("--from", "svc@example.com", "--to", "bob@example.net", "--subject", "x"),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad_login.returncode == EXIT_AUTH
    assert b"INVALID_CREDENTIALS" in bad_login.stderr
