"""Frames: the first carries everything but streamed content and must fit one gRPC message; content in <= 1 MiB."""

from __future__ import annotations

import pytest

from gateway_mime import Address, AttachmentPart, ParsedMessage
from gateway_mime.frames import (
    CHUNK_BYTES,
    HeadersTooLarge,
    SmtpCredentials,
    SmtpEnvelope,
    submission_frames,
)

ENVELOPE = SmtpEnvelope("a@x.test", ("b@x.test",))
CREDENTIALS = SmtpCredentials("u", "p")


def parsed(**overrides: object) -> ParsedMessage:
    values: dict[str, object] = {
        "from_": Address("a@x.test", "A"),
        "to": (Address("b@x.test"),),
        "cc": (),
        "reply_to": (),
        "subject": "s",
        "message_id": "<m@x.test>",
        "text_body": "t",
        "html_body": "",
        "extra_headers": (),
        "attachments": (),
        "defects": (),
    }
    values.update(overrides)
    return ParsedMessage(**values)  # type: ignore[arg-type]


def test_content_is_chunked_and_small_bodies_ride_inline() -> None:
    part = AttachmentPart("f.bin", "application/octet-stream", "", "attachment", b"x" * (2 * CHUNK_BYTES + 5))
    frames = list(submission_frames(parsed(attachments=(part,)), ENVELOPE, CREDENTIALS))
    assert frames[0].start.text_body == "t"
    assert [len(f.chunk.data) for f in frames[1:]] == [CHUNK_BYTES, CHUNK_BYTES, 5]


def test_headers_that_cannot_fit_one_frame_are_refused_up_front() -> None:
    heavy = tuple((f"X-Filler-{n}", "v" * 1000) for n in range(4000))
    with pytest.raises(HeadersTooLarge):
        submission_frames(parsed(extra_headers=heavy), ENVELOPE, CREDENTIALS)


_freed: list[bytes] = []


class _Data(bytes):
    """Bytes that say when they are let go of (bytes take no weak reference)."""

    def __del__(self) -> None:
        _freed.append(self[:1])


def test_the_frames_let_go_of_each_part_once_it_is_sent() -> None:
    """A caller that let go of the message holds only what is still to be sent (the edge while it forwards)."""
    _freed.clear()
    parts = tuple(
        AttachmentPart(f"{n}.bin", "application/octet-stream", "", "attachment", _Data(fill * size))
        for n, (fill, size) in enumerate([(b"a", CHUNK_BYTES + 1), (b"b", 10)])
    )
    frames = submission_frames(parsed(attachments=parts), ENVELOPE, CREDENTIALS)
    del parts
    assert next(frames).WhichOneof("frame") == "start"
    assert [len(next(frames).chunk.data) for _ in range(2)] == [CHUNK_BYTES, 1]
    assert _freed == []  # its last chunk is made, but not yet taken
    assert next(frames).chunk.data == b"b" * 10
    assert _freed == [b"a"]
    assert next(frames, None) is None
    assert _freed == [b"a", b"b"]
