"""The v2 Email API's activity log (GET /v2/logs/emails): events per email, and the API's tag filter language."""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PROVIDER = "sandbox"
SORT_TERMS = frozenset({"id", "time", "submitted_time", "type", "provider"})


class BadFilter(ValueError):
    """A `tags`/`providers` filter that is not the API's recursive filter language."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    type: str
    email_id: str
    account_id: int
    time: float
    submitted_time: float
    email: str
    subject: str
    tags: tuple[str, ...]
    sender_name: str
    sender_email: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    provider: str = PROVIDER

    def to_json(self, *, iso_time: bool) -> dict[str, Any]:
        """The API's EmailAPILogResponse."""
        return {
            "id": self.id,
            "type": self.type,
            "email_id": self.email_id,
            "time": _iso(self.time) if iso_time else int(self.time),
            "email": self.email,
            "subject": self.subject,
            "provider": self.provider,
            "tags": list(self.tags),
            "sender_name": self.sender_name,
            "sender_email": self.sender_email,
            "metadata": dict(self.metadata),
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).isoformat()


class ActivityLog:
    """Every event, in the order it happened; the newest `max_entries` when that is not 0 (SANDBOX_MAX_EMAILS: one
    event per v2 email)."""

    def __init__(self, max_entries: int = 0) -> None:
        self._entries: collections.deque[LogEntry] = collections.deque(maxlen=max_entries or None)

    def add(self, entry: LogEntry) -> None:
        self._entries.append(entry)

    def clear(self) -> None:
        self._entries.clear()

    def query(
        self,
        account_id: int,
        *,
        start_time: float,
        end_time: float,
        log_type: str = "all",
        email_id: str | None = None,
        tags: Any = None,
        providers: Any = None,
        sort: str = "-time",
    ) -> list[LogEntry]:
        """The account's entries in [start_time, end_time] that pass the filters, sorted as asked."""
        found = [
            (index, entry)
            for index, entry in enumerate(self._entries)
            if entry.account_id == account_id
            and start_time <= int(entry.time) <= end_time
            and (log_type == "all" or entry.type == log_type)
            and (email_id is None or entry.email_id == email_id)
            and (tags is None or matches(tags, entry.tags))
            and (providers is None or matches(providers, (entry.provider,)))
        ]
        term = sort.lstrip("+-")
        # Ties keep the order the events happened in (newest first when descending).
        found.sort(key=lambda pair: (_sort_key(pair[1], term), pair[0]), reverse=sort.startswith("-"))
        return [entry for _, entry in found]


def _sort_key(entry: LogEntry, term: str) -> Any:
    if term == "time":
        return int(entry.time)
    if term == "submitted_time":
        return int(entry.submitted_time)
    if term == "id":
        return entry.id
    if term == "type":
        return entry.type
    return entry.provider


def parse_sort(value: str) -> str | None:
    """`[-|+]term` with a known term, or None."""
    term = value[1:] if value[:1] in "+-" else value
    return value if term in SORT_TERMS else None


def parse_filter(raw: str) -> Any:
    """The JSON of a `tags`/`providers` query parameter, checked against the filter grammar."""
    try:
        tree = json.loads(raw)
    except ValueError as exc:
        raise BadFilter("not a JSON filter object") from exc
    _check(tree, top=True)
    return tree


def _check(node: Any, *, top: bool = False) -> None:
    if isinstance(node, str):
        if top:
            raise BadFilter('a filter is a JSON object such as {"is": "tag"}')
        return
    if not isinstance(node, dict) or len(node) != 1:
        raise BadFilter("each filter object has exactly one of the keys and, or, not, is")
    [(operator, operand)] = node.items()
    if operator in ("and", "or"):
        if isinstance(operand, list):
            for item in operand:
                _check(item)
        elif isinstance(operand, dict):
            _check(operand)
        else:
            raise BadFilter(f"{operator!r} takes an object or an array")
    elif operator in ("not", "is"):
        if not isinstance(operand, str | dict):
            raise BadFilter(f"{operator!r} takes an object or a string")
        _check(operand)
    else:
        raise BadFilter(f"unknown operator {operator!r} (and, or, not, is)")


def matches(node: Any, values: Iterable[str]) -> bool:
    """Whether a checked filter holds for an entry's values (its tags, or its provider)."""
    present = set(values)
    if isinstance(node, str):
        return node in present
    [(operator, operand)] = node.items()
    operands = operand if isinstance(operand, list) else [operand]
    if operator == "and":
        return all(matches(item, present) for item in operands)
    if operator == "or":
        return any(matches(item, present) for item in operands)
    if operator == "not":
        return not matches(operand, present)
    return matches(operand, present)
