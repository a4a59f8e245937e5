"""Reassembles a SubmitMessage stream, checking it the way a public API must: strictly, with precise reasons."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from cakemail.gateway.v1 import forwarder_pb2 as pb
from gateway_mime.frames import SmtpCredentials, SmtpEnvelope, submission_frames
from gateway_mime.submission import read_submission

MAX_CHUNK_BYTES = 1024 * 1024


class MalformedStream(Exception):
    """The stream breaks the protocol in proto/: the caller's bug, answered with INVALID_ARGUMENT and, in `field`,
    the request field at fault (a google.rpc.BadRequest field violation)."""

    def __init__(self, description: str, *, field: str = "") -> None:
        super().__init__(description)
        self.description = description
        self.field = field


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


# An attachment's buffer takes its declared size once this much of it has arrived (one edge chunk): at most 1 MiB
# sent for up to MESSAGE_SIZE_LIMIT held, where a buffer made on the first byte would be any size for one byte.
PREALLOCATE_AFTER_BYTES = 1024 * 1024


class _Attachment:
    """One attachment's bytes, filled in place into one buffer of its declared size, made once
    PREALLOCATE_AFTER_BYTES of it (or all of a smaller one) has arrived. A buffer grown chunk by chunk is reallocated
    again and again (copies of up to the whole attachment, 1/8 spare kept by CPython, freed blocks kept by glibc as
    heap): 1.6x a 20 MB message of forwarder RSS per message in flight, against 1.1x with exact buffers
    (docs/performance.md, "Against the targets")."""

    __slots__ = ("_declared", "_filled", "_index", "data")

    def __init__(self, index: int, declared: int) -> None:
        self._index = index
        self._declared = declared
        self._filled = 0
        self.data = bytearray()

    def _mismatch(self, carried: str) -> MalformedStream:
        return MalformedStream(
            f"attachment {self._index} declared {self._declared} bytes but carried {carried}",
            field=f"start.attachments[{self._index}].size",
        )

    def add(self, chunk: bytes) -> None:
        end = self._filled + len(chunk)
        if end > self._declared:
            raise self._mismatch("more")
        if len(self.data) != self._declared:
            if end < min(self._declared, PREALLOCATE_AFTER_BYTES):
                # Not before the caller has sent a real share of it: a declared size alone (one byte sent, 25 MB
                # declared) must not make the forwarder hold 25 MB.
                self.data += chunk
                self._filled = end
                return
            whole = bytearray(self._declared)
            whole[: self._filled] = self.data
            self.data = whole
        self.data[self._filled : end] = chunk
        self._filled = end

    def check_complete(self) -> None:
        if self._filled != self._declared:
            raise self._mismatch(str(self._filled))


async def assemble(
    requests: AsyncIterator[pb.SubmitMessageRequest], *, size_limit: int, token_auth: bool = False
) -> AssembledMessage:
    """`token_auth`: the caller authenticated with an access token in metadata, so the stream carries no
    credentials (and must not: one way of authenticating per call)."""
    start: pb.MessageStart | None = None
    text = bytearray()
    html = bytearray()
    attachments: list[_Attachment] = []
    digest = hashlib.sha256()
    total = 0
    async for request in requests:
        frame = request.WhichOneof("frame")
        if start is None:
            if frame != "start":
                raise MalformedStream("the first frame must be a MessageStart", field="start")
            start = request.start
            _check_start(start, token_auth)
            total = len(start.text_body.encode()) + len(start.html_body.encode())
            # The attachments must carry what they declare: declared beyond the limit, the message is too large
            # (refused before its content is read, and before a buffer of that size is made).
            if total + sum(a.size for a in start.attachments) > size_limit:
                raise MessageTooLarge(size_limit)
            attachments = [_Attachment(index, a.size) for index, a in enumerate(start.attachments)]
            digest.update(_content_fingerprint(start))
            continue
        if frame != "chunk":
            raise MalformedStream("only ContentChunk frames may follow the MessageStart", field="chunk")
        chunk = request.chunk
        # Read once: each read of a protobuf bytes field makes a new copy (up to 1 MiB here).
        data = chunk.data
        if len(data) > MAX_CHUNK_BYTES:
            raise MalformedStream(f"a ContentChunk carries at most {MAX_CHUNK_BYTES} bytes", field="chunk.data")
        total += len(data)
        if total > size_limit:
            raise MessageTooLarge(size_limit)
        digest.update(chunk.target.to_bytes(1, "big") + chunk.attachment_index.to_bytes(4, "big"))
        digest.update(data)
        if chunk.target == pb.CONTENT_TARGET_TEXT_BODY:
            text += data
        elif chunk.target == pb.CONTENT_TARGET_HTML_BODY:
            html += data
        elif chunk.target == pb.CONTENT_TARGET_ATTACHMENT:
            if chunk.attachment_index >= len(attachments):
                raise MalformedStream(
                    f"chunk for attachment {chunk.attachment_index}, which was not declared",
                    field="chunk.attachment_index",
                )
            attachments[chunk.attachment_index].add(data)
        else:
            raise MalformedStream("ContentChunk.target is unspecified", field="chunk.target")
    if start is None:
        raise MalformedStream("empty stream: no MessageStart", field="start")
    for attachment in attachments:
        attachment.check_complete()
    try:
        text_body = start.text_body + text.decode("utf-8")
        html_body = start.html_body + html.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedStream("body chunks are not valid UTF-8", field="chunk.data") from exc
    return AssembledMessage(
        start=start,
        text_body=text_body,
        html_body=html_body,
        attachment_data=tuple(attachment.data for attachment in attachments),
        identity=start.message_identity or start.headers.message_id or "sha256:" + digest.hexdigest(),
        content_digest=digest.hexdigest(),
        size=total,
    )


def _check_envelope(credentials: pb.Credentials, envelope: pb.Envelope, token_auth: bool = False) -> None:
    if token_auth:
        if credentials.username or credentials.password:
            raise MalformedStream(
                "credentials and an access token (authorization metadata) were both given: send one of them",
                field="start.credentials",
            )
    elif not credentials.username:
        raise MalformedStream(
            "credentials.username is required (or an access token in the authorization metadata)",
            field="start.credentials.username",
        )
    if not envelope.rcpt_tos:
        raise MalformedStream("envelope.rcpt_tos needs at least one recipient", field="start.envelope.rcpt_tos")
    if any(not r.strip() for r in envelope.rcpt_tos):
        raise MalformedStream("envelope.rcpt_tos holds an empty address", field="start.envelope.rcpt_tos")


def _check_start(start: pb.MessageStart, token_auth: bool = False) -> None:
    _check_envelope(start.credentials, start.envelope, token_auth)
    if not start.headers.HasField("from") and not start.envelope.mail_from:
        raise MalformedStream(
            "neither headers.from nor envelope.mail_from names a sender", field="start.envelope.mail_from"
        )


@dataclass(frozen=True, slots=True)
class RawLimits:
    """The SMTP edge's limits, so that a raw message is judged as it would be over SMTP."""

    size_limit: int
    max_attachment_bytes: int
    message_id_domain: str


