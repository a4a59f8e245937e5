"""The edge's gRPC client for ForwarderService: one channel per process, a deadline on every call."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from gateway_common.correlation import GRPC_METADATA_KEY
from smtp_edge.forwarding import replies

log = structlog.get_logger(__name__)

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


@dataclass(frozen=True, slots=True)
class ForwarderTlsFiles:
    """TLS to the forwarder: the CA of its certificate, and this edge's client certificate when both its files are
    given (the forwarder's mTLS). PEM files, looked at again while the edge runs (ForwarderClient)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""

    @property
    def presents_certificate(self) -> bool:
        return bool(self.cert_file and self.key_file)

    def stamp(self) -> tuple[tuple[float, int], ...]:
        paths = [self.ca_file, *((self.cert_file, self.key_file) if self.presents_certificate else ())]
        return tuple((os.stat(p).st_mtime, os.stat(p).st_ino) for p in paths)

    def credentials(self) -> grpc.ChannelCredentials:
        """The files' credentials; raises OSError or ssl.SSLError when they cannot be used together (a renewal
        half written: a certificate and a key that do not match), so that a broken pair is never switched to."""
        roots = Path(self.ca_file).read_bytes()
        if not self.presents_certificate:
            return grpc.ssl_channel_credentials(roots)
        chain, key = Path(self.cert_file).read_bytes(), Path(self.key_file).read_bytes()
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(self.cert_file, self.key_file)  # a matching pair
        return grpc.ssl_channel_credentials(roots, key, chain)


def forwarder_tls(ca_file: str, cert_file: str = "", key_file: str = "") -> ForwarderTlsFiles | None:
    """TLS to the forwarder when a CA file is given; a client certificate too when both its files are given."""
    return ForwarderTlsFiles(ca_file, cert_file, key_file) if ca_file else None


class ForwarderClient:
    """`tls_files`: looked at (stat) at most every `tls_check_interval` seconds, at a call; when they changed (a
    renewed client certificate, a rotated CA), later calls go over a new channel that presents the new certificate,
    while calls in flight finish on the old one, closed after them. A pair that cannot be used is not switched to."""

    def __init__(
        self,
        address: str,
        *,
        submit_timeout: float,
        auth_timeout: float,
        lb_policy: str = "round_robin",
        tls_files: ForwarderTlsFiles | None = None,
        tls_check_interval: float = 30.0,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        self._address = address
        self._options = [
            *load_balancing_options(lb_policy),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.enable_retries", 0),
        ]
        self._interceptors = list(interceptors) or None
        self._tls_files = tls_files
        self._tls_check_interval = tls_check_interval
        self._tls_stamp = tls_files.stamp() if tls_files is not None else ()
        self._tls_checked_at = time.monotonic()
        self._closing: set[asyncio.Task[None]] = set()
        self._submit_timeout = submit_timeout
        self._auth_timeout = auth_timeout
        self._channel = self._open(tls_files.credentials() if tls_files is not None else None)
        self._stub = pb_grpc.ForwarderServiceStub(self._channel)

    def _open(self, tls: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
        if tls is None:
            return grpc.aio.insecure_channel(self._address, options=self._options, interceptors=self._interceptors)
        return grpc.aio.secure_channel(self._address, tls, options=self._options, interceptors=self._interceptors)

    def _current_stub(self) -> pb_grpc.ForwarderServiceStub:
        files = self._tls_files
        now = time.monotonic()
        if files is None or now - self._tls_checked_at < self._tls_check_interval:
            return self._stub
        self._tls_checked_at = now
        try:
            stamp = files.stamp()
            if stamp == self._tls_stamp:
                return self._stub
            credentials = files.credentials()
        except (OSError, ssl.SSLError) as exc:
            log.warning("forwarder tls files not usable; keeping the loaded ones", error=str(exc))
            return self._stub
        self._tls_stamp = stamp
        old = self._channel
        self._channel = self._open(credentials)
        self._stub = pb_grpc.ForwarderServiceStub(self._channel)
        # Calls in flight on the old channel finish (within the longest call's timeout); new ones use the new one.
        closing = asyncio.ensure_future(old.close(grace=max(self._submit_timeout, self._auth_timeout)))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        log.info("forwarder tls certificate reloaded", cert_file=files.cert_file or None, ca_file=files.ca_file)
        return self._stub

    async def close(self) -> None:
        await self._channel.close()
        # Replaced channels close once their last call ended (at once when none is left in flight).
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def authenticate(self, username: str, password: str, *, correlation_id: str) -> Answer:
        request = pb.AuthenticateRequest(credentials=pb.Credentials(username=username, password=password))
        try:
            await self._current_stub().Authenticate(
                request, timeout=self._auth_timeout, metadata=((GRPC_METADATA_KEY, correlation_id),)
            )
        except grpc.aio.AioRpcError as exc:
            return Answer(replies.reply_for_auth_error(exc.code()), accepted=False, outcome=exc.code().name.lower())
        return Answer(replies.AUTH_OK, accepted=True, outcome="ok")

    async def submit(self, frames: Iterator[pb.SubmitMessageRequest], *, correlation_id: str) -> Answer:
        """A message that fits in its first frame goes in one unary call (SubmitSmallMessage): a stream's setup,
        writes and half-close cost the edge about as much CPU as the rest of the call (docs/performance.md)."""
        first, second = next(frames, None), next(frames, None)
        metadata = ((GRPC_METADATA_KEY, correlation_id),)
        try:
            stub = self._current_stub()
            if first is not None and second is None and first.WhichOneof("frame") == "start":
                small = await stub.SubmitSmallMessage(
                    pb.SubmitSmallMessageRequest(start=first.start), timeout=self._submit_timeout, metadata=metadata
                )
                response = pb.SubmitMessageResponse.FromString(small.SerializeToString())  # same field numbers
            else:
                streamed = itertools.chain((f for f in (first, second) if f is not None), frames)
                del first, second  # the chain lets go of them once sent: a content chunk is up to 1 MiB
                response = await stub.SubmitMessage(streamed, timeout=self._submit_timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            reply = replies.reply_for_submit_error(exc.code(), exc.details() or "")
            return Answer(reply, accepted=False, outcome=exc.code().name.lower())
        accepted = response.result == pb.SUBMIT_RESULT_ACCEPTED and bool(response.message_ids)
        return Answer(
            replies.reply_for_response(response),
            accepted=accepted,
            outcome=pb.SubmitResult.Name(response.result).removeprefix("SUBMIT_RESULT_").lower(),
        )
