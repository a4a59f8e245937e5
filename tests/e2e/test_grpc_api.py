"""The forwarder's public gRPC API, called directly as an internal service would: health, reflection, submit."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from devstack.stack import Stack
from tests.conftest import SandboxView, metric
from tests.smtp_wire import open_session

pytestmark = pytest.mark.e2e

SERVICE = "cakemail.gateway.v1.ForwarderService"
CREDENTIALS = pb.Credentials(username="demo@example.com", password="demo-password")
MIB = 1024 * 1024


@pytest.fixture
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports.forwarder_grpc}") as opened:
        yield opened


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert SERVICE in services and "grpc.health.v1.Health" in services


def _frames(blob: bytes) -> Iterator[pb.SubmitMessageRequest]:
    headers = pb.MessageHeaders(to=[pb.Address(email="bob@example.net", name="Bob")], subject="direct")
    getattr(headers, "from").CopyFrom(pb.Address(email="svc@example.com", name="Internal Service"))
    yield pb.SubmitMessageRequest(
        start=pb.MessageStart(
            credentials=CREDENTIALS,
            envelope=pb.Envelope(mail_from="svc@example.com", rcpt_tos=["bob@example.net", "audit@example.org"]),
            headers=headers,
            text_body="sent over gRPC",
            attachments=[pb.Attachment(filename="data.pdf", content_type="application/pdf", size=len(blob))],
        )
    )
    for offset in range(0, len(blob), MIB):
        yield pb.SubmitMessageRequest(
            chunk=pb.ContentChunk(target=pb.CONTENT_TARGET_ATTACHMENT, data=blob[offset : offset + MIB])
        )


def test_direct_submission_with_streamed_attachment(channel: grpc.Channel, sandbox: SandboxView) -> None:
    stub = pb_grpc.ForwarderServiceStub(channel)
    account = stub.Authenticate(pb.AuthenticateRequest(credentials=CREDENTIALS), timeout=10)
    assert account.account_id == "1001"  # the user's default account (v2: the first of the token's accounts)
    blob = bytes(range(256)) * (10 * 1024 + 7)  # 2.5 MiB: three chunks
    response = stub.SubmitMessage(_frames(blob), timeout=30, metadata=(("x-request-id", "grpc-caller-42"),))
    assert response.result == pb.SUBMIT_RESULT_ACCEPTED
    records = sandbox.emails()
    assert sorted(r["email"] for r in records) == ["audit@example.org", "bob@example.net"]  # one call per recipient
    assert sorted(r["id"] for r in records) == sorted(response.message_ids)
    assert sorted((r.recipient, r.message_id) for r in response.recipients) == sorted(
        (r["email"], r["id"]) for r in records
    )
    for record in records:
        assert record["request_id"] == "grpc-caller-42"
        payload = record["payload"]
        assert payload["sender"]["name"] == "Internal Service"
        assert base64.b64decode(payload["attachment"][0]["content"]) == blob


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (
            [pb.SubmitMessageRequest(chunk=pb.ContentChunk(target=pb.CONTENT_TARGET_TEXT_BODY, data=b"x"))],
            "INVALID_ARGUMENT",
        ),
        ([], "INVALID_ARGUMENT"),
        (
            [
                pb.SubmitMessageRequest(
                    start=pb.MessageStart(
                        credentials=pb.Credentials(username="demo@example.com", password="nope"),
                        envelope=pb.Envelope(mail_from="a@example.com", rcpt_tos=["b@example.net"]),
                        text_body="x",
                    )
                )
            ],
            "UNAUTHENTICATED",
        ),
    ],
)
def test_bad_calls_get_precise_statuses(
    channel: grpc.Channel, sandbox: SandboxView, frames: list[pb.SubmitMessageRequest], code: str
) -> None:
    stub = pb_grpc.ForwarderServiceStub(channel)
    with pytest.raises(grpc.RpcError) as failed:
        stub.SubmitMessage(iter(frames), timeout=10)
    assert failed.value.code().name == code
    assert sandbox.emails() == []


def test_one_correlation_id_from_smtp_to_the_api_and_no_secrets_in_logs(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    marker = "body-text-that-must-not-be-logged"
    with open_session(stack.ports.smtp_starttls, client_tls) as client:
        client.cmd("MAIL FROM:<ann@example.com>")
        client.cmd("RCPT TO:<bob@example.net>")
        client.cmd("DATA")
        client.send(f"Subject: trace\r\n\r\n{marker}\r\n.\r\n".encode())
        assert client.reply().code == 250
    [record] = sandbox.emails()
    correlation = record["request_id"]
    logs = {s.name: Path(s.log_path).read_text() for s in stack.services if s.log_path}
    edge_lines = [json.loads(line) for line in logs["smtp-edge"].splitlines() if line.startswith("{")]
    forwarder_lines = [json.loads(line) for line in logs["forwarder"].splitlines() if line.startswith("{")]
    assert any(line.get("session_id") == correlation and line["message"] == "message forwarded" for line in edge_lines)
    assert any(
        line.get("request_id") == correlation and line["message"] == "submission accepted" for line in forwarder_lines
    )
    everything = "\n".join(logs.values())
    assert "demo-password" not in everything and marker not in everything


def test_ops_endpoints(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls) as client:
        client.cmd("MAIL FROM:<ann@example.com>")
        client.cmd("RCPT TO:<bob@example.net>")
        client.cmd("DATA")
        client.send(b"Subject: metrics\r\n\r\nhi\r\n.\r\n")
        assert client.reply().code == 250
    for port in (stack.ports.edge_http, stack.ports.forwarder_http):
        for path in ("/health/live", "/health/ready"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                assert response.status == 200
    assert metric(stack.ports.edge_http, "smtp_messages_total", code="250") >= 1
    assert metric(stack.ports.forwarder_http, "forwarder_submissions_total", result="accepted") >= 1
    assert metric(stack.ports.forwarder_http, "forwarder_token_cache_hits_total") >= 1


def test_a_small_message_in_one_call_is_judged_as_the_same_frame_streamed(
    channel: grpc.Channel, sandbox: SandboxView
) -> None:
    stub = pb_grpc.ForwarderServiceStub(channel)
    [first, *_] = list(_frames(b"x" * 10))
    start = pb.MessageStart()
    start.CopyFrom(first.start)
    # Attachment content never travels in the one frame: a declared attachment is refused as the stream refuses it.
    answers = []
    for call in (
        lambda: stub.SubmitSmallMessage(pb.SubmitSmallMessageRequest(start=start), timeout=10),
        lambda: stub.SubmitMessage(iter([pb.SubmitMessageRequest(start=start)]), timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        answers.append((refused.value.code(), refused.value.details()))
    assert answers[0] == answers[1] and answers[0][0] == grpc.StatusCode.INVALID_ARGUMENT
    del start.attachments[:]
    response = stub.SubmitSmallMessage(
        pb.SubmitSmallMessageRequest(start=start), timeout=30, metadata=(("x-request-id", "small-call-7"),)
    )
    assert response.result == pb.SUBMIT_RESULT_ACCEPTED
    records = sandbox.emails()
    assert sorted(r["email"] for r in records) == ["audit@example.org", "bob@example.net"]
    assert sorted(r["id"] for r in records) == sorted(response.message_ids)
    assert {r["request_id"] for r in records} == {"small-call-7"}
    assert {r["payload"]["content"]["text"] for r in records} == {"sent over gRPC"}
