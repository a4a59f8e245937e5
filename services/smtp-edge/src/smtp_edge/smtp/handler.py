"""aiosmtpd handler: the transaction hooks (EHLO, MAIL, RCPT, DATA), each returning its SMTP reply."""

from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiosmtpd.smtp import AuthResult, Envelope

from gateway_mime import AttachmentTooLarge, MessageRejected, ParsedMessage
from gateway_mime.frames import HeadersTooLarge, SmtpEnvelope, submission_frames
from gateway_mime.submission import read_submission
from smtp_edge.forwarding.client import Answer, ForwarderClient
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.policy.message_rates import MessageRateLimiter
from smtp_edge.smtp import replies
from smtp_edge.smtp.auth import SaslAuthenticator
from smtp_edge.smtp.data_budget import DataBudget, declared_size
from smtp_edge.smtp.parse_pool import ParsePool, ParseWorkerLost
from smtp_edge.smtp.session import GatewaySession

log = structlog.get_logger(__name__)


# A small message's parse cost grows with its multipart nesting: 0.6 ms for an ordinary 3-level message, 12.5 ms for
# 60 levels in 6.8 KB (under PARSE_IN_PROCESS_BYTES), on the event loop every session shares. More boundaries than
# this send a small message to the parse worker too (docs/security.md, "Resource exhaustion", item 3).
MULTIPART_BOUNDARIES_ON_LOOP = 10


def many_multiparts(raw: bytes) -> bool:
    """More `boundary=` parameters than an ordinary message has (case-insensitive, as MIME parameter names are)."""
    return raw.lower().count(b"boundary=") > MULTIPART_BOUNDARIES_ON_LOOP


@dataclass(frozen=True, slots=True)
class TransactionLimits:
    max_recipients: int
    max_attachment_bytes: int
    parse_in_thread_bytes: int
    parse_in_process_bytes: int
    message_id_domain: str


NULL_SENDER = "<>"
NO_SENDER = replies.NO_SENDER


