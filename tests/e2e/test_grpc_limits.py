"""Per-RPC deadlines and message size limits on the gRPC API, through the running stack.

- A deadline too short for the API: the caller gets DEADLINE_EXCEEDED; resending the same bytes later delivers the
  message once (the abandoned call is settled by the delivery record, not sent blindly again).
- Size: SubmitRawMessage takes exactly what the SMTP edge takes (MESSAGE_SIZE_LIMIT, counted the same way: the
  message's bytes with their CRLF line ends). A message at the limit goes through both doors; one byte more is
  refused by both, over gRPC with SUBMIT_RESULT_REJECTED_TOO_LARGE, reason MESSAGE_TOO_LARGE and the limit.
- A single gRPC message over the server's 4 MiB ceiling is RESOURCE_EXHAUSTED; a chunk over 1 MiB is named.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Iterator
from email.utils import make_msgid

import grpc
import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from cakemail_gateway import DeadlineExceeded, GatewayClient, MessageTooLarge, RetryPolicy
from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView, metric

pytestmark = pytest.mark.e2e

USER = {"username": "demo@example.com", "password": "demo-password"}
SIZE_LIMIT = 64 * 1024


def _target(stack: Stack) -> str:
    return f"127.0.0.1:{stack.ports.forwarder_grpc}"


def _raw(subject: str, size: int | None = None) -> bytes:
    """An RFC 5322 message with CRLF line ends; padded with body lines to exactly `size` bytes when given."""
    head = (
        f"From: svc@example.com\r\nTo: bob@example.net\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='limits.example')}\r\n\r\n"
    ).encode()
    body = b"hello\r\n"
    if size is not None:
        room = size - len(head)
        line = b"x" * 76 + b"\r\n"
        body = line * ((room - 100) // len(line))
        body += b"y" * (room - len(body) - 2) + b"\r\n"  # the last line takes up the rest (under 200 bytes)
    message = head + body
    assert size is None or len(message) == size
    return message


def test_a_deadline_too_short_is_deadline_exceeded_and_a_resend_is_delivered_once(
    stack: Stack, sandbox: SandboxView
) -> None:
    raw = _raw("deadline")
    not_found_before = metric(
        stack.ports.forwarder_http, "forwarder_ambiguous_submissions_total", resolution="not_found"
    )
    sandbox.faults({"emails": {"hang": True, "count": 1}})  # the API takes the call and never answers
    try:
        with GatewayClient(_target(stack), **USER, retry=RetryPolicy(max_attempts=1)) as client:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded) as caught:
                client.send_raw(raw, sender="svc@example.com", recipients=["bob@example.net"], timeout=1.5)
            waited = time.monotonic() - started
    finally:
        sandbox.faults({})
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert waited < 10, "the call must end at its deadline, not at the API's timeout"
    assert sandbox.emails() == []
    with GatewayClient(_target(stack), **USER) as client:
        first = client.send_raw(raw, sender="svc@example.com", recipients=["bob@example.net"], timeout=30)
        again = client.send_raw(raw, sender="svc@example.com", recipients=["bob@example.net"], timeout=30)
    records = sandbox.emails()
    assert [r["email"] for r in records] == ["bob@example.net"]
    assert list(first.message_ids) == list(again.message_ids) == [records[0]["id"]]
    # The abandoned call was on the wire: the resend looked it up in the activity logs before sending.
    not_found_after = metric(
        stack.ports.forwarder_http, "forwarder_ambiguous_submissions_total", resolution="not_found"
    )
    assert not_found_after == not_found_before + 1


@pytest.fixture(scope="module")
def small_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Both services with a 64 KiB MESSAGE_SIZE_LIMIT (one setting, read by the edge and the forwarder)."""
    limit = {"MESSAGE_SIZE_LIMIT": str(SIZE_LIMIT)}
    logs = tmp_path_factory.mktemp("grpc-limits-logs")
    with Stack(
        StackPorts.ephemeral(), dev_certificate, log_dir=logs, extra_env={"edge": limit, "forwarder": limit}
    ) as running:
        yield running


