"""The pure core end to end, no I/O: MIME bytes -> ParsedMessage -> gRPC frames -> reassembly -> API payload."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterable
from email import policy

from hypothesis import HealthCheck, given, settings

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.v1.wire import email_payload
from forwarder.submission.assembly import assemble
from forwarder.submission.mapping import to_outgoing_email
from gateway_mime import parse_message
from gateway_mime.frames import CHUNK_BYTES, SmtpCredentials, SmtpEnvelope, submission_frames
from tests.strategies import Spec, specs


async def _stream(frames: Iterable[pb.SubmitMessageRequest]) -> AsyncIterator[pb.SubmitMessageRequest]:
    for frame in frames:
        assert frame.ByteSize() <= CHUNK_BYTES + 64 * 1024, "no frame may approach gRPC's 4 MB limit"
        yield frame


def through_the_core(raw: bytes) -> dict[str, object]:
    parsed = parse_message(raw)
    frames = submission_frames(
        parsed,
        SmtpEnvelope(mail_from="bounce@example.com", rcpt_tos=("bob@example.net", "hidden@example.org")),
        SmtpCredentials("demo@example.com", "demo-password"),
    )
    assembled = asyncio.run(assemble(_stream(frames), size_limit=30 * 1024 * 1024))
    return email_payload(to_outgoing_email(assembled))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_nothing_lost_nothing_altered(spec: Spec) -> None:
    raw = spec.message().as_bytes(policy=policy.SMTP)
    payload = through_the_core(raw)
    spec.check(payload, [base64.b64decode(a["content"]) for a in payload["attachments"]])  # type: ignore[index, union-attr]
    assert payload["envelope_from"] == "bounce@example.com"
    assert payload["bcc"] == [{"email": "hidden@example.org", "name": ""}]


def test_big_bodies_and_attachments_are_chunked_and_rebuilt_exactly() -> None:
    spec = Spec(
        subject="big",
        sender_name="Ann",
        text="x" * 1_500_000 + "\n",
        html="<p>" + "y" * 700_000 + "</p>\n",
        attachments=(("big.bin", bytes(range(256)) * 12_000),),
    )
    payload = through_the_core(spec.message().as_bytes(policy=policy.SMTP))
    spec.check(payload, [base64.b64decode(a["content"]) for a in payload["attachments"]])  # type: ignore[index, union-attr]
