"""The edge's gRPC client for ForwarderService: one channel per process, a deadline on every call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from gateway_common.correlation import GRPC_METADATA_KEY
from smtp_edge.forwarding import replies

# Frames carry at most 1 MiB of content; leave room for metadata but refuse anything absurd.
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """What the forwarder said, already as the SMTP reply, plus whether Cakemail accepted."""

    reply: str
    accepted: bool
    outcome: str


class ForwarderClient:
    def __init__(self, address: str, *, submit_timeout: float, auth_timeout: float) -> None:
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.enable_retries", 0),
            ],
        )
        self._stub = pb_grpc.ForwarderServiceStub(self._channel)
        self._submit_timeout = submit_timeout
        self._auth_timeout = auth_timeout

    async def close(self) -> None:
        await self._channel.close()

    async def authenticate(self, username: str, password: str, *, correlation_id: str) -> Answer:
        request = pb.AuthenticateRequest(credentials=pb.Credentials(username=username, password=password))
        try:
            await self._stub.Authenticate(
                request, timeout=self._auth_timeout, metadata=((GRPC_METADATA_KEY, correlation_id),)
            )
        except grpc.aio.AioRpcError as exc:
            return Answer(replies.reply_for_auth_error(exc.code()), accepted=False, outcome=exc.code().name.lower())
        return Answer(replies.AUTH_OK, accepted=True, outcome="ok")

    async def submit(self, frames: Iterator[pb.SubmitMessageRequest], *, correlation_id: str) -> Answer:
        try:
            response = await self._stub.SubmitMessage(
                frames, timeout=self._submit_timeout, metadata=((GRPC_METADATA_KEY, correlation_id),)
            )
        except grpc.aio.AioRpcError as exc:
            reply = replies.reply_for_submit_error(exc.code(), exc.details() or "")
            return Answer(reply, accepted=False, outcome=exc.code().name.lower())
        accepted = response.result == pb.SUBMIT_RESULT_ACCEPTED and bool(response.message_ids)
        return Answer(
            replies.reply_for_response(response),
            accepted=accepted,
            outcome=pb.SubmitResult.Name(response.result).removeprefix("SUBMIT_RESULT_").lower(),
        )
