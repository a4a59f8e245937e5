"""SubmitRawMessage's core: the forwarder reads raw bytes exactly as the edge does, so over the whole .eml corpus the
raw path and the edge's path (parse, frame, stream, assemble) give the same message and the same API payload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.v1.wire import email_payload
from forwarder.submission.assembly import (
    AssembledMessage,
    MalformedStream,
    MessageTooLarge,
    RawLimits,
    assemble,
    assemble_raw,
)
from forwarder.submission.mapping import to_outgoing_email
from gateway_mime import AttachmentTooLarge
from gateway_mime.frames import SmtpCredentials, SmtpEnvelope, submission_frames
from gateway_mime.submission import read_submission
from tests.unit.mime.shapes import crlf

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mime"
CASES = sorted(path.stem for path in CORPUS.glob("*.eml"))
LIMITS = RawLimits(size_limit=26_214_400, max_attachment_bytes=10_485_760, message_id_domain="edge.example.test")
CREDENTIALS = pb.Credentials(username="demo@example.com", password="demo-password")
ENVELOPE = pb.Envelope(mail_from="bounce@example.com", rcpt_tos=["bob@example.net", "hidden@example.org"])


async def _stream(frames: Iterable[object]) -> AsyncIterator[object]:
    for frame in frames:
        yield frame


def via_edge(raw: bytes, envelope: pb.Envelope = ENVELOPE) -> AssembledMessage:
    """What the edge does with DATA bytes (smtp_edge.smtp.handler), then the forwarder's SubmitMessage assembly."""
    parsed, identity = read_submission(
        raw, envelope.mail_from, max_attachment_bytes=LIMITS.max_attachment_bytes, message_id_domain="edge.example.test"
    )
    frames = submission_frames(
        parsed,
        SmtpEnvelope(envelope.mail_from, tuple(envelope.rcpt_tos)),
        SmtpCredentials(CREDENTIALS.username, CREDENTIALS.password),
        message_identity=identity,
    )
    return asyncio.run(assemble(_stream(frames), size_limit=LIMITS.size_limit))  # type: ignore[arg-type]


def raw_frames(raw: bytes, envelope: pb.Envelope = ENVELOPE, piece: int = 4096) -> list[pb.SubmitRawMessageRequest]:
    frames = [pb.SubmitRawMessageRequest(start=pb.RawMessageStart(credentials=CREDENTIALS, envelope=envelope))]
    frames += [
        pb.SubmitRawMessageRequest(chunk=pb.RawMessageChunk(data=raw[i : i + piece])) for i in range(0, len(raw), piece)
    ]
    return frames


def via_raw(frames: list[pb.SubmitRawMessageRequest], limits: RawLimits = LIMITS) -> AssembledMessage:
    return asyncio.run(assemble_raw(_stream(frames), limits=limits))  # type: ignore[arg-type]


def _api_payload_bytes(message: AssembledMessage) -> bytes:
    return json.dumps(email_payload(to_outgoing_email(message)), sort_keys=True).encode()


@pytest.mark.parametrize("name", CASES)
def test_raw_and_structured_paths_agree_on_the_corpus(name: str) -> None:
    raw = crlf((CORPUS / f"{name}.eml").read_bytes())
    structured = via_edge(raw)
    received = via_raw(raw_frames(raw))
    assert received.start.SerializeToString(deterministic=True) == structured.start.SerializeToString(
        deterministic=True
    )
    assert (received.text_body, received.html_body) == (structured.text_body, structured.html_body)
    assert [bytes(a) for a in received.attachment_data] == [bytes(a) for a in structured.attachment_data]
    assert (received.identity, received.content_digest, received.size) == (
        structured.identity,
        structured.content_digest,
        structured.size,
    )
    assert _api_payload_bytes(received) == _api_payload_bytes(structured)


def test_identity_is_the_message_id_else_a_digest_of_sender_and_bytes() -> None:
    with_id = b"From: a@example.com\r\nMessage-ID: <m1@example.com>\r\nSubject: s\r\n\r\nbody\r\n"
    assert via_raw(raw_frames(with_id)).identity == "<m1@example.com>"
    without = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    first = via_raw(raw_frames(without))
    assert first.identity.startswith("sha256:")
    assert first.start.headers.message_id.endswith("@edge.example.test>")  # derived, the same on every resend
    assert via_raw(raw_frames(without, piece=3)).identity == first.identity
    other_sender = pb.Envelope(mail_from="other@example.com", rcpt_tos=["bob@example.net"])
    assert via_raw(raw_frames(without, other_sender)).identity != first.identity


def test_first_bytes_may_ride_in_the_start_frame() -> None:
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    start = pb.SubmitRawMessageRequest(
        start=pb.RawMessageStart(credentials=CREDENTIALS, envelope=ENVELOPE, data=raw[:10])
    )
    rest = pb.SubmitRawMessageRequest(chunk=pb.RawMessageChunk(data=raw[10:]))
    assert via_raw([start, rest]).content_digest == via_raw(raw_frames(raw)).content_digest


def test_over_the_smtp_size_limit_is_too_large() -> None:
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\n" + b"x" * 5000
    with pytest.raises(MessageTooLarge):
        via_raw(raw_frames(raw), RawLimits(size_limit=4096, max_attachment_bytes=10, message_id_domain="d"))


def test_an_attachment_over_the_limit_is_refused_as_over_smtp() -> None:
    raw = (CORPUS / "mixed_pdf.eml").read_bytes()
    with pytest.raises(AttachmentTooLarge):
        via_raw(raw_frames(crlf(raw)), RawLimits(size_limit=10**7, max_attachment_bytes=10, message_id_domain="d"))


@pytest.mark.parametrize(
    ("frames", "field"),
    [
        ([], "start"),
        ([pb.SubmitRawMessageRequest(chunk=pb.RawMessageChunk(data=b"x"))], "start"),
        (
            [pb.SubmitRawMessageRequest(start=pb.RawMessageStart(credentials=CREDENTIALS, envelope=ENVELOPE))],
            "start.data",
        ),
        (
            raw_frames(b"From: a@x.test\r\n\r\nhi\r\n", pb.Envelope(mail_from="a@x.test")),
            "start.envelope.rcpt_tos",
        ),
        (
            raw_frames(b"Subject: no from\r\n\r\nhi\r\n", pb.Envelope(mail_from="", rcpt_tos=["b@x.test"])),
            "start.envelope.mail_from",
        ),
        (
            [
                pb.SubmitRawMessageRequest(start=pb.RawMessageStart(credentials=CREDENTIALS, envelope=ENVELOPE)),
                pb.SubmitRawMessageRequest(start=pb.RawMessageStart()),
            ],
            "chunk",
        ),
    ],
)
def test_malformed_raw_streams_name_the_field(frames: list[pb.SubmitRawMessageRequest], field: str) -> None:
    with pytest.raises(MalformedStream) as caught:
        via_raw(frames)
    assert caught.value.field == field
