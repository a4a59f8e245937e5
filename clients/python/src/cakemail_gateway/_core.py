"""The pure half of both clients: request frames, channel options, answers -> results or typed errors."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP

from cakemail_gateway._proto import forwarder_pb2 as pb
from cakemail_gateway.errors import GatewayError, from_judged

SERVICE = "cakemail.gateway.v1.ForwarderService"
SUBMIT_RAW = f"/{SERVICE}/SubmitRawMessage"
AUTHENTICATE = f"/{SERVICE}/Authenticate"
CHUNK_BYTES = 1024 * 1024
ACCEPTED = "ACCEPTED"


@dataclass(frozen=True, slots=True)
class RecipientResult:
    recipient: str
    result: str
    message_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class SendResult:
    """Cakemail accepted the message: its message ids, one per API call, and the per-recipient outcomes."""

    message_ids: tuple[str, ...]
    recipients: tuple[RecipientResult, ...]
    attempts: int


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    email: str


# gRPC metadata of a call authenticated with a Cakemail access token (docs/grpc-api.md, "Authentication").
AUTHORIZATION_KEY = "authorization"
ACCOUNT_ID_KEY = "x-cakemail-account-id"


@dataclass(frozen=True, slots=True)
class Auth:
    """How calls authenticate: a Cakemail user's credentials, or an access token for one account. The secrets stay
    out of repr()."""

    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    account_id: str = ""

    @classmethod
    def of(cls, *, username: str = "", password: str = "", token: str = "", account_id: str = "") -> Auth:
        if token and (username or password):
            raise ValueError("give either username and password, or token and account_id, not both")
        if token and not account_id:
            raise ValueError("an access token needs the account_id it acts for")
        if not token and not username:
            raise ValueError("give username and password, or token and account_id")
        return cls(username, password, token, account_id)

    def credentials(self) -> pb.Credentials:
        return pb.Credentials() if self.token else pb.Credentials(username=self.username, password=self.password)

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        if not self.token:
            return None
        return ((AUTHORIZATION_KEY, f"Bearer {self.token}"), (ACCOUNT_ID_KEY, self.account_id))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries follow the server's RetryInfo: only what it marked retryable, after the delay it gave (capped)."""

    max_attempts: int = 3
    max_delay: float = 30.0

    def delay(self, error: GatewayError, attempt: int, remaining: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if error.retry_after is None or attempt >= self.max_attempts:
            return None
        wait = min(error.retry_after, self.max_delay)
        if remaining is not None and wait >= remaining:
            return None
        return wait


def channel_options(lb_policy: str = "round_robin") -> list[tuple[str, str | int]]:
    """Load balancing over every address the target resolves to (dns:///headless-service:50051), no gRPC-level
    retries (this client retries on RetryInfo), and the server's 4 MiB message ceiling."""
    return [
        ("grpc.service_config", json.dumps({"loadBalancingConfig": [{lb_policy: {}}]})),
        ("grpc.lb_policy_name", lb_policy),
        ("grpc.enable_retries", 0),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ]


def message_bytes(message: EmailMessage) -> bytes:
    """The message as it would go over SMTP: CRLF line ends, 7-bit-safe where the policy can make it so."""
    return message.as_bytes(policy=SMTP)


def raw_frames(
    raw: bytes, *, auth: Auth, sender: str, recipients: Sequence[str]
) -> Iterator[pb.SubmitRawMessageRequest]:
    start = pb.RawMessageStart(
        credentials=auth.credentials(),
        envelope=pb.Envelope(mail_from=sender, rcpt_tos=list(recipients)),
        data=raw[:CHUNK_BYTES],
    )
    yield pb.SubmitRawMessageRequest(start=start)
    for offset in range(CHUNK_BYTES, len(raw), CHUNK_BYTES):
        yield pb.SubmitRawMessageRequest(chunk=pb.RawMessageChunk(data=raw[offset : offset + CHUNK_BYTES]))


def result_of(response: pb.SubmitRawMessageResponse, attempts: int) -> SendResult:
    """An accepted response -> SendResult; anything else -> the typed error (raised)."""
    result = pb.SubmitResult.Name(response.result).removeprefix("SUBMIT_RESULT_")
    recipients = tuple(
        RecipientResult(
            r.recipient, pb.SubmitResult.Name(r.result).removeprefix("SUBMIT_RESULT_"), r.message_id, r.detail
        )
        for r in response.recipients
    )
    if result == ACCEPTED and response.message_ids:
        return SendResult(tuple(response.message_ids), recipients, attempts)
    raise from_judged(result, response.detail, list(response.details))