async def _frames(frames: Iterator[pb.SubmitMessageRequest]) -> AsyncIterator[pb.SubmitMessageRequest]:
    for frame in frames:
        yield frame


async def assemble_raw(
    requests: AsyncIterator[pb.SubmitRawMessageRequest], *, limits: RawLimits, token_auth: bool = False
) -> AssembledMessage:
    """A SubmitRawMessage stream -> the message SubmitMessage would have received from the edge for the same bytes:
    parsed by the edge's MIME core (gateway_mime.read_submission), framed by its frame builder, then assembled and
    checked like any SubmitMessage stream. Raises MessageRejected (gateway_mime) for what the parser refuses."""
    start: pb.RawMessageStart | None = None
    raw = bytearray()
    async for request in requests:
        frame = request.WhichOneof("frame")
        if start is None:
            if frame != "start":
                raise MalformedStream("the first frame must be a RawMessageStart", field="start")
            start = request.start
            data = start.data
        elif frame != "chunk":
            raise MalformedStream("only RawMessageChunk frames may follow the RawMessageStart", field="chunk")
        else:
            data = request.chunk.data
            if len(data) > MAX_CHUNK_BYTES:
                raise MalformedStream(f"a RawMessageChunk carries at most {MAX_CHUNK_BYTES} bytes", field="chunk.data")
        if len(raw) + len(data) > limits.size_limit:
            raise MessageTooLarge(limits.size_limit)
        raw += data
    if start is None:
        raise MalformedStream("empty stream: no RawMessageStart", field="start")
    if not raw.strip():
        raise MalformedStream("the message is empty", field="start.data")
    _check_envelope(start.credentials, start.envelope, token_auth)
    envelope = SmtpEnvelope(mail_from=start.envelope.mail_from, rcpt_tos=tuple(start.envelope.rcpt_tos))
    credentials = SmtpCredentials(start.credentials.username, start.credentials.password)
    message = bytes(raw)
    del raw
    parsed, identity = await asyncio.to_thread(
        read_submission,
        message,
        envelope.mail_from,
        max_attachment_bytes=limits.max_attachment_bytes,
        message_id_domain=limits.message_id_domain,
    )
    frames = submission_frames(parsed, envelope, credentials, message_identity=identity)
    return await assemble(_frames(frames), size_limit=limits.size_limit, token_auth=token_auth)
