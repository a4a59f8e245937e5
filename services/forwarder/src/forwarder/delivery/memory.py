"""The delivery record in process memory: the default for a single forwarder (bounded, forgets on restart)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TLRUCache

from forwarder.delivery.record import Claim, ClaimState, RecipientKey


@dataclass(frozen=True, slots=True)
class _Entry:
    outcome: ClaimState | None  # SENT or AMBIGUOUS once an attempt ended that way; None for a bare lease
    email_id: str | None
    since: float | None
    lease_until: float  # on the record's clock; in the past = nobody holds the lease
    expires_at: float  # the entry disappears then: end of the lease, or of the retention window


class MemoryDeliveryRecord:
    """Entries keyed by the key's digest in a TLRUCache: each expires on its own deadline, the least recently used
    goes first beyond max_entries (an evicted recipient could be sent again: size the bound for the retention window).

    Every method runs without awaiting in between, so concurrent asyncio callers see each claim as atomic.
    """

    def __init__(
        self,
        *,
        retention_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retention = retention_seconds
        self._clock = clock
        self._entries: TLRUCache[str, _Entry] = TLRUCache(
            maxsize=max_entries, ttu=lambda _key, entry, _now: entry.expires_at, timer=clock
        )

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, key: RecipientKey, *, lease_seconds: float) -> Claim:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        digest, now = key.digest(), self._clock()
        entry = self._entries.get(digest)
        if entry is not None and entry.outcome is ClaimState.SENT:
            return Claim(ClaimState.SENT, email_id=entry.email_id)
        if entry is not None and entry.lease_until > now:
            return Claim(ClaimState.IN_FLIGHT)
        lease_until = now + lease_seconds
        if entry is not None and entry.outcome is ClaimState.AMBIGUOUS:
            expires_at = max(entry.expires_at, lease_until)
            self._entries[digest] = _Entry(ClaimState.AMBIGUOUS, None, entry.since, lease_until, expires_at)
            return Claim(ClaimState.AMBIGUOUS, since=entry.since)
        self._entries[digest] = _Entry(None, None, None, lease_until, lease_until)
        return Claim(ClaimState.ACQUIRED)

    async def mark_sent(self, key: RecipientKey, email_id: str) -> None:
        now = self._clock()
        self._entries[key.digest()] = _Entry(ClaimState.SENT, email_id, None, now, now + self._retention)

    async def mark_ambiguous(self, key: RecipientKey, at: float) -> None:
        digest, now = key.digest(), self._clock()
        entry = self._entries.get(digest)
        if entry is not None and entry.outcome is ClaimState.SENT:
            return
        self._entries[digest] = _Entry(ClaimState.AMBIGUOUS, None, at, now, now + self._retention)

    async def release(self, key: RecipientKey) -> None:
        digest = key.digest()
        entry = self._entries.get(digest)
        if entry is not None and entry.outcome is not ClaimState.SENT:
            del self._entries[digest]

    async def check(self) -> None:
        """Memory is always reachable."""

    async def aclose(self) -> None:
        self._entries.clear()
