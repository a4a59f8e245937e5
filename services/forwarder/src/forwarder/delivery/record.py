"""The delivery record's contract (docs/architecture.md): one entry per (account, message, recipient).

The Cakemail API takes one recipient per call and has no idempotency key, so the forwarder itself remembers what it
handed over. A claim gives the caller an exclusive lease on one recipient of one message; the caller then records how
the attempt ended. Every backend keeps the same semantics; the tests run one table against all of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RecipientKey:
    account_id: str
    message_identity: str  # the client's Message-ID, else a digest of what the client sent
    recipient: str  # folded here: stripped, lower-cased, so "Bob@X.org " and "bob@x.org" are one recipient
    # Made once with the key: a delivery asks for it at least twice (claim, then mark_sent), once per recipient.
    _digest: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipient", fold_recipient(self.recipient))
        material = json.dumps([self.account_id, self.message_identity, self.recipient])  # ASCII, surrogates escaped
        object.__setattr__(self, "_digest", hashlib.sha256(material.encode("ascii")).hexdigest())

    def digest(self) -> str:
        """A stable, unambiguous hash of the key: what the stores keep instead of addresses in clear."""
        return self._digest


def fold_recipient(address: str) -> str:
    return address.strip().lower()


class ClaimState(Enum):
    ACQUIRED = "acquired"  # caller holds an exclusive lease: send, then mark_sent / mark_ambiguous / release
    SENT = "sent"  # already queued by the API earlier: do not send; email_id tells which
    IN_FLIGHT = "in_flight"  # another attempt holds the lease right now: answer temporary failure
    AMBIGUOUS = "ambiguous"  # a previous attempt got no answer (at `since`); the caller ALSO holds the lease now and
    # must settle it (e.g. look up /v2/logs/emails) before sending


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    email_id: str | None = None  # for SENT
    since: float | None = None  # for AMBIGUOUS: wall-clock time of the attempt whose answer was lost


class RecordUnavailable(Exception):
    """The store (Redis) cannot be reached: the submission fails CLOSED (451), the client keeps the message."""


class DeliveryRecord(Protocol):
    async def claim(self, key: RecipientKey, *, lease_seconds: float) -> Claim:
        """Take the recipient's lease unless it was sent or another attempt holds it.

        lease_seconds must outlast the longest attempt (API timeouts included): an expired lease lets a second
        attempt in while the first may still be sending.
        """
        ...

    async def mark_sent(self, key: RecipientKey, email_id: str) -> None:
        """The API queued it: kept as SENT for the retention window; frees the lease."""
        ...

    async def mark_ambiguous(self, key: RecipientKey, at: float) -> None:
        """The attempt got no answer: kept as AMBIGUOUS for the retention window (never over SENT); frees the lease."""
        ...

    async def release(self, key: RecipientKey) -> None:
        """Definite failure, nothing was queued: forget the recipient (never a SENT one) so a resend may send."""
        ...

    async def check(self) -> None:
        """Raises RecordUnavailable when the backing store cannot be reached (for readiness)."""
        ...

    async def aclose(self) -> None: ...
