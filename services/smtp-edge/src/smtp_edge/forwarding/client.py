"""The edge's gRPC client for ForwarderService: one channel per process, a deadline on every call."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

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


def load_balancing_options(policy: str) -> list[tuple[str, str | int]]:
    """Channel options that spread calls over every address the target resolves to.

    One HTTP/2 connection through a ClusterIP Service pins an edge pod to one forwarder pod for the connection's
    life; with a headless Service (dns:///) and round_robin the channel keeps a subchannel per forwarder pod.
    The policy is set in the channel's own service config, and DNS TXT service configs are ignored, so nothing in
    the cluster's DNS can change it.
    """
    return [
        ("grpc.service_config", json.dumps({"loadBalancingConfig": [{policy: {}}]})),
        ("grpc.lb_policy_name", policy),
        ("grpc.service_config_disable_resolution", 1),
    ]


def forwarder_tls(ca_file: str, cert_file: str = "", key_file: str = "") -> grpc.ChannelCredentials | None:
    """TLS to the forwarder when a CA file is given; a client certificate too when both its files are given.
    Read once at start: a renewed client certificate takes a rolling restart of the edges."""
    if not ca_file:
        return None
    chain = Path(cert_file).read_bytes() if cert_file and key_file else None
    key = Path(key_file).read_bytes() if cert_file and key_file else None
    return grpc.ssl_channel_credentials(Path(ca_file).read_bytes(), key, chain)


class ForwarderClient:
    def __init__(
        self,
        address: str,
        *,
        submit_timeout: float,
        auth_timeout: float,
        lb_policy: str = "round_robin",
        tls: grpc.ChannelCredentials | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        options = [
            *load_balancing_options(lb_policy),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.enable_retries", 0),
        ]
        self._channel = (
            grpc.aio.secure_channel(address, tls, options=options, interceptors=list(interceptors) or None)
            if tls is not None
            else grpc.aio.insecure_channel(address, options=options, interceptors=list(interceptors) or None)
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
