"""In-memory state of the sandbox: recorded emails, idempotent responses, call counters.

Nothing survives a restart, like an API that lost its memory; tests rely on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class EmailRecord:
    message_id: str
    account_id: str
    received_at: str
    request_id: str | None
    idempotency_key: str | None
    payload: dict[str, Any]
    # Decoded size of each attachment, in payload order, for the content-less view.
    attachment_sizes: tuple[int, ...] = ()

    def to_json(self, *, content: bool = True) -> dict[str, Any]:
        payload = self.payload
        if not content and self.attachment_sizes:
            payload = copy.copy(payload)
            payload["attachments"] = [
                {**{k: v for k, v in attachment.items() if k != "content"}, "size": size}
                for attachment, size in zip(self.payload["attachments"], self.attachment_sizes, strict=True)
            ]
        return {
            "message_id": self.message_id,
            "account_id": self.account_id,
            "received_at": self.received_at,
            "request_id": self.request_id,
            "idempotency_key": self.idempotency_key,
            "payload": payload,
        }


class Inbox:
    """Every accepted email, oldest first."""

    def __init__(self) -> None:
        self._records: list[EmailRecord] = []

    def add(self, record: EmailRecord) -> None:
        self._records.append(record)

    def all(self) -> list[EmailRecord]:
        return list(self._records)

    def clear(self) -> None:
        self._records.clear()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class IdempotencyStore:
    """First responses by (account, Idempotency-Key), kept for a TTL; one holder per key at a time.

    The per-key lock makes check-then-record atomic for concurrent duplicates, whatever the handler awaits.
    """

    def __init__(self, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._responses: dict[tuple[str, str], tuple[float, StoredResponse]] = {}
        self._locks: dict[tuple[str, str], _KeyLock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, account_id: str, key: str) -> AsyncIterator[None]:
        scoped = (account_id, key)
        entry = self._locks.setdefault(scoped, _KeyLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[scoped]

    def get(self, account_id: str, key: str) -> StoredResponse | None:
        found = self._responses.get((account_id, key))
        if found is None:
            return None
        expires_at, response = found
        if self._clock() >= expires_at:
            del self._responses[(account_id, key)]
            return None
        return response

    def put(self, account_id: str, key: str, response: StoredResponse) -> None:
        now = self._clock()
        self._prune(now)
        self._responses.pop((account_id, key), None)  # a re-put moves to the end, keeping expiry order
        self._responses[(account_id, key)] = (now + self._ttl, response)

    def clear(self) -> None:
        self._responses.clear()

    def _prune(self, now: float) -> None:
        # One TTL for all and a monotonic clock: insertion order is expiry order, so stop at the first live one.
        expired = []
        for scoped, (expires_at, _) in self._responses.items():
            if now < expires_at:
                break
            expired.append(scoped)
        for scoped in expired:
            del self._responses[scoped]


@dataclass(slots=True)
class Stats:
    """Calls as they arrive (fault-injected ones included) and emails actually recorded."""

    auth_calls: int = 0
    email_calls: int = 0
    emails_recorded: int = 0

    def to_json(self) -> dict[str, int]:
        return {"auth_calls": self.auth_calls, "email_calls": self.email_calls, "emails_recorded": self.emails_recorded}

    def reset(self) -> None:
        self.auth_calls = self.email_calls = self.emails_recorded = 0
