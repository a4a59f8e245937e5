"""GatewayClient (blocking) and AsyncGatewayClient (asyncio): send an EmailMessage or raw RFC 5322 bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import grpc

from cakemail_gateway._core import (
    AUTHENTICATE,
    SUBMIT_RAW,
    Account,
    Auth,
    RetryPolicy,
    SendResult,
    channel_options,
    message_bytes,
    raw_frames,
    result_of,
)
from cakemail_gateway._proto import forwarder_pb2 as pb
from cakemail_gateway.errors import GatewayError, from_rpc_error


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """PEM bytes: the CA that signed the forwarder's certificate, and optionally this client's own (mTLS)."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)


@dataclass(frozen=True, slots=True)
class _Settings:
    target: str
    auth: Auth
    timeout: float
    retry: RetryPolicy
    tls: TlsConfig | None
    lb_policy: str


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


class GatewayClient:
    """Blocking client. `target` is a gRPC target: host:port, or dns:///forwarder-headless:50051 to spread calls
    over every forwarder (round_robin). `timeout` bounds each send, retries included. Authenticate with a Cakemail
    user's `username` and `password`, or with a Cakemail access `token` and the `account_id` it acts for."""

    def __init__(
        self,
        target: str,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        account_id: str = "",
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        tls: TlsConfig | None = None,
        lb_policy: str = "round_robin",
    ) -> None:
        auth = Auth.of(username=username, password=password, token=token, account_id=account_id)
        self._settings = _Settings(target, auth, timeout, retry or RetryPolicy(), tls, lb_policy)
        options = channel_options(lb_policy)
        self._channel = (
            grpc.secure_channel(target, tls.credentials(), options=options)
            if tls
            else grpc.insecure_channel(target, options=options)
        )
        self._submit = self._channel.stream_unary(
            SUBMIT_RAW,
            request_serializer=pb.SubmitRawMessageRequest.SerializeToString,
            response_deserializer=pb.SubmitRawMessageResponse.FromString,
        )
        self._authenticate = self._channel.unary_unary(
            AUTHENTICATE,
            request_serializer=pb.AuthenticateRequest.SerializeToString,
            response_deserializer=pb.AuthenticateResponse.FromString,
        )

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def authenticate(self, *, timeout: float | None = None) -> Account:
        auth = self._settings.auth
        request = pb.AuthenticateRequest(credentials=auth.credentials())
        try:
            answer = self._authenticate(request, timeout=timeout or self._settings.timeout, metadata=auth.metadata())
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Account(answer.account_id, answer.email)

    def send(
        self,
        message: EmailMessage,
        *,
        sender: str,
        recipients: Sequence[str],
        timeout: float | None = None,
    ) -> SendResult:
        """Send a message built with the email package; the envelope (sender, recipients) decides delivery."""
        return self.send_raw(message_bytes(message), sender=sender, recipients=recipients, timeout=timeout)

    def send_raw(
        self, raw: bytes, *, sender: str, recipients: Sequence[str], timeout: float | None = None
    ) -> SendResult:
        """Send RFC 5322 bytes as they are; retried while the server says retrying may help, within `timeout`."""
        settings = self._settings
        deadline = time.monotonic() + (timeout or settings.timeout)
        attempt = 0
        while True:
            attempt += 1
            frames = raw_frames(raw, auth=settings.auth, sender=sender, recipients=recipients)
            try:
                try:
                    response = self._submit(
                        frames, timeout=max(_remaining(deadline), 0.001), metadata=settings.auth.metadata()
                    )
                except grpc.RpcError as exc:
                    raise from_rpc_error(exc) from None
                return result_of(response, attempt)
            except GatewayError as error:
                wait = settings.retry.delay(error, attempt, _remaining(deadline))
                if wait is None:
                    raise
                time.sleep(wait)


class AsyncGatewayClient:
    """The asyncio flavor of GatewayClient (grpc.aio); the same arguments and behaviour."""

    def __init__(
        self,
        target: str,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        account_id: str = "",
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        tls: TlsConfig | None = None,
        lb_policy: str = "round_robin",
    ) -> None:
        auth = Auth.of(username=username, password=password, token=token, account_id=account_id)
        self._settings = _Settings(target, auth, timeout, retry or RetryPolicy(), tls, lb_policy)
        options = channel_options(lb_policy)
        self._channel = (
            grpc.aio.secure_channel(target, tls.credentials(), options=options)
            if tls
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._submit = self._channel.stream_unary(
            SUBMIT_RAW,
            request_serializer=pb.SubmitRawMessageRequest.SerializeToString,
            response_deserializer=pb.SubmitRawMessageResponse.FromString,
        )
        self._authenticate = self._channel.unary_unary(
            AUTHENTICATE,
            request_serializer=pb.AuthenticateRequest.SerializeToString,
            response_deserializer=pb.AuthenticateResponse.FromString,
        )

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def authenticate(self, *, timeout: float | None = None) -> Account:
        auth = self._settings.auth
        request = pb.AuthenticateRequest(credentials=auth.credentials())
        try:
            answer = await self._authenticate(
                request, timeout=timeout or self._settings.timeout, metadata=auth.metadata()
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return Account(answer.account_id, answer.email)

    async def send(
        self,
        message: EmailMessage,
        *,
        sender: str,
        recipients: Sequence[str],
        timeout: float | None = None,
    ) -> SendResult:
        return await self.send_raw(message_bytes(message), sender=sender, recipients=recipients, timeout=timeout)

    async def send_raw(
        self, raw: bytes, *, sender: str, recipients: Sequence[str], timeout: float | None = None
    ) -> SendResult:
        settings = self._settings
        deadline = time.monotonic() + (timeout or settings.timeout)
        attempt = 0
        while True:
            attempt += 1
            frames = raw_frames(raw, auth=settings.auth, sender=sender, recipients=recipients)
            try:
                try:
                    response = await self._submit(
                        frames, timeout=max(_remaining(deadline), 0.001), metadata=settings.auth.metadata()
                    )
                except grpc.RpcError as exc:
                    raise from_rpc_error(exc) from None
                return result_of(response, attempt)
            except GatewayError as error:
                wait = settings.retry.delay(error, attempt, _remaining(deadline))
                if wait is None:
                    raise
                await asyncio.sleep(wait)
