"""In-memory state of the sandbox: recorded emails, idempotent responses, call counters.

Nothing survives a restart, like an API that lost its memory; tests rely on that.
"""

from __future__ import annotations

import asyncio
import collections
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
            "flavor": "v1",
            "message_id": self.message_id,
            "account_id": self.account_id,
            "received_at": self.received_at,
            "request_id": self.request_id,
            "idempotency_key": self.idempotency_key,
            "payload": payload,
        }


@dataclass(frozen=True, slots=True)
class V2EmailRecord:
    """One accepted POST /v2/emails (one recipient), queued or rejected."""

    id: str
    account_id: int
    email: str
    status: str
    received_at: str
    submitted_time: float
    request_id: str | None
    payload: dict[str, Any]
    sender_email: str
    sender_name: str
    # Decoded size of each attachment, in payload order, for the content-less view.
    attachment_sizes: tuple[int, ...] = ()

    def to_json(self, *, content: bool = True) -> dict[str, Any]:
        payload = self.payload
        attachment = payload.get("attachment")
        if not content and attachment is not None:
            payload = copy.copy(payload)
            if isinstance(attachment, dict):
                payload["attachment"] = _without_content(attachment, self.attachment_sizes[0])
            else:
                payload["attachment"] = [
                    _without_content(item, size) for item, size in zip(attachment, self.attachment_sizes, strict=True)
                ]
        return {
            "flavor": "v2",
            "id": self.id,
            "account_id": self.account_id,
            "email": self.email,
            "status": self.status,
            "received_at": self.received_at,
            "request_id": self.request_id,
            "payload": payload,
        }

    def to_api_json(self) -> dict[str, Any]:
        """The API's GetEmailResponse (GET /v2/emails/{email_id})."""
        content = self.payload.get("content") or {}
        tracking = {"opens": True, "clicks_html": True, "clicks_text": True, **(self.payload.get("tracking") or {})}
        shown_content: dict[str, Any] = {"subject": content.get("subject"), "type": content.get("type")}
        if isinstance(content.get("template"), dict):
            shown_content["template_id"] = content["template"].get("id")
        if content.get("custom_attributes"):
            shown_content["custom_attributes"] = content["custom_attributes"]
        answer: dict[str, Any] = {
            "email_id": self.id,
            "status": self.status,
            "email": self.email,
            "provider": "sandbox",
            "submitted_time": int(self.submitted_time),
            "unsubscribed": False,
            "global_unsubscribed": False,
            "soft_bounced": False,
            "hard_bounced": False,
            "reported_as_spam": False,
            "open": 0,
            "click": 0,
            "tags": list(self.payload.get("tags") or []),
            "sender": {"id": self.payload["sender"]["id"], "name": self.sender_name, "email": self.sender_email},
            "content": shown_content,
            "tracking": tracking,
            "additional_headers": list(self.payload.get("additional_headers") or []),
        }
        if self.payload.get("list_id") is not None:
            answer["list_id"] = self.payload["list_id"]
        return answer


def _without_content(attachment: dict[str, Any], size: int) -> dict[str, Any]:
    return {**{k: v for k, v in attachment.items() if k != "content"}, "size": size}


Record = EmailRecord | V2EmailRecord


InboxListener = Callable[[Record | None], None]


def stored_bytes(record: Record) -> int:
    """What a record holds that can be large: its attachments (base64, as posted) and its bodies."""
    payload = record.payload
    if isinstance(record, V2EmailRecord):
        content = payload.get("content") or {}
        bodies = [content.get("html"), content.get("text")]
        attachment = payload.get("attachment")
        attachments = [attachment] if isinstance(attachment, dict) else (attachment or [])
    else:
        bodies = [payload.get("html_body"), payload.get("text_body")]
        attachments = payload.get("attachments") or []
    held = sum(len(body) for body in bodies if isinstance(body, str))
    return held + sum(len(item.get("content") or "") for item in attachments if isinstance(item, dict))


class Inbox:
    """Every accepted email, v1 and v2, oldest first, up to `max_records` and `max_bytes` (stored_bytes) when they
    are not 0: past either, the oldest are forgotten (the newest is always kept).

    Listeners hear of each record added, and of a clear (as `None`): the web inbox's live feed. They run inline,
    so they must be quick and must not raise.
    """

    def __init__(self, max_records: int = 0, max_bytes: int = 0) -> None:
        self._records: collections.deque[tuple[Record, int]] = collections.deque()
        self._v2: dict[str, V2EmailRecord] = {}
        self._listeners: list[InboxListener] = []
        self._max_records = max_records
        self._max_bytes = max_bytes
        self.bytes_held = 0

    def listen(self, listener: InboxListener) -> None:
        self._listeners.append(listener)

    def add(self, record: Record) -> None:
        size = stored_bytes(record) if self._max_bytes else 0
        self._records.append((record, size))
        self.bytes_held += size
        if isinstance(record, V2EmailRecord):
            self._v2[record.id] = record
        self._forget_oldest()
        for listener in self._listeners:
            listener(record)

    def _forget_oldest(self) -> None:
        while len(self._records) > 1 and (
            (self._max_records and len(self._records) > self._max_records)
            or (self._max_bytes and self.bytes_held > self._max_bytes)
        ):
            oldest, size = self._records.popleft()
            self.bytes_held -= size
            if isinstance(oldest, V2EmailRecord):
                self._v2.pop(oldest.id, None)

    def all(self) -> list[Record]:
        return [record for record, _ in self._records]

    def v2_email(self, email_id: str) -> V2EmailRecord | None:
        return self._v2.get(email_id)

    def clear(self) -> None:
        self._records.clear()
        self._v2.clear()
        self.bytes_held = 0
        for listener in self._listeners:
            listener(None)


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
    """Calls as they arrive (fault-injected ones included) and emails actually recorded (v1 and v2)."""

    auth_calls: int = 0
    email_calls: int = 0
    emails_recorded: int = 0
    token_calls: int = 0
    senders_calls: int = 0
    v2_email_calls: int = 0
    logs_calls: int = 0

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)
