"""Pure: a parsed message and its envelope -> SubmitMessage frames, none carrying more than 1 MiB of content."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from cakemail.gateway.v1 import forwarder_pb2 as pb
from gateway_mime import Address, ParsedMessage

CHUNK_BYTES = 1024 * 1024
# Bodies up to this size travel inside the first frame; larger ones are streamed like attachments.
INLINE_BODY_BYTES = 512 * 1024
# The first frame's ceiling: two inline bodies plus headers, well under gRPC's 4 MiB message limit.
MAX_START_FRAME_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SmtpEnvelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SmtpCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"SmtpCredentials(username={self.username!r}, password=...)"


def _address(address: Address) -> pb.Address:
    return pb.Address(email=address.email, name=address.name)


def _chunks(target: pb.ContentTarget.ValueType, data: bytes, index: int = 0) -> Iterator[pb.SubmitMessageRequest]:
    view = memoryview(data)
    for offset in range(0, len(view), CHUNK_BYTES):
        yield pb.SubmitMessageRequest(
            chunk=pb.ContentChunk(
                target=target, attachment_index=index, data=bytes(view[offset : offset + CHUNK_BYTES])
            )
        )


class HeadersTooLarge(Exception):
    """Everything but the streamed content must fit one gRPC message; a message whose headers alone do not
    (say, tens of thousands of addresses) is refused as too big rather than failing in transport every retry."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"message headers exceed {limit} bytes")
        self.limit = limit


def submission_frames(
    message: ParsedMessage, envelope: SmtpEnvelope, credentials: SmtpCredentials, *, message_identity: str = ""
) -> Iterator[pb.SubmitMessageRequest]:
    """The frames to send; the first is built (and its size checked) at once, the content ones on demand. These do
    not hold `message`: each streamed body or attachment is let go of once its last chunk is made, so while a large
    message is sent a caller that let go of `message` holds only what is still to be sent."""
    text = message.text_body.encode("utf-8", "surrogatepass")
    html = message.html_body.encode("utf-8", "surrogatepass")
    text_inline = len(text) <= INLINE_BODY_BYTES
    html_inline = len(html) <= INLINE_BODY_BYTES
    headers = pb.MessageHeaders(
        to=[_address(a) for a in message.to],
        cc=[_address(a) for a in message.cc],
        reply_to=[_address(a) for a in message.reply_to],
        subject=message.subject,
        message_id=message.message_id,
        extra=[pb.Header(name=name, value=value) for name, value in message.extra_headers],
    )
    if message.from_ is not None:
        getattr(headers, "from").CopyFrom(_address(message.from_))
    start = pb.SubmitMessageRequest(
        start=pb.MessageStart(
            credentials=pb.Credentials(username=credentials.username, password=credentials.password),
            envelope=pb.Envelope(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos)),
            headers=headers,
            text_body=message.text_body if text_inline else "",
            html_body=message.html_body if html_inline else "",
            attachments=[
                pb.Attachment(
                    filename=part.filename,
                    content_type=part.content_type,
                    content_id=part.content_id,
                    disposition=pb.DISPOSITION_INLINE if part.disposition == "inline" else pb.DISPOSITION_ATTACHMENT,
                    size=len(part.data),
                )
                for part in message.attachments
            ],
            message_identity=message_identity,
        )
    )
    if start.ByteSize() > MAX_START_FRAME_BYTES:
        raise HeadersTooLarge(MAX_START_FRAME_BYTES)
    contents = [
        (pb.CONTENT_TARGET_TEXT_BODY, 0, text if not text_inline else b""),
        (pb.CONTENT_TARGET_HTML_BODY, 0, html if not html_inline else b""),
        *((pb.CONTENT_TARGET_ATTACHMENT, index, part.data) for index, part in enumerate(message.attachments)),
    ]
    return itertools.chain((start,), _content_frames(contents))


def _content_frames(contents: list[tuple[pb.ContentTarget.ValueType, int, bytes]]) -> Iterator[pb.SubmitMessageRequest]:
    """The chunks of each content in order, taken out of `contents` (and let go of) one after another."""
    contents.reverse()
    while contents:
        target, index, data = contents.pop()
        yield from _chunks(target, data, index)
        del data
