"""GET /brands/default/senders (paging, accounts, sort) and the POST /sandbox/senders control route."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.conftest import (
    DEMO_ACCOUNT_ID,
    DEMO_SECOND_ACCOUNT_ID,
    MFA_CREDENTIALS,
    StartSandbox,
    bearer,
    conforms,
    make_settings,
    stats,
    v2_token,
)
from tests.sandbox.test_v2_tokens import assert_detail


async def senders(http: httpx.AsyncClient, token: str, **params: object) -> httpx.Response:
    return await http.get("/brands/default/senders", params=params, headers=bearer(token))


async def test_pages_walk_every_sender_of_the_default_account_once(client: httpx.AsyncClient) -> None:
    token = await v2_token(client)
    everything = (await senders(client, token, per_page=100, with_count="true")).json()

    pages = []
    page = 1
    while True:
        answer = await senders(client, token, page=page, per_page=7)
        assert answer.status_code == 200 and conforms("SendersResponse", answer.json())
        assert answer.json()["pagination"] == {"page": page, "per_page": 7}, "count only when asked (with_count)"
        pages.append(answer.json()["data"])
        if len(answer.json()["data"]) < 7:
            break
        page += 1

    walked = [sender for data in pages for sender in data]
    assert walked == everything["data"]
    assert everything["pagination"]["count"] == len(walked) > 7
    emails = {sender["email"]: sender for sender in walked}
    assert emails["demo@example.com"]["confirmed"] is True
    assert emails["unconfirmed@example.com"]["confirmed"] is False
    assert len({sender["id"] for sender in walked}) == len(walked)
    assert (await stats(client))["senders_calls"] == len(pages) + 1


async def test_account_id_lists_that_accounts_senders(client: httpx.AsyncClient) -> None:
    token = await v2_token(client)

    second = await senders(client, token, account_id=DEMO_SECOND_ACCOUNT_ID)
    foreign = await senders(client, token, account_id=2001)

    assert [sender["email"] for sender in second.json()["data"]] == ["demo@example.com"]
    assert_detail(foreign, 403, "forbidden")


async def test_the_mfa_users_account_has_its_own_senders(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(mfa_challenge_status=200))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        challenge = (await http.post("/token", data=MFA_CREDENTIALS)).json()["challenge"]
        pair = (await http.post("/token/challenge", json={"challenge": challenge, "code": "123456"})).json()
        listed = await senders(http, pair["access_token"])

    assert [sender["email"] for sender in listed.json()["data"]] == ["mfa@example.com"]


@pytest.mark.parametrize(
    ("params", "status", "kind", "loc"),
    [
        ({"per_page": 0}, 422, "greater_than_equal", ["query", "per_page"]),
        ({"page": "x"}, 422, "int_parsing", ["query", "page"]),
        ({"with_count": "maybe"}, 422, "bool_parsing", ["query", "with_count"]),
        ({"sort": "id"}, 400, "bad_request", ["query", "sort"]),
    ],
    ids=["per-page-0", "page-text", "with-count", "sort-term"],
)
async def test_invalid_parameters_are_refused(
    client: httpx.AsyncClient, params: dict[str, object], status: int, kind: str, loc: list[str]
) -> None:
    token = await v2_token(client)

    assert assert_detail(await senders(client, token, **params), status, kind)["loc"] == loc


async def test_sort_by_email_descending(client: httpx.AsyncClient) -> None:
    token = await v2_token(client)

    listed = [sender["email"] for sender in (await senders(client, token, per_page=100, sort="-email")).json()["data"]]

    assert listed == sorted(listed, reverse=True)


async def test_added_senders_show_up_until_reset(client: httpx.AsyncClient) -> None:
    token = await v2_token(client)
    added = await client.post(
        "/sandbox/senders", json={"account_id": DEMO_SECOND_ACCOUNT_ID, "email": "x@shop.example"}
    )
    during = (await senders(client, token, account_id=DEMO_SECOND_ACCOUNT_ID)).json()["data"]
    await client.post("/sandbox/reset")
    token = await v2_token(client)
    after = (await senders(client, token, account_id=DEMO_SECOND_ACCOUNT_ID)).json()["data"]

    assert added.status_code == 201
    assert added.json() == {
        "id": added.json()["id"],
        "name": "",
        "email": "x@shop.example",
        "confirmed": True,
        "language": "en_US",
        "account_id": DEMO_SECOND_ACCOUNT_ID,
    }
    assert added.json() in [{**sender, "account_id": DEMO_SECOND_ACCOUNT_ID} for sender in during]
    assert [sender["email"] for sender in after] == ["demo@example.com"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account_id": 424242, "email": "x@example.com"}, "account_id"),
        ({"account_id": DEMO_ACCOUNT_ID}, "email"),
        ({"account_id": DEMO_ACCOUNT_ID, "email": "x@example.com", "verified": True}, "verified"),
    ],
    ids=["unknown-account", "no-email", "unknown-field"],
)
async def test_invalid_sender_additions_get_400(client: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    response = await client.post("/sandbox/senders", json=body)

    assert (response.status_code, response.json()["field"]) == (400, field)
