"""The v1 flavor over HTTP: one call per message, deduplicated by the API itself through an Idempotency-Key."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from forwarder.api.context import CallContext
from forwarder.api.errors import ApiUnavailable, TokenAuthUnsupported
from forwarder.api.http import ApiResponse, HttpTransport, json_body
from forwarder.api.interface import Submission
from forwarder.api.model import MessageRef, OutgoingEmail, Session
from forwarder.api.v1 import wire
from forwarder.resilience.pipeline import ApiPipeline


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def idempotency_key(identity: str, content_digest: str) -> str:
    """The same message (identity) with the same content and recipients gets the same key on every resend."""
    return "gw1-" + hashlib.sha256(f"{identity}\0{content_digest}".encode("utf-8", "surrogatepass")).hexdigest()


class V1Client:
    """The raw v1 calls: typed results in, typed errors out (classified in wire.classify)."""

    def __init__(self, transport: HttpTransport) -> None:
        self._transport = transport

    def _checked(self, path: str, response: ApiResponse) -> ApiResponse:
        try:
            body = response.json() if response.status_code >= 400 else None
        except ValueError:
            body = None
        error = wire.classify(path, response.status_code, response.headers.get("Retry-After"), body)
        if error is not None:
            raise error
        return response

    async def validate_credentials(self, username: str, password: str, ctx: CallContext) -> Session:
        response = await self._transport.request(
            "POST",
            wire.AUTH_PATH,
            ctx,
            retry_lost_answers=True,
            json=wire.credentials_payload(username, password),
        )
        try:
            return wire.parse_token(json_body(self._checked(wire.AUTH_PATH, response)))
        except ValueError as exc:
            raise ApiUnavailable(f"unreadable auth response: {exc}") from exc

    async def send_email(self, api_key: str, email: OutgoingEmail, *, idempotency_key: str, ctx: CallContext) -> str:
        """Returns the Cakemail message id."""
        body = wire.email_body(email)
        response = await self._transport.request(
            "POST",
            wire.EMAILS_PATH,
            ctx,
            retry_lost_answers=True,
            content=_async_chunks(body.chunks()),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Content-Length": str(body.length),
                wire.IDEMPOTENCY_HEADER: idempotency_key,
            },
        )
        try:
            return wire.parse_message_id(json_body(self._checked(wire.EMAILS_PATH, response)))
        except ValueError as exc:
            raise ApiUnavailable(f"unreadable email response: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _WholeMessage:
    client: V1Client
    pipeline: ApiPipeline
    email: OutgoingEmail
    idempotency_key: str

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.email.recipients

    async def send(self, session: Session, ctx: CallContext) -> str:
        return await self.pipeline.run(
            "emails",
            lambda call_ctx: self.client.send_email(
                session.access_token, self.email, idempotency_key=self.idempotency_key, ctx=call_ctx
            ),
            ctx,
        )

    async def find_previous(self, session: Session, since: float, ctx: CallContext) -> str | None:
        return None  # never asked: the API's idempotency key settles a lost answer


class V1Api:
    def __init__(self, transport: HttpTransport, pipeline: ApiPipeline) -> None:
        self._transport = transport
        self._client = V1Client(transport)
        self._pipeline = pipeline

    async def sign_in(self, username: str, password: str, previous: Session | None, ctx: CallContext) -> Session:
        return await self._pipeline.run(
            "auth", lambda call_ctx: self._client.validate_credentials(username, password, call_ctx), ctx
        )

    async def verify_token(self, access_token: str, account_id: str, ctx: CallContext) -> Session:
        # v1 has no call that checks a token without sending: only credentials can sign in.
        raise TokenAuthUnsupported("v1")

    async def prepare(
        self, session: Session, email: OutgoingEmail, message: MessageRef, ctx: CallContext
    ) -> Submission:
        key = idempotency_key(message.identity, message.content_digest)
        return Submission(
            account_id=session.account_id,
            deliveries=(_WholeMessage(self._client, self._pipeline, email, key),),
            needs_record=False,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()
