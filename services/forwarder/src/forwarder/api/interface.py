"""The one interface of the Cakemail API inside the forwarder; each flavor (v1, v2) implements it.

Nothing outside forwarder.api knows which flavor runs: submission/ signs in, prepares a message, and sends the
deliveries the flavor planned (one call for every recipient, or one call per recipient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from forwarder.api.context import CallContext
from forwarder.api.model import MessageRef, OutgoingEmail, Session


class Delivery(Protocol):
    """One API call that delivers the message to `recipients`."""

    @property
    def recipients(self) -> tuple[str, ...]: ...

    async def send(self, session: Session, ctx: CallContext) -> str:
        """Returns the Cakemail id of the accepted email; raises an ApiError otherwise."""
        ...

    async def find_previous(self, session: Session, since: float, ctx: CallContext) -> str | None:
        """The id of an email an earlier attempt (whose answer was lost at wall-clock `since`) got queued, if any."""
        ...


@dataclass(frozen=True, slots=True)
class Submission:
    account_id: str
    deliveries: tuple[Delivery, ...]
    # True when the API has no idempotency key: only the gateway's delivery record stops a resend from sending again.
    # Then every delivery has exactly one recipient (the record is kept per recipient).
    needs_record: bool


class CakemailApi(Protocol):
    async def sign_in(self, username: str, password: str, previous: Session | None, ctx: CallContext) -> Session:
        """A new session; `previous` (expired or about to) may be refreshed instead of sending the password again."""
        ...

    async def verify_token(self, access_token: str, account_id: str, ctx: CallContext) -> Session:
        """A session for a direct caller's Cakemail access token, checked with the API for `account_id`: raises
        AccessTokenRejected (401), AccountForbidden (403), or TokenAuthUnsupported when the flavor cannot check
        tokens."""
        ...

    async def prepare(
        self, session: Session, email: OutgoingEmail, message: MessageRef, ctx: CallContext
    ) -> Submission:
        """Check the message against the API's rules (may call the API) and plan its deliveries."""
        ...

    async def aclose(self) -> None: ...
