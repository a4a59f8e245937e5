"""GET /v2/logs/emails: what a client reads to learn whether a recipient was already sent an email."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import (
    DEMO_SECOND_ACCOUNT_ID,
    StartSandbox,
    bearer,
    conforms,
    make_settings,
    send_v2,
    sender_id,
    stats,
    v2_token,
    valid_v2_email,
)
from tests.sandbox.test_v2_tokens import assert_detail

START = 1_800_000_000.0


class WallClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


async def logs(http: httpx.AsyncClient, token: str, **params: Any) -> dict[str, Any]:
    response = await http.get("/v2/logs/emails", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert conforms("EmailAPILogsResponse", body)
    return body


async def test_each_accepted_email_is_logged_submitted_then_queued(client: httpx.AsyncClient, token: str) -> None:
    ann = await sender_id(client, token, "ann@example.com")
    email_id = (await send_v2(client, token, valid_v2_email(ann))).json()["data"]["id"]

    found = await logs(client, token, email_id=email_id)

    assert [entry["type"] for entry in found["data"]] == ["queued", "submitted"], "newest first (sort -time)"
    entry = found["data"][1]
    assert (entry["email_id"], entry["email"], entry["subject"]) == (email_id, "bob@example.net", "Hello")
    assert (entry["tags"], entry["sender_email"], entry["sender_name"]) == (
        ["welcome", "msg-1"],
        "ann@example.com",
        "Ann",
    )
    assert isinstance(entry["time"], int) and abs(entry["time"] - datetime.now(UTC).timestamp()) < 60
    assert found["pagination"] == {"page": 1, "per_page": 50, "has_more": False}
    assert (await stats(client))["logs_calls"] == 1


async def test_log_type_tags_and_email_id_filter(client: httpx.AsyncClient, token: str) -> None:
    ann = await sender_id(client, token, "ann@example.com")
    welcome = (await send_v2(client, token, valid_v2_email(ann, tags=["welcome"]))).json()["data"]["id"]
    invoice = (await send_v2(client, token, valid_v2_email(ann, tags=["invoice", "msg-9"]))).json()["data"]["id"]
    rejected = (await send_v2(client, token, valid_v2_email(ann, email="rejected@example.com", tags=[]))).json()

    def ids(body: dict[str, Any]) -> list[str]:
        return [entry["email_id"] for entry in body["data"]]

    queued = await logs(client, token, log_type="queued", sort="+time")
    tagged = await logs(client, token, log_type="submitted", tags=json.dumps({"is": "msg-9"}))
    either = await logs(
        client, token, log_type="submitted", tags=json.dumps({"or": ["welcome", "invoice"]}), sort="+time"
    )
    both = await logs(client, token, log_type="submitted", tags=json.dumps({"and": ["invoice", {"not": "welcome"}]}))
    refused = await logs(client, token, log_type="rejected")
    providers = await logs(client, token, log_type="submitted", providers=json.dumps({"is": "sandbox"}))

    assert ids(queued) == [welcome, invoice]
    assert ids(tagged) == ids(both) == [invoice]
    assert ids(either) == [welcome, invoice]
    assert ids(refused) == [rejected["data"]["id"]]
    assert refused["data"][0]["metadata"]["reason"]
    assert len(ids(providers)) == 3
    assert tagged["parameters"]["tags"] == {"is": "msg-9"}


async def test_paging_tells_when_there_is_more(client: httpx.AsyncClient, token: str) -> None:
    ann = await sender_id(client, token, "ann@example.com")
    for _ in range(3):
        await send_v2(client, token, valid_v2_email(ann))

    pages = [await logs(client, token, per_page=4, page=page) for page in (1, 2)]

    assert [page["pagination"]["has_more"] for page in pages] == [True, False]
    assert [len(page["data"]) for page in pages] == [4, 2]
    assert len({entry["id"] for page in pages for entry in page["data"]}) == 6


async def test_time_window_and_iso_time(start_sandbox: StartSandbox) -> None:
    clock = WallClock()
    server = await start_sandbox(make_settings(), wall_clock=clock)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        token = await v2_token(http)
        ann = await sender_id(http, token, "ann@example.com")
        old = (await send_v2(http, token, valid_v2_email(ann))).json()["data"]["id"]
        clock.now += 8 * 24 * 3600
        new = (await send_v2(http, token, valid_v2_email(ann))).json()["data"]["id"]
        default_window = await logs(http, token, log_type="submitted")
        everything = await logs(http, token, log_type="submitted", start_time=int(START), end_time=int(clock.now))
        before = await logs(http, token, log_type="submitted", start_time=1, end_time=int(START))
        iso = await logs(http, token, log_type="submitted", iso_time="true")

    assert [entry["email_id"] for entry in default_window["data"]] == [new], "the default window is 7 days"
    assert default_window["parameters"]["end_time"] == int(clock.now)
    assert default_window["parameters"]["start_time"] == int(clock.now) - 7 * 24 * 3600
    assert [entry["email_id"] for entry in everything["data"]] == [new, old]
    assert [entry["email_id"] for entry in before["data"]] == [old]
    assert iso["data"][0]["time"] == datetime.fromtimestamp(clock.now, UTC).isoformat()


async def test_another_accounts_logs_are_not_shown(client: httpx.AsyncClient, token: str) -> None:
    ann = await sender_id(client, token, "ann@example.com")
    await send_v2(client, token, valid_v2_email(ann))

    other = await logs(client, token, account_id=DEMO_SECOND_ACCOUNT_ID)
    foreign = await client.get("/v2/logs/emails", params={"account_id": 2001}, headers=bearer(token))

    assert other["data"] == []
    assert_detail(foreign, 403, "forbidden")


@pytest.mark.parametrize(
    ("params", "status", "kind", "loc"),
    [
        ({"email_id": "42"}, 422, "value_error", ["query", "email_id"]),
        ({"log_type": "sent"}, 422, "enum", ["query", "log_type"]),
        ({"per_page": 101}, 422, "less_than_equal", ["query", "per_page"]),
        ({"start_time": 0}, 422, "greater_than_equal", ["query", "start_time"]),
        ({"tags": "welcome"}, 400, "bad_request", ["query", "tags"]),
        ({"tags": '{"xor": ["a"]}'}, 400, "bad_request", ["query", "tags"]),
        ({"tags": '{"and": "a"}'}, 400, "bad_request", ["query", "tags"]),
        ({"sort": "-email"}, 400, "bad_request", ["query", "sort"]),
    ],
    ids=["email-id", "log-type", "per-page", "start-time", "tags-not-json", "tags-operator", "tags-and", "sort"],
)
async def test_invalid_parameters_are_refused(
    client: httpx.AsyncClient, token: str, params: dict[str, Any], status: int, kind: str, loc: list[str]
) -> None:
    response = await client.get("/v2/logs/emails", params=params, headers=bearer(token))

    assert assert_detail(response, status, kind)["loc"] == loc
