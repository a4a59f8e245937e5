"""The v2 flavor over HTTP: the real Cakemail API. One POST /v2/emails per recipient; no idempotency key, so the
submission's delivery record (forwarder.delivery) is what stops a resend from sending twice (needs_record)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from forwarder.api.context import CallContext
from forwarder.api.errors import (
    AccessTokenRejected,
    AccountForbidden,
    ApiCredentialsRejected,
    ApiRejected,
    ApiUnavailable,
    Rejection,
    SenderNotConfirmed,
)
from forwarder.api.http import ApiResponse, HttpTransport
from forwarder.api.interface import Submission
from forwarder.api.model import MessageRef, OutgoingEmail, Session
from forwarder.api.v2 import wire
from forwarder.api.v2.senders import SenderDirectory
from forwarder.resilience.pipeline import ApiPipeline

# Bounds on paging: an account with more senders, or a lookup window with more log entries, is not plausible.
_MAX_SENDER_PAGES = 200
_MAX_LOG_PAGES = 20


@dataclass(frozen=True, slots=True)
class V2Options:
    default_api_type: str = "transactional"
    default_list_id: int | None = None
    sender_cache_ttl_seconds: float = 300.0
    sender_cache_max_entries: int = 10_000
    # How far around the lost attempt the activity logs are searched (the attempt ran at most the API timeout).
    lookup_window_seconds: float = 60.0


async def _chunks(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _bearer(session: Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {session.access_token}"}


class V2Client:
    """The raw v2 calls: typed results in, typed errors out (classified in wire.classify)."""

    def __init__(self, transport: HttpTransport) -> None:
        self._transport = transport

    @staticmethod
    def _checked(route: str, response: ApiResponse) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = wire.classify(route, response.status_code, response.headers.get("Retry-After"), body)
        if error is not None:
            raise error
        return body

    async def token(self, form: dict[str, str], username: str, ctx: CallContext) -> Session:
        response = await self._transport.request("POST", wire.TOKEN_PATH, ctx, retry_lost_answers=True, data=form)
        body = self._checked("auth", response)
        try:
            return wire.parse_token(body, username)
        except ValueError as exc:
            raise ApiUnavailable(f"unreadable token response: {exc}") from exc

    async def senders_page(
        self, session: Session, account: str | None, page: int, ctx: CallContext, *, per_page: int = 0
    ) -> list[wire.Sender]:
        params: dict[str, Any] = {"page": page, "per_page": per_page or wire.SENDERS_PER_PAGE}
        if account is not None:
            params["account_id"] = account
        response = await self._transport.request(
            "GET", wire.SENDERS_PATH, ctx, retry_lost_answers=True, params=params, headers=_bearer(session)
        )
        try:
            return wire.parse_senders_page(self._checked("senders", response))
        except ValueError as exc:
            raise ApiUnavailable(f"unreadable senders response: {exc}") from exc

    async def send(
        self, session: Session, account: str | None, body: wire.SharedBody, recipient: str, ctx: CallContext
    ) -> str:
        length, pieces = body.for_recipient(recipient)
        # Without attachments the body is a few KB: one bytes object, written at once, costs less per recipient
        # than aiohttp's streamed payload (a write per piece). The bytes on the wire are the same.
        content: bytes | AsyncIterator[bytes] = b"".join(pieces) if not body.attachments else _chunks(pieces)
        response = await self._transport.request(
            "POST",
            wire.EMAILS_PATH,
            ctx,
            retry_lost_answers=False,
            params={"account_id": account} if account is not None else None,
            content=content,
            headers={**_bearer(session), "Content-Type": "application/json", "Content-Length": str(length)},
        )
        answer = self._checked("emails", response)
        try:
            return wire.parse_submit_answer(answer)
        except ValueError as exc:
            # The API answered 2xx: it may well have queued the email; only the record can tell a resend.
            raise ApiUnavailable(f"unreadable email response: {exc}", ambiguous=True) from exc

    async def logs_page(
        self, session: Session, account: str | None, window: tuple[int, int], page: int, ctx: CallContext
    ) -> Any:
        params: dict[str, Any] = {
            "start_time": window[0],
            "end_time": window[1],
            "page": page,
            "per_page": wire.LOGS_PER_PAGE,
        }
        if account is not None:
            params["account_id"] = account
        response = await self._transport.request(
            "GET", wire.LOGS_PATH, ctx, retry_lost_answers=True, params=params, headers=_bearer(session)
        )
        return self._checked("logs", response)


@dataclass(frozen=True, slots=True)
class _OneRecipient:
    client: V2Client
    pipeline: ApiPipeline
    account: str | None
    body: wire.SharedBody
    recipient: str
    subject: str
    lookup_window: float

    @property
    def recipients(self) -> tuple[str, ...]:
        return (self.recipient,)

    async def send(self, session: Session, ctx: CallContext) -> str:
        return await self.pipeline.run(
            "emails", lambda call_ctx: self.client.send(session, self.account, self.body, self.recipient, call_ctx), ctx
        )

    async def find_previous(self, session: Session, since: float, ctx: CallContext) -> str | None:
        """Searches GET /v2/logs/emails around `since` for this recipient and subject (docs/errors.md, ambiguous)."""
        window = (max(1, int(since - self.lookup_window)), int(since + self.lookup_window) + 1)
        events: list[tuple[str, str]] = []
        for page in range(1, _MAX_LOG_PAGES + 1):
            body = await self.pipeline.run(
                "logs",
                functools.partial(self.client.logs_page, session, self.account, window, page),
                ctx,
            )
            try:
                found = wire.logs_page(body, recipient=self.recipient, subject=self.subject)
            except ValueError as exc:
                raise ApiUnavailable(f"unreadable logs response: {exc}") from exc
            events.extend(found.events)
            if not found.has_more:
                return wire.taken_email_id(events)
        raise ApiUnavailable("activity logs too long to settle a lost answer")


class V2Api:
    def __init__(self, transport: HttpTransport, pipeline: ApiPipeline, options: V2Options) -> None:
        self._transport = transport
        self._client = V2Client(transport)
        self._pipeline = pipeline
        self._options = options
        self._senders = SenderDirectory(
            ttl_seconds=options.sender_cache_ttl_seconds, max_entries=options.sender_cache_max_entries
        )

    async def sign_in(self, username: str, password: str, previous: Session | None, ctx: CallContext) -> Session:
        if previous is not None and previous.refresh_token:
            form = wire.refresh_form(previous.refresh_token)
            try:
                refreshed = await self._pipeline.run("auth", lambda c: self._client.token(form, username, c), ctx)
            except (ApiCredentialsRejected, ApiRejected):
                pass  # the refresh token expired or was revoked: the password decides
            else:
                # A refresh answer may leave out what the password grant said; keep what it does not repeat.
                return Session(
                    access_token=refreshed.access_token,
                    accounts=refreshed.accounts or previous.accounts,
                    email=username,
                    expires_in=refreshed.expires_in,
                    refresh_token=refreshed.refresh_token or previous.refresh_token,
                )
        form = wire.token_form(username, password)
        return await self._pipeline.run("auth", lambda c: self._client.token(form, username, c), ctx)

    async def verify_token(self, access_token: str, account_id: str, ctx: CallContext) -> Session:
        """The smallest bearer call that names the account: one sender of its list. 401: the token is not valid;
        403: valid, but not for this account. The session then names that account on every call."""
        session = Session(
            access_token=access_token, accounts=(account_id,), email="", expires_in=0, pinned_account=True
        )
        try:
            await self._pipeline.run(
                "senders", functools.partial(self._client.senders_page, session, account_id, 1, per_page=1), ctx
            )
        except ApiCredentialsRejected as exc:
            raise AccessTokenRejected("the access token was refused") from exc
        except ApiRejected as exc:
            if exc.kind is Rejection.FORBIDDEN:
                raise AccountForbidden(account_id) from exc
            raise
        return session

    async def _all_senders(self, session: Session, account: str | None, ctx: CallContext) -> tuple[wire.Sender, ...]:
        senders: list[wire.Sender] = []
        for page in range(1, _MAX_SENDER_PAGES + 1):
            batch = await self._pipeline.run(
                "senders", functools.partial(self._client.senders_page, session, account, page), ctx
            )
            senders.extend(batch)
            if len(batch) < wire.SENDERS_PER_PAGE:
                break
        return tuple(senders)

    async def _sender(
        self,
        session: Session,
        account: str,
        explicit: bool,
        email: OutgoingEmail,
        sender_id: str | None,
        ctx: CallContext,
    ) -> wire.Sender:
        def fetch() -> Any:
            return self._all_senders(session, account if explicit else None, ctx)

        def pick(senders: tuple[wire.Sender, ...]) -> wire.Sender | None:
            for sender in senders:
                if sender_id is not None and sender.id == sender_id and sender.confirmed:
                    return sender
                if sender_id is None and sender.email.strip().lower() == address and sender.confirmed:
                    return sender
            return None

        address = email.sender.email.strip().lower()
        found = pick(await self._senders.senders(account, fetch))
        if found is None:
            # Perhaps confirmed since the list was cached: look once more before refusing.
            self._senders.forget(account)
            found = pick(await self._senders.senders(account, fetch))
        if found is not None:
            return found
        if sender_id is not None:
            why = f"header X-Sender-Id: {sender_id!r} is not a confirmed sender of account {account}"
        else:
            why = f"{email.sender.email} is not a confirmed sender of account {account}"
        raise SenderNotConfirmed(why, sender=email.sender.email, account=str(account))

    async def prepare(
        self, session: Session, email: OutgoingEmail, message: MessageRef, ctx: CallContext
    ) -> Submission:
        controls = wire.read_controls(email.headers)
        attachments = tuple(wire.api_attachment(a, i) for i, a in enumerate(email.attachments))
        # A checked access token acts for the account it was checked for: always named, never the token's default.
        explicit = controls.account_id is not None or session.pinned_account
        account = controls.account_id or session.account_id
        if explicit and account not in session.accounts:
            raise ApiRejected(
                Rejection.FORBIDDEN, f"header X-Account-Id: account {account} is not one this user may act for"
            )
        sender = await self._sender(session, account, explicit, email, controls.sender_id, ctx)
        head = wire.email_payload(
            email,
            sender=sender,
            controls=controls,
            attachments=(),
            default_api_type=self._options.default_api_type,
            default_list_id=self._options.default_list_id,
        )
        body = wire.SharedBody.build(head, attachments)
        subject = head["content"]["subject"]
        return Submission(
            account_id=account,
            deliveries=tuple(
                _OneRecipient(
                    self._client,
                    self._pipeline,
                    account if explicit else None,
                    body,
                    recipient,
                    subject,
                    self._options.lookup_window_seconds,
                )
                for recipient in email.recipients
            ),
            needs_record=True,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()