def _smtp_reply(stack: Stack, client_tls: ssl.SSLContext, raw: bytes) -> int:
    smtp = smtplib.SMTP("127.0.0.1", stack.ports.smtp_starttls, local_hostname="client.test", timeout=30)
    try:
        smtp.starttls(context=client_tls)
        smtp.login(USER["username"], USER["password"])
        # No SIZE= on MAIL FROM: the edge must count the DATA itself (the declared SIZE is refused earlier, at MAIL).
        assert smtp.mail("svc@example.com")[0] == 250
        assert smtp.rcpt("bob@example.net")[0] == 250
        return smtp.data(raw)[0]
    finally:
        smtp.quit()


def test_the_size_limit_is_the_smtp_limit(small_stack: Stack, client_tls: ssl.SSLContext) -> None:
    sandbox = SandboxView(small_stack.sandbox_url)
    sandbox.clear()
    at_limit, over = _raw("at the limit", SIZE_LIMIT), _raw("one byte over", SIZE_LIMIT + 1)
    assert _smtp_reply(small_stack, client_tls, at_limit) == 250
    assert _smtp_reply(small_stack, client_tls, over) == 552
    with GatewayClient(_target(small_stack), **USER) as client:
        assert client.send_raw(_raw("at the limit", SIZE_LIMIT), sender="svc@example.com", recipients=["b@x.test"])
        with pytest.raises(MessageTooLarge) as caught:
            client.send_raw(over, sender="svc@example.com", recipients=["b@x.test"])
    assert caught.value.result == "REJECTED_TOO_LARGE"
    assert caught.value.reason == "MESSAGE_TOO_LARGE"
    assert caught.value.details.metadata == {"limit_bytes": str(SIZE_LIMIT)}
    assert caught.value.retry_after is None
    assert sorted(r["email"] for r in sandbox.emails()) == ["b@x.test", "bob@example.net"]


def test_a_stream_far_over_the_limit_is_answered_without_reading_it_all(small_stack: Stack) -> None:
    sent: list[int] = []

    def frames() -> Iterator[pb.SubmitRawMessageRequest]:
        start = pb.RawMessageStart(
            credentials=pb.Credentials(**USER),
            envelope=pb.Envelope(mail_from="svc@example.com", rcpt_tos=["bob@example.net"]),
            data=_raw("huge"),
        )
        yield pb.SubmitRawMessageRequest(start=start)
        for _ in range(200):  # 200 MiB if it were all read
            sent.append(1)
            yield pb.SubmitRawMessageRequest(chunk=pb.RawMessageChunk(data=b"x" * (1024 * 1024)))

    with grpc.insecure_channel(_target(small_stack)) as channel:
        answer = pb_grpc.ForwarderServiceStub(channel).SubmitRawMessage(frames(), timeout=30)
    assert answer.result == pb.SUBMIT_RESULT_REJECTED_TOO_LARGE
    assert len(sent) < 200


def test_a_grpc_message_over_4_mib_is_resource_exhausted(stack: Stack, sandbox: SandboxView) -> None:
    start = pb.RawMessageStart(
        credentials=pb.Credentials(**USER),
        envelope=pb.Envelope(mail_from="svc@example.com", rcpt_tos=["bob@example.net"]),
        data=_raw("one big frame") + b"x" * (5 * 1024 * 1024),
    )
    with grpc.insecure_channel(_target(stack)) as channel:
        stub = pb_grpc.ForwarderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SubmitRawMessage(iter([pb.SubmitRawMessageRequest(start=start)]), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert sandbox.emails() == []


def test_a_chunk_over_1_mib_is_named(stack: Stack, sandbox: SandboxView) -> None:
    start = pb.RawMessageStart(
        credentials=pb.Credentials(**USER),
        envelope=pb.Envelope(mail_from="svc@example.com", rcpt_tos=["bob@example.net"]),
        data=_raw("big chunk"),
    )
    chunk = pb.RawMessageChunk(data=b"x" * (1024 * 1024 + 1))
    with grpc.insecure_channel(_target(stack)) as channel:
        stub = pb_grpc.ForwarderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SubmitRawMessage(
                iter([pb.SubmitRawMessageRequest(start=start), pb.SubmitRawMessageRequest(chunk=chunk)]), timeout=30
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "1048576" in (caught.value.details() or "")  # type: ignore[attr-defined]
    assert sandbox.emails() == []
