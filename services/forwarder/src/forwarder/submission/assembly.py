"""Reassembles a SubmitMessage stream, checking it the way a public API must: strictly, with precise reasons."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cakemail.gateway.v1 import forwarder_pb2 as pb

MAX_CHUNK_BYTES = 1024 * 1024


class MalformedStream(Exception):
    """The stream breaks the protocol in proto/: the caller's bug, answered with INVALID_ARGUMENT."""


class MessageTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"message content exceeds the {limit}-byte limit")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class AssembledMessage:
    start: pb.MessageStart
    text_body: str
    html_body: str
    # bytearrays as received: no extra copy of what may be 25 MB (docs/architecture.md, memory)
    attachment_data: tuple[bytes | bytearray, ...]
    # Which message this is across the client's resends (proto MessageStart.message_identity).
    identity: str
    # A digest of the content and recipient set (not the password, not the gateway-made Message-ID).
    content_digest: str
    size: int


def _content_fingerprint(start: pb.MessageStart) -> bytes:
    """Everything that makes the message this message: content and recipient set; not the password, and not the
    identity fields, of which headers.message_id may have been made up by the gateway (it is derived from the
    identity, so it adds nothing, and it names the edge's host)."""
    copy = pb.MessageStart()
    copy.CopyFrom(start)
    copy.credentials.password = ""
    copy.headers.message_id = ""
    copy.message_identity = ""
    copy.envelope.rcpt_tos[:] = sorted({r.lower() for r in start.envelope.rcpt_tos})
    return copy.SerializeToString(deterministic=True)


async def assemble(requests: AsyncIterator[pb.SubmitMessageRequest], *, size_limit: int) -> AssembledMessage:
    start: pb.MessageStart | None = None
    text = bytearray()
    html = bytearray()
    attachments: list[bytearray] = []
    digest = hashlib.sha256()
    total = 0
    async for request in requests:
        frame = request.WhichOneof("frame")
        if start is None:
            if frame != "start":
                raise MalformedStream("the first frame must be a MessageStart")
            start = request.start
            _check_start(start)
            attachments = [bytearray() for _ in start.attachments]
            total = len(start.text_body.encode()) + len(start.html_body.encode())
            digest.update(_content_fingerprint(start))
            continue
        if frame != "chunk":
            raise MalformedStream("only ContentChunk frames may follow the MessageStart")
        chunk = request.chunk
        if len(chunk.data) > MAX_CHUNK_BYTES:
            raise MalformedStream(f"a ContentChunk carries at most {MAX_CHUNK_BYTES} bytes")
        total += len(chunk.data)
        if total > size_limit:
            raise MessageTooLarge(size_limit)
        digest.update(chunk.target.to_bytes(1, "big") + chunk.attachment_index.to_bytes(4, "big"))
        digest.update(chunk.data)
        if chunk.target == pb.CONTENT_TARGET_TEXT_BODY:
            text += chunk.data
        elif chunk.target == pb.CONTENT_TARGET_HTML_BODY:
            html += chunk.data
        elif chunk.target == pb.CONTENT_TARGET_ATTACHMENT:
            if chunk.attachment_index >= len(attachments):
                raise MalformedStream(f"chunk for attachment {chunk.attachment_index}, which was not declared")
            attachments[chunk.attachment_index] += chunk.data
        else:
            raise MalformedStream("ContentChunk.target is unspecified")
    if start is None:
        raise MalformedStream("empty stream: no MessageStart")
    for index, (declared, data) in enumerate(zip(start.attachments, attachments, strict=True)):
        if declared.size != len(data):
            raise MalformedStream(f"attachment {index} declared {declared.size} bytes but carried {len(data)}")
    try:
        text_body = start.text_body + text.decode("utf-8")
        html_body = start.html_body + html.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedStream("body chunks are not valid UTF-8") from exc
    return AssembledMessage(
        start=start,
        text_body=text_body,
        html_body=html_body,
        attachment_data=tuple(attachments),
        identity=start.message_identity or start.headers.message_id or "sha256:" + digest.hexdigest(),
        content_digest=digest.hexdigest(),
        size=total,
    )


def _check_start(start: pb.MessageStart) -> None:
    if not start.credentials.username:
        raise MalformedStream("credentials.username is required")
    if not start.envelope.rcpt_tos:
        raise MalformedStream("envelope.rcpt_tos needs at least one recipient")
    if any(not r.strip() for r in start.envelope.rcpt_tos):
        raise MalformedStream("envelope.rcpt_tos holds an empty address")
    if not start.headers.HasField("from") and not start.envelope.mail_from:
        raise MalformedStream("neither headers.from nor envelope.mail_from names a sender")
