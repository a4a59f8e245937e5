"""The SubmitMessage stream is checked strictly, and its idempotency key depends on content and recipients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.submission.assembly import (
    PREALLOCATE_AFTER_BYTES,
    MalformedStream,
    MessageTooLarge,
    _Attachment,
    assemble,
)


async def _stream(frames: Iterable[pb.SubmitMessageRequest]) -> AsyncIterator[pb.SubmitMessageRequest]:
    for frame in frames:
        yield frame


def start(
    rcpts: tuple[str, ...] = ("r@x.test",), attachments: tuple[int, ...] = (), text: str = "hi"
) -> pb.SubmitMessageRequest:
    message = pb.MessageStart(
        credentials=pb.Credentials(username="u", password="p"),
        envelope=pb.Envelope(mail_from="s@x.test", rcpt_tos=list(rcpts)),
        text_body=text,
        attachments=[pb.Attachment(filename=f"f{i}", size=size) for i, size in enumerate(attachments)],
    )
    return pb.SubmitMessageRequest(start=message)


def chunk(target: int, data: bytes, index: int = 0) -> pb.SubmitMessageRequest:
    return pb.SubmitMessageRequest(chunk=pb.ContentChunk(target=target, attachment_index=index, data=data))  # type: ignore[arg-type]


async def test_reassembles_bodies_and_attachments_in_order() -> None:
    message = await assemble(
        _stream(
            [
                start(attachments=(5, 0)),
                chunk(pb.CONTENT_TARGET_TEXT_BODY, b" there"),
                chunk(pb.CONTENT_TARGET_ATTACHMENT, b"ab", 0),
                chunk(pb.CONTENT_TARGET_HTML_BODY, "<p>\xe9</p>".encode()),
                chunk(pb.CONTENT_TARGET_ATTACHMENT, b"cde", 0),
            ]
        ),
        size_limit=1000,
    )
    assert message.text_body == "hi there"
    assert message.html_body == "<p>\xe9</p>"
    assert message.attachment_data == (b"abcde", b"")


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        pytest.param([], "empty stream", id="empty"),
        pytest.param([chunk(pb.CONTENT_TARGET_TEXT_BODY, b"x")], "first frame", id="chunk-first"),
        pytest.param([start(), start()], "only ContentChunk", id="two-starts"),
        pytest.param(
            [start(attachments=(1,)), chunk(pb.CONTENT_TARGET_ATTACHMENT, b"x", 1)], "not declared", id="bad-index"
        ),
        pytest.param([start(attachments=(2,)), chunk(pb.CONTENT_TARGET_ATTACHMENT, b"x")], "declared 2", id="short"),
        pytest.param([start(), chunk(pb.CONTENT_TARGET_UNSPECIFIED, b"x")], "unspecified", id="no-target"),
        pytest.param([start(), chunk(pb.CONTENT_TARGET_TEXT_BODY, b"\xff")], "UTF-8", id="bad-utf8"),
        pytest.param([start(rcpts=())], "rcpt_tos", id="no-recipients"),
        pytest.param(
            [start(), chunk(pb.CONTENT_TARGET_TEXT_BODY, b"x" * (1024 * 1024 + 1))], "at most", id="big-chunk"
        ),
    ],
)
async def test_malformed_streams_are_refused_with_a_reason(frames: list[pb.SubmitMessageRequest], reason: str) -> None:
    with pytest.raises(MalformedStream, match=reason):
        await assemble(_stream(frames), size_limit=10 * 1024 * 1024)


async def test_size_limit_counts_streamed_content() -> None:
    with pytest.raises(MessageTooLarge):
        await assemble(
            _stream([start(attachments=(20,)), chunk(pb.CONTENT_TARGET_ATTACHMENT, b"x" * 20)]), size_limit=10
        )


async def _key(frames: list[pb.SubmitMessageRequest]) -> str:
    return (await assemble(_stream(frames), size_limit=10_000)).content_digest


async def test_content_digest_ignores_recipient_order_password_and_identity_fields() -> None:
    base = await _key([start(rcpts=("a@x.test", "b@x.test"))])
    assert base == await _key([start(rcpts=("B@x.test", "a@x.test"))])
    other_password = start(rcpts=("a@x.test", "b@x.test"))
    other_password.start.credentials.password = "different"
    assert base == await _key([other_password])
    with_ids = start(rcpts=("a@x.test", "b@x.test"))
    with_ids.start.headers.message_id = "<made-up@edge-1>"
    with_ids.start.message_identity = "sha256:abc"
    assert base == await _key([with_ids])


async def test_identity_is_the_given_one_else_the_message_id_else_a_digest_of_the_stream() -> None:
    async def identity(frame: pb.SubmitMessageRequest) -> str:
        return (await assemble(_stream([frame]), size_limit=10_000)).identity

    given = start()
    given.start.message_identity = "sha256:from-the-edge"
    given.start.headers.message_id = "<x@edge>"
    assert await identity(given) == "sha256:from-the-edge"
    with_message_id = start()
    with_message_id.start.headers.message_id = "<client@x.test>"
    assert await identity(with_message_id) == "<client@x.test>"
    bare = await identity(start())
    assert bare.startswith("sha256:") and bare == await identity(start())


async def test_content_digest_changes_with_content_or_recipients() -> None:
    base = await _key([start(attachments=(1,)), chunk(pb.CONTENT_TARGET_ATTACHMENT, b"a")])
    assert base != await _key([start(attachments=(1,)), chunk(pb.CONTENT_TARGET_ATTACHMENT, b"b")])
    assert base != await _key(
        [start(rcpts=("other@x.test",), attachments=(1,)), chunk(pb.CONTENT_TARGET_ATTACHMENT, b"a")]
    )


async def test_a_token_authenticated_stream_carries_no_credentials() -> None:
    """With an access token in the metadata the stream has no credentials (and may not have any: one way per call)."""
    bare = start()
    bare.start.ClearField("credentials")
    message = await assemble(_stream([bare]), size_limit=1000, token_auth=True)
    assert message.start.envelope.rcpt_tos == ["r@x.test"]
    with pytest.raises(MalformedStream) as both:
        await assemble(_stream([start()]), size_limit=1000, token_auth=True)
    assert both.value.field == "start.credentials"
    with pytest.raises(MalformedStream) as neither:
        await assemble(_stream([bare]), size_limit=1000)
    assert neither.value.field == "start.credentials.username"


@given(parts=st.lists(st.lists(st.binary(max_size=40), max_size=5), max_size=3), slack=st.integers(-3, 3))
@settings(max_examples=200, deadline=None)
async def test_attachments_are_the_bytes_sent_and_must_carry_exactly_their_declared_size(
    parts: list[list[bytes]], slack: int
) -> None:
    """Each attachment is filled into one buffer of its declared size: the bytes sent, in order; a chunk that
    carries more than declared, or a stream that carries less, is refused naming the attachment."""
    sizes = [sum(len(piece) for piece in pieces) for pieces in parts]
    declared = [max(0, size + slack) if index == len(parts) - 1 else size for index, size in enumerate(sizes)]
    frames = [start(attachments=tuple(declared))]
    for index, pieces in enumerate(parts):
        frames += [chunk(pb.CONTENT_TARGET_ATTACHMENT, piece, index) for piece in pieces]
    if declared == sizes:
        message = await assemble(_stream(frames), size_limit=1000)
        assert message.attachment_data == tuple(b"".join(pieces) for pieces in parts)
        assert all(isinstance(data, bytearray) for data in message.attachment_data)
    else:
        last = len(parts) - 1
        with pytest.raises(MalformedStream, match=f"attachment {last} declared {declared[last]} bytes but carried"):
            await assemble(_stream(frames), size_limit=1000)


async def test_attachments_declared_beyond_the_limit_are_refused_before_their_content() -> None:
    frames = [start(attachments=(600, 500))]  # and nothing more: refused on the MessageStart alone
    with pytest.raises(MessageTooLarge):
        await assemble(_stream(frames), size_limit=1000)
    message = await assemble(_stream([start(attachments=(0,))]), size_limit=2)
    assert message.attachment_data == (b"",)


def test_a_declared_size_alone_does_not_make_the_forwarder_hold_it() -> None:
    """One byte sent of a 20 MB attachment holds one byte, not 20 MB; past the first MiB the buffer takes the declared
    size at once (no regrowth), and the bytes come out as sent."""
    declared = 20 * 1024 * 1024
    attachment = _Attachment(0, declared)
    attachment.add(b"x")
    assert len(attachment.data) == 1
    piece = b"y" * PREALLOCATE_AFTER_BYTES
    attachment.add(piece)
    assert len(attachment.data) == declared
    rest = b"z" * (declared - 1 - len(piece))
    attachment.add(rest)
    attachment.check_complete()
    assert bytes(attachment.data) == b"x" + piece + rest
