"""The activity log's pure core: the API's recursive tag filter language and the sort terms, by table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cakemail_sandbox.activity import ActivityLog, BadFilter, LogEntry, matches, parse_filter, parse_sort

TAGS = ("welcome", "msg-1")


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ({"is": "welcome"}, True),
        ({"is": "invoice"}, False),
        ({"is": {"or": ["invoice", "msg-1"]}}, True),
        ({"or": ["invoice", "refund"]}, False),
        ({"or": {"is": "welcome"}}, True),
        ({"and": ["welcome", "msg-1"]}, True),
        ({"and": ["welcome", "invoice"]}, False),
        ({"and": [{"or": ["a", "welcome"]}, {"not": {"and": ["msg-1", "invoice"]}}]}, True),
        ({"not": "welcome"}, False),
        ({"not": {"is": "invoice"}}, True),
        ({"and": []}, True),
        ({"or": []}, False),
    ],
)
def test_filters_match_as_the_api_describes(tree: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(json.dumps(tree)), TAGS) is expected


@pytest.mark.parametrize(
    "raw",
    ["welcome", '"welcome"', "[]", '{"is": "a", "not": "b"}', '{"is": ["a"]}', '{"not": 1}', '{"nand": ["a"]}', "{"],
)
def test_malformed_filters_are_refused(raw: str) -> None:
    with pytest.raises(BadFilter):
        parse_filter(raw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("time", "time"), ("-time", "-time"), ("+type", "+type"), ("-submitted_time", "-submitted_time"), ("email", None)],
)
def test_sort_terms(value: str, expected: str | None) -> None:
    assert parse_sort(value) == expected


def entry(kind: str, at: float, provider: str = "sandbox") -> LogEntry:
    return LogEntry(
        type=kind,
        email_id="e",
        account_id=1,
        time=at,
        submitted_time=at,
        email="r@example.com",
        subject="s",
        tags=(),
        sender_name="",
        sender_email="s@example.com",
        id=f"{kind}-{int(at)}",
        provider=provider,
    )


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("time", ["queued-1", "submitted-1", "queued-2"]),
        ("-time", ["queued-2", "submitted-1", "queued-1"]),
        ("+type", ["queued-1", "queued-2", "submitted-1"]),
        ("-id", ["submitted-1", "queued-2", "queued-1"]),
        ("submitted_time", ["queued-1", "submitted-1", "queued-2"]),
        ("provider", ["queued-1", "submitted-1", "queued-2"]),
    ],
)
def test_sorting_keeps_event_order_for_ties(sort: str, expected: list[str]) -> None:
    log = ActivityLog()
    for item in (entry("queued", 1), entry("submitted", 1), entry("queued", 2)):
        log.add(item)

    found = log.query(1, start_time=0, end_time=10, sort=sort)

    assert [item.id for item in found] == expected
