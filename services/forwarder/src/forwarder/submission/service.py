"""The forwarder's use cases, free of gRPC and of the API flavor: authenticate a user; submit one message to every
envelope recipient exactly once, however often the client resends it (docs/errors.md, "Exactly once")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from forwarder.api.context import CallContext
from forwarder.api.errors import AccessTokenRejected, ApiCredentialsRejected, ApiMfaRequired, ApiUnavailable
from forwarder.api.interface import CakemailApi, Delivery, Submission
from forwarder.api.model import MessageRef, Session
from forwarder.credentials.principal import AccessToken, PasswordLogin, Principal
from forwarder.credentials.token_cache import TokenCache
from forwarder.delivery import ClaimState, DeliveryRecord, RecipientKey, RecordUnavailable
from forwarder.metrics import ForwarderMetrics
from forwarder.submission.assembly import AssembledMessage
from forwarder.submission.mapping import to_outgoing_email

log = structlog.get_logger(__name__)
T = TypeVar("T")


class DeliveryInFlight(Exception):
    """Another attempt (a concurrent resend, or one on another forwarder) is delivering this recipient right now."""


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    recipient: str
    email_id: str | None = None
    error: Exception | None = None
    # Sent by an earlier attempt of the same message: not sent again.
    already_sent: bool = False


@dataclass(frozen=True, slots=True)
class SubmissionSettings:
    recipient_concurrency: int = 50
    # A lease must outlast the longest attempt; without a caller deadline, this long.
    lease_seconds_without_deadline: float = 120.0
    lease_margin_seconds: float = 10.0


class SubmissionService:
    def __init__(
        self,
        api: CakemailApi,
        record: DeliveryRecord,
        metrics: ForwarderMetrics,
        *,
        token_ttl_cap_seconds: float,
        token_cache_max_entries: int,
        settings: SubmissionSettings | None = None,
    ) -> None:
        self._api = api
        self._record = record
        self._metrics = metrics
        self._settings = settings or SubmissionSettings()
        self._background: set[asyncio.Future[None]] = set()
        self.tokens = TokenCache(
            self._sign_in,
            verify=self._verify_token,
            ttl_cap_seconds=token_ttl_cap_seconds,
            max_entries=token_cache_max_entries,
            metrics=metrics,
        )

    async def _sign_in(self, username: str, password: str, previous: Session | None, request_id: str) -> Session:
        # The sign-in belongs to the cache, not to one caller: no caller's deadline bounds it.
        return await self._api.sign_in(username, password, previous, CallContext(request_id))

    async def _verify_token(self, access_token: str, account_id: str, request_id: str) -> Session:
        # As for a sign-in: the check belongs to the cache, not to one caller.
        return await self._api.verify_token(access_token, account_id, CallContext(request_id))

    async def _session(self, principal: Principal, ctx: CallContext) -> Session:
        if isinstance(principal, AccessToken):
            return await self.tokens.session_for_token(principal.token, principal.account_id, ctx.request_id)
        return await self.tokens.token_for(principal.username, principal.password, ctx.request_id)

    def _forget(self, principal: Principal, attempt: int) -> None:
        """The API said 401 with a cached session: drop it; on the second attempt, give up with the precise error."""
        if isinstance(principal, AccessToken):
            self.tokens.invalidate_token(principal.token, principal.account_id)
            if attempt == 2:
                raise AccessTokenRejected("the access token was refused")
        else:
            self.tokens.invalidate(principal.username, principal.password)

    async def authenticate(self, username: str, password: str, ctx: CallContext) -> Session:
        return await self._session(PasswordLogin(username, password), ctx)

    async def authenticate_principal(self, principal: Principal, ctx: CallContext) -> Session:
        return await self._session(principal, ctx)

    @staticmethod
    def _principal_of(message: AssembledMessage, principal: Principal | None) -> Principal:
        if principal is not None:
            return principal
        credentials = message.start.credentials
        return PasswordLogin(credentials.username, credentials.password)

    async def submit(
        self, message: AssembledMessage, ctx: CallContext, principal: Principal | None = None
    ) -> tuple[RecipientOutcome, ...]:
        """One outcome per envelope recipient. Raises when the message as a whole cannot go (credentials, sender,
        content the API cannot carry): then nothing was sent. `principal`: who the call acts for; by default the
        message's credentials."""
        who = self._principal_of(message, principal)
        email = to_outgoing_email(message)
        ref = MessageRef(message.identity, message.content_digest)
        plan = await self._with_session(who, ctx, lambda session: self._api.prepare(session, email, ref, ctx))
        if len(plan.deliveries) == 1:
            # Most messages make one API call: no task, semaphore or gather for it (docs/performance.md).
            return tuple(await self._deliver(plan, plan.deliveries[0], message, who, ctx))
        slots = asyncio.Semaphore(self._settings.recipient_concurrency)

        async def bounded(delivery: Delivery) -> list[RecipientOutcome]:
            async with slots:
                return await self._deliver(plan, delivery, message, who, ctx)

        results = await asyncio.gather(*(bounded(delivery) for delivery in plan.deliveries))
        return tuple(outcome for batch in results for outcome in batch)

    async def _send(self, delivery: Delivery, who: Principal, ctx: CallContext) -> str:
        return await self._with_session(who, ctx, lambda session: delivery.send(session, ctx))

    async def _with_session(self, who: Principal, ctx: CallContext, call: Callable[[Session], Awaitable[T]]) -> T:
        """Every API call made with a cached session: when the API says 401 the token went stale (revoked, expired
        early), so sign in once more and repeat the call; a second 401 is the caller's to hear."""
        for attempt in (1, 2):
            session = await self._session(who, ctx)
            try:
                return await call(session)
            except ApiMfaRequired:
                raise
            except ApiCredentialsRejected:
                self._forget(who, attempt)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _deliver(
        self, plan: Submission, delivery: Delivery, message: AssembledMessage, who: Principal, ctx: CallContext
    ) -> list[RecipientOutcome]:
        if not plan.needs_record:
            # The API deduplicates this call itself (v1's Idempotency-Key).
            try:
                email_id = await self._send(delivery, who, ctx)
            except Exception as exc:
                return [RecipientOutcome(r, error=exc) for r in delivery.recipients]
            return [RecipientOutcome(r, email_id=email_id) for r in delivery.recipients]
        (recipient,) = delivery.recipients  # a recorded delivery has one recipient (api.interface.Submission)
        return [await self._deliver_once(plan, delivery, recipient, message, who, ctx)]

    def _lease_seconds(self, ctx: CallContext) -> float:
        remaining = ctx.remaining()
        base = self._settings.lease_seconds_without_deadline if remaining is None else max(remaining, 0.0)
        return base + self._settings.lease_margin_seconds

    async def _deliver_once(
        self,
        plan: Submission,
        delivery: Delivery,
        recipient: str,
        message: AssembledMessage,
        who: Principal,
        ctx: CallContext,
    ) -> RecipientOutcome:
        """Claim the recipient in the delivery record, send at most once, record how it ended."""
        key = RecipientKey(plan.account_id, message.identity, recipient)
        try:
            claim = await self._record.claim(key, lease_seconds=self._lease_seconds(ctx))
        except RecordUnavailable as exc:
            return RecipientOutcome(recipient, error=exc)
        if claim.state is ClaimState.SENT:
            return RecipientOutcome(recipient, email_id=claim.email_id, already_sent=True)
        if claim.state is ClaimState.IN_FLIGHT:
            return RecipientOutcome(recipient, error=DeliveryInFlight(f"{recipient}: another attempt is delivering it"))
        if claim.state is ClaimState.AMBIGUOUS:
            settled = await self._settle_ambiguous(delivery, key, claim.since or time.time(), who, ctx)
            if settled is not None:
                return settled
        try:
            email_id = await self._send(delivery, who, ctx)
        except ApiUnavailable as exc:
            if exc.ambiguous:
                self._metrics.ambiguous_submissions.labels("answer_lost").inc()
                await self._quietly(self._record.mark_ambiguous(key, time.time()), "mark_ambiguous")
            else:
                await self._quietly(self._record.release(key), "release")
            return RecipientOutcome(recipient, error=exc)
        except asyncio.CancelledError:
            # The request may be on the wire: a resend must settle it, not send blindly.
            self._metrics.ambiguous_submissions.labels("answer_lost").inc()
            marking = asyncio.ensure_future(
                self._quietly(self._record.mark_ambiguous(key, time.time()), "mark_ambiguous")
            )
            self._background.add(marking)
            marking.add_done_callback(self._background.discard)
            raise
        except Exception as exc:
            await self._quietly(self._record.release(key), "release")
            return RecipientOutcome(recipient, error=exc)
        # Sent: even if the record cannot say so now, the client must hear 250 for this recipient.
        await self._quietly(self._record.mark_sent(key, email_id), "mark_sent")
        return RecipientOutcome(recipient, email_id=email_id)

    async def _settle_ambiguous(
        self, delivery: Delivery, key: RecipientKey, since: float, who: Principal, ctx: CallContext
    ) -> RecipientOutcome | None:
        """A previous attempt's answer was lost: look for it in the API's activity logs before sending again.
        Returns the outcome when settled without sending; None when the caller should send."""
        try:
            found = await self._with_session(who, ctx, lambda session: delivery.find_previous(session, since, ctx))
        except Exception as exc:
            self._metrics.ambiguous_submissions.labels("lookup_failed").inc()
            await self._quietly(self._record.mark_ambiguous(key, since), "mark_ambiguous")
            return RecipientOutcome(key.recipient, error=exc)
        if found is None:
            self._metrics.ambiguous_submissions.labels("not_found").inc()
            log.info("lost answer not found in the activity logs: sending", account_id=key.account_id)
            return None
        self._metrics.ambiguous_submissions.labels("found").inc()
        await self._quietly(self._record.mark_sent(key, found), "mark_sent")
        return RecipientOutcome(key.recipient, email_id=found, already_sent=True)

    @staticmethod
    async def _quietly(operation: Awaitable[None], name: str) -> None:
        try:
            await operation
        except RecordUnavailable as exc:
            log.error("delivery record unavailable after the API call", operation=name, reason=str(exc))