def plausible_address(address: str) -> bool:
    """A mailbox we can hand to the API: local@domain, no spaces or controls (UTF-8 allowed: SMTPUTF8)."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 254:
        return False
    return not any(ch.isspace() or ord(ch) < 32 or ch in "<>" for ch in address)


class GatewayHandler:
    def __init__(
        self,
        forwarder: ForwarderClient,
        authenticator: SaslAuthenticator,
        limits: TransactionLimits,
        metrics: EdgeMetrics,
        rates: MessageRateLimiter,
        parse_pool: ParsePool | None = None,
    ) -> None:
        self._parse_pool = parse_pool
        self._forwarder = forwarder
        self._authenticator = authenticator
        self._limits = limits
        self._rates = rates
        self._metrics = metrics
        self.transactions_in_flight = 0

    async def handle_EHLO(
        self, server: Any, session: GatewaySession, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # PIPELINING and ENHANCEDSTATUSCODES: aiosmtpd implements both but does not announce them. HELP (aiosmtpd's
        # last line) only where it is accepted: not before STARTTLS (smtp/help.py).
        lines = [line[4:] for line in responses if line[4:] != "HELP"]
        lines += ["PIPELINING", "ENHANCEDSTATUSCODES", *(["HELP"] if server.state.tls else [])]
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._authenticator.plain(server, args)

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._authenticator.login(server, args)

    async def handle_VRFY(self, server: Any, session: GatewaySession, envelope: Envelope, address: str) -> str:
        # RFC 5321 3.5.3: a submission server need not disclose mailboxes; 252 says "send it anyway".
        return replies.VRFY

    async def handle_PROXY(self, server: Any, session: GatewaySession, envelope: Envelope, proxy_data: Any) -> bool:
        # Any well-formed PROXY header is accepted; the admission policies then judge the real client IP.
        return bool(proxy_data and proxy_data.valid)

    async def handle_MAIL(
        self, server: Any, session: GatewaySession, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # "<>" is the null reverse-path (RFC 5321 4.5.5): legal, e.g. for auto-replies, and kept as "<>" here
        # because aiosmtpd reads an empty mail_from as "no MAIL yet".
        if address != NULL_SENDER and not plausible_address(address):
            return replies.BAD_SENDER
        # A declared size that does not fit the bytes in flight budget now: the client keeps the message and
        # retries (smtp/data_budget.py); judged before the rate limits, so the refusal costs no transaction.
        budget: DataBudget | None = getattr(server, "data_budget", None)
        declared = declared_size(options)
        if budget is not None and declared is not None and declared > budget.free:
            log.info("transaction refused: bytes in flight budget", declared=declared, free=budget.free)
            self._metrics.policy_refusals.labels("data_budget").inc()
            return replies.INSUFFICIENT_RESOURCES
        # The rate limits are judged here, before the client sends the message: over a limit, it keeps it.
        username = session.credentials.username if session.credentials is not None else None
        refusal = await self._rates.admit_transaction(server.client_ip, username)
        if refusal is not None:
            log.info("transaction refused", reply=refusal.reply, policy=refusal.policy)
            self._metrics.policy_refusals.labels(refusal.policy).inc()
            return refusal.reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return replies.SENDER_OK

    async def handle_RCPT(
        self, server: Any, session: GatewaySession, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not plausible_address(address):
            return replies.BAD_RECIPIENT
        if len(envelope.rcpt_tos) >= self._limits.max_recipients:
            return replies.TOO_MANY_RECIPIENTS.format(limit=self._limits.max_recipients)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: Any, session: GatewaySession, envelope: Envelope) -> str:
        """The DATA reply (counted in smtp_messages_total by the protocol, with the refusals made before this)."""
        session.messages += 1
        self.transactions_in_flight += 1
        try:
            return await self._handle_message(session, envelope)
        finally:
            self.transactions_in_flight -= 1

    async def _handle_message(self, session: GatewaySession, envelope: Envelope) -> str:
        raw: bytes = envelope.original_content or b""
        # The envelope is dropped after DATA anyway; until then, only `raw` may hold the message bytes.
        envelope.content = envelope.original_content = None
        size = len(raw)
        self._metrics.email_size.observe(size)
        if session.credentials is None:  # auth_required makes this unreachable; never forward anonymously
            return replies.AUTH_REQUIRED
        smtp_envelope = SmtpEnvelope(
            mail_from="" if envelope.mail_from == NULL_SENDER else envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
        )
        try:
            parsed, identity, parse_pid = await self._parse(raw, smtp_envelope.mail_from)
        except MessageRejected as rejected:
            log.info("message refused by the parser", reason=rejected.reason)
            refusal = (
                replies.ATTACHMENT_TOO_LARGE if isinstance(rejected, AttachmentTooLarge) else replies.MESSAGE_REFUSED
            )
            return refusal.format(reason=replies.safe_text(rejected.reason) or "Message refused")
        except ParseWorkerLost:
            log.error("message not parsed: its parse worker died; the client will send it again")
            return replies.TEMPORARY_FAILURE
        except Exception:
            log.exception("message could not be parsed")
            return replies.TEMPORARY_FAILURE
        del raw  # while forwarding takes its time, only the parsed form is held
        if parsed.defects:
            log.info("message has MIME defects", defects=list(parsed.defects))
        if envelope.mail_from == NULL_SENDER and parsed.from_ is None:
            # Said here in the client's terms; the forwarder would name its own fields (headers.from, ...).
            return NO_SENDER
        try:
            frames = submission_frames(parsed, smtp_envelope, session.credentials, message_identity=identity)
        except HeadersTooLarge as too_large:
            return replies.HEADERS_TOO_LARGE.format(limit=too_large.limit)
        del parsed  # the frames hold what is still to be sent, and let go of each part once it is
        started = time.perf_counter()
        # Shielded: a client that hangs up must not cancel a submission the API may already have accepted.
        forwarding = asyncio.ensure_future(self._forwarder.submit(frames, correlation_id=session.correlation_id))
        try:
            answer = await asyncio.shield(forwarding)
        except asyncio.CancelledError:
            log.warning("client disconnected while its message was being forwarded")
            forwarding.add_done_callback(self._account_abandoned)
            raise
        self._metrics.forward_latency.observe(time.perf_counter() - started)
        self._metrics.forwarded(answer.accepted)
        log.info(
            "message forwarded",
            reply=answer.reply,
            outcome=answer.outcome,
            recipients=len(envelope.rcpt_tos),
            size=size,
            **({"parse_pid": parse_pid} if parse_pid is not None else {}),
        )
        return answer.reply

    def _account_abandoned(self, forwarding: asyncio.Future[Answer]) -> None:
        failed = forwarding.cancelled() or forwarding.exception() is not None
        outcome = "error" if failed else forwarding.result().outcome
        self._metrics.forwarded(not failed and forwarding.result().accepted)
        self._metrics.client_gone_during_forward.labels(outcome).inc()
        log.warning("forwarding finished after the client disconnected", outcome=outcome)

    async def _parse(self, raw: bytes, mail_from: str) -> tuple[ParsedMessage, str, int | None]:
        """The parsed message and its identity, taken from what the client sent so that its resend is the same
        message (docs/mapping.md, "Message identity"), and the pid of the worker process that parsed it, if one did."""
        # A message without Message-ID gets one derived from its identity, the same on every resend.
        limit = self._limits.max_attachment_bytes
        domain = self._limits.message_id_domain
        if self._parse_pool is not None and (len(raw) > self._limits.parse_in_process_bytes or many_multiparts(raw)):
            # Parsed in a worker process: its CPU does not hold this process's GIL (docs/security.md, item 3).
            return await self._parse_pool.parse(raw, mail_from, max_attachment_bytes=limit, message_id_domain=domain)
        if len(raw) > self._limits.parse_in_thread_bytes:
            # Large messages are parsed (and hashed) off the event loop so other sessions keep flowing (aiosmtpd #293).
            parsed, identity = await asyncio.to_thread(
                read_submission, raw, mail_from, max_attachment_bytes=limit, message_id_domain=domain
            )
        else:
            parsed, identity = read_submission(raw, mail_from, max_attachment_bytes=limit, message_id_domain=domain)
        return parsed, identity, None


# aiosmtpd reads handle_EHLO's signature on every connection, to tell its 4- and 5-argument forms apart: ~50 us
# when inspect builds it from the code object, a few when the function carries it (inspect's own protocol).
GatewayHandler.handle_EHLO.__signature__ = inspect.signature(GatewayHandler.handle_EHLO)  # type: ignore[attr-defined]
