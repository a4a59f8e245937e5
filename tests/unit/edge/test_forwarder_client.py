"""The edge's gRPC client sends a message that fits in its first frame in one unary call (SubmitSmallMessage) and
streams every other one (SubmitMessage); both answers become the same SMTP replies. Against a real grpc.aio server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import grpc
import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from smtp_edge.forwarding.client import ForwarderClient

START = pb.MessageStart(
    credentials=pb.Credentials(username="u@x.test", password="p"),
    envelope=pb.Envelope(mail_from="a@x.test", rcpt_tos=["b@x.test"]),
    text_body="hello",
)
ACCEPTED = dict(result=pb.SUBMIT_RESULT_ACCEPTED, message_ids=["m-1"])


class Recorder(pb_grpc.ForwarderServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []  # method, frames, x-request-id
        self.refuse = False

    async def _answer(self, method: str, frames: int, context: grpc.aio.ServicerContext[object, object]) -> None:
        self.calls.append((method, frames, dict(context.invocation_metadata() or ()).get("x-request-id", "")))
        if self.refuse:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")

    async def SubmitSmallMessage(
        self, request: pb.SubmitSmallMessageRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.SubmitSmallMessageResponse:
        await self._answer("SubmitSmallMessage", 1, context)
        assert request.start == START
        return pb.SubmitSmallMessageResponse(**ACCEPTED)  # type: ignore[arg-type]

    async def SubmitMessage(
        self,
        request_iterator: AsyncIterator[pb.SubmitMessageRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.SubmitMessageResponse:
        frames = [frame async for frame in request_iterator]
        await self._answer("SubmitMessage", len(frames), context)
        return pb.SubmitMessageResponse(**ACCEPTED)  # type: ignore[arg-type]


@pytest.fixture
async def forwarder() -> AsyncIterator[tuple[Recorder, ForwarderClient]]:
    recorder = Recorder()
    server = grpc.aio.server()
    pb_grpc.add_ForwarderServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = ForwarderClient(f"127.0.0.1:{port}", submit_timeout=10, auth_timeout=10, lb_policy="pick_first")
    try:
        yield recorder, client
    finally:
        await client.close()
        await server.stop(None)


async def test_one_frame_goes_in_one_call_more_frames_are_streamed(
    forwarder: tuple[Recorder, ForwarderClient],
) -> None:
    recorder, client = forwarder
    small = await client.submit(iter([pb.SubmitMessageRequest(start=START)]), correlation_id="c-1")
    chunk = pb.SubmitMessageRequest(chunk=pb.ContentChunk(target=pb.CONTENT_TARGET_TEXT_BODY, data=b" more"))
    frames = [pb.SubmitMessageRequest(start=START), chunk, chunk]
    streamed = await client.submit(iter(frames), correlation_id="c-2")
    assert recorder.calls == [("SubmitSmallMessage", 1, "c-1"), ("SubmitMessage", 3, "c-2")]
    assert small == streamed
    assert small.accepted and small.reply.startswith("250 ") and small.outcome == "accepted"


async def test_errors_of_the_one_call_are_the_streams_errors(forwarder: tuple[Recorder, ForwarderClient]) -> None:
    recorder, client = forwarder
    recorder.refuse = True
    small = await client.submit(iter([pb.SubmitMessageRequest(start=START)]), correlation_id="c-1")
    chunk = pb.SubmitMessageRequest(chunk=pb.ContentChunk(target=pb.CONTENT_TARGET_TEXT_BODY, data=b"x"))
    streamed = await client.submit(iter([pb.SubmitMessageRequest(start=START), chunk]), correlation_id="c-2")
    assert [method for method, _, _ in recorder.calls] == ["SubmitSmallMessage", "SubmitMessage"]
    assert small == streamed and not small.accepted and small.outcome == "resource_exhausted"
    assert small.reply.startswith("4")


async def test_a_streamed_frame_is_let_go_of_once_sent(forwarder: tuple[Recorder, ForwarderClient]) -> None:
    """While the forwarder takes its time to answer (the API's), the edge holds no frame it already sent."""
    recorder, client = forwarder
    chunk = pb.SubmitMessageRequest(chunk=pb.ContentChunk(target=pb.CONTENT_TARGET_TEXT_BODY, data=b"x" * 1000))
    alone = sys.getrefcount(chunk)
    held_while_answering: list[int] = []
    answer = recorder._answer

    async def answer_later(method: str, frames: int, context: grpc.aio.ServicerContext[object, object]) -> None:
        held_while_answering.append(sys.getrefcount(chunk) - alone)
        await answer(method, frames, context)

    recorder._answer = answer_later  # type: ignore[method-assign]
    frames = iter([pb.SubmitMessageRequest(start=START), chunk])
    assert (await client.submit(frames, correlation_id="c-1")).accepted
    assert held_while_answering == [0]
