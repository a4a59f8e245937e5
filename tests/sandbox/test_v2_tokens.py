"""POST /token and /token/challenge as the real API: form-encoded grants, expiry, one-use refresh tokens, MFA."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import (
    DEMO_CREDENTIALS,
    DEMO_SECOND_ACCOUNT_ID,
    MFA_CREDENTIALS,
    FakeClock,
    StartSandbox,
    bearer,
    conforms,
    login,
    make_settings,
    recorded,
    send_v2,
    sender_id,
    v2_token,
    valid_v2_email,
)


def assert_detail(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The real API's error shape: {"detail": [{"msg", "type", ...}]}; returns the first entry."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert detail[0]["type"] == kind and detail[0]["msg"]
    return dict(detail[0])


def refresh(pair: dict[str, Any]) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}


async def senders_status(http: httpx.AsyncClient, token: str) -> int:
    return (await http.get("/brands/default/senders", headers=bearer(token))).status_code


async def test_password_grant_answers_a_token_pair_listing_the_users_accounts(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", data=DEMO_CREDENTIALS)

    assert response.status_code == 200
    body = response.json()
    assert conforms("TokenResponse", body)
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "accounts"}
    assert (body["token_type"], body["expires_in"], body["accounts"]) == ("bearer", 900, [1001, 1002])
    assert body["access_token"] != body["refresh_token"]
    assert await senders_status(client, body["access_token"]) == 200


async def test_expiration_seconds_sets_the_lifetime(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", data={**DEMO_CREDENTIALS, "expiration_seconds": "1200"})

    assert (response.status_code, response.json()["expires_in"]) == (200, 1200)


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "demo@example.com", "password": "wrong"},
        {"username": "nobody@example.com", "password": "demo-password"},
        {"username": "DEMO@example.com", "password": "demo-password"},
    ],
    ids=["wrong-password", "unknown-user", "username-case"],
)
async def test_wrong_credentials_get_401_in_the_detail_shape(
    client: httpx.AsyncClient, credentials: dict[str, str]
) -> None:
    response = await client.post("/token", data=credentials)

    assert_detail(response, 401, "unauthorized")
    assert conforms("HTTPUnauthorizedError", response.json())
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("form", "loc", "kind"),
    [
        ({"username": "demo@example.com"}, ["body", "password"], "missing"),
        ({"password": "demo-password"}, ["body", "username"], "missing"),
        ({**DEMO_CREDENTIALS, "username": "not an email"}, ["body", "username"], "value_error"),
        ({**DEMO_CREDENTIALS, "grant_type": "client_credentials"}, ["body", "grant_type"], "enum"),
        ({**DEMO_CREDENTIALS, "expiration_seconds": "599"}, ["body", "expiration_seconds"], "greater_than_equal"),
        ({**DEMO_CREDENTIALS, "expiration_seconds": "soon"}, ["body", "expiration_seconds"], "int_parsing"),
        ({**DEMO_CREDENTIALS, "account_id": "x"}, ["body", "account_id"], "int_parsing"),
        ({**DEMO_CREDENTIALS, "scopes": "user,root"}, ["body", "scopes"], "string_pattern_mismatch"),
        ({"grant_type": "refresh_token"}, ["body", "refresh_token"], "missing"),
    ],
    ids=[
        "no-password",
        "no-username",
        "username-not-email",
        "grant-type",
        "short-expiry",
        "expiry-not-int",
        "account-not-int",
        "scopes",
        "refresh-without-token",
    ],
)
async def test_invalid_forms_get_422_naming_the_field(
    client: httpx.AsyncClient, form: dict[str, str], loc: list[str], kind: str
) -> None:
    response = await client.post("/token", data=form)

    detail = assert_detail(response, 422, kind)
    assert detail["loc"] == loc
    assert conforms("HTTPValidationError", response.json())


async def test_a_json_body_is_not_a_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", json=DEMO_CREDENTIALS)

    assert_detail(response, 422, "missing")
    assert {tuple(entry["loc"]) for entry in response.json()["detail"]} == {("body", "username"), ("body", "password")}


async def test_account_id_picks_the_tokens_default_account(client: httpx.AsyncClient) -> None:
    token = await v2_token(client, account_id=str(DEMO_SECOND_ACCOUNT_ID))
    sender = await sender_id(client, token, "demo@example.com")

    sent = await send_v2(client, token, valid_v2_email(sender))
    [record] = await recorded(client)

    assert sent.status_code == 201
    assert record["account_id"] == DEMO_SECOND_ACCOUNT_ID


async def test_account_id_of_another_user_is_forbidden(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", data={**DEMO_CREDENTIALS, "account_id": "2001"})

    assert_detail(response, 403, "forbidden")
    assert conforms("HTTPForbiddenError", response.json())


async def test_access_tokens_expire(start_sandbox: StartSandbox) -> None:
    clock = FakeClock()
    server = await start_sandbox(make_settings(token_expires_in=60), clock=clock)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        token = await v2_token(http)
        clock.advance(59)
        before = await senders_status(http, token)
        clock.advance(1)
        after = await http.get("/brands/default/senders", headers=bearer(token))

    assert before == 200
    assert_detail(after, 401, "unauthorized")


async def test_refresh_issues_a_new_pair_and_each_refresh_token_works_once(start_sandbox: StartSandbox) -> None:
    clock = FakeClock()
    server = await start_sandbox(make_settings(token_expires_in=60), clock=clock)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        first = (await http.post("/token", data={**DEMO_CREDENTIALS, "expiration_seconds": "900"})).json()
        clock.advance(900)
        expired = await senders_status(http, first["access_token"])
        refreshed = await http.post("/token", data=refresh(first))
        second = refreshed.json()
        reused = await http.post("/token", data=refresh(first))
        unknown = await http.post("/token", data=refresh({"refresh_token": "nope"}))
        renewed = await senders_status(http, second["access_token"])
        refresh_as_bearer = await senders_status(http, second["refresh_token"])

    assert expired == 401
    assert refreshed.status_code == 200 and conforms("TokenResponse", second)
    assert second["access_token"] != first["access_token"] and second["refresh_token"] != first["refresh_token"]
    assert (second["expires_in"], second["accounts"]) == (900, [1001, 1002]), "a refresh keeps the grant's terms"
    assert renewed == 200
    assert_detail(reused, 401, "unauthorized")
    assert_detail(unknown, 401, "unauthorized")
    assert refresh_as_bearer == 401, "a refresh token is not an access token"


async def test_refresh_tokens_expire_too(start_sandbox: StartSandbox) -> None:
    clock = FakeClock()
    server = await start_sandbox(make_settings(refresh_token_expires_in=3600), clock=clock)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        pair = (await http.post("/token", data=DEMO_CREDENTIALS)).json()
        clock.advance(3600)
        late = await http.post("/token", data=refresh(pair))

    assert_detail(late, 401, "unauthorized")


async def test_mfa_user_gets_a_challenge_completed_with_the_code(client: httpx.AsyncClient) -> None:
    challenged = await client.post("/token", data=MFA_CREDENTIALS)
    challenge = challenged.json()["challenge"]
    wrong = await client.post("/token/challenge", json={"challenge": challenge, "code": "000000"})
    malformed = await client.post("/token/challenge", json={"challenge": challenge, "code": "12345"})
    right = await client.post("/token/challenge", json={"challenge": challenge, "code": "123456"})
    replayed = await client.post("/token/challenge", json={"challenge": challenge, "code": "123456"})

    assert challenged.status_code == 401, "the API's prose: 401 with a challenge"
    assert conforms("ChallengeResponse", challenged.json()) and set(challenged.json()) == {"challenge"}
    assert_detail(wrong, 401, "unauthorized")
    assert_detail(malformed, 422, "string_too_short")
    assert right.status_code == 200 and conforms("TokenResponse", right.json())
    assert right.json()["accounts"] == [2001]
    assert await senders_status(client, right.json()["access_token"]) == 200
    assert_detail(replayed, 401, "unauthorized")


async def test_mfa_challenge_status_is_configurable(start_sandbox: StartSandbox) -> None:
    server = await start_sandbox(make_settings(mfa_challenge_status=200))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        response = await http.post("/token", data=MFA_CREDENTIALS)

    assert response.status_code == 200
    assert set(response.json()) == {"challenge"}


async def test_unknown_challenge_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/token/challenge", json={"challenge": "made-up", "code": "123456"})

    assert_detail(response, 401, "unauthorized")


V2_ROUTES = [
    ("GET", "/brands/default/senders"),
    ("POST", "/v2/emails"),
    ("GET", "/v2/emails/4bb2b4b2-7c1e-4c33-9d1e-0d0a3c1f5a11"),
    ("GET", "/v2/logs/emails"),
]


@pytest.mark.parametrize(("method", "path"), V2_ROUTES)
async def test_every_v2_route_needs_a_valid_bearer_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    v1_key = await login(client)
    answers = [
        await client.request(method, path, headers=headers, json={} if method == "POST" else None)
        for headers in ({}, bearer("made-up"), bearer(v1_key), {"Authorization": "Basic ZGVtbzpkZW1v"})
    ]

    for answer in answers:
        assert_detail(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert await recorded(client) == []


async def test_revoking_tokens_covers_v2_tokens(client: httpx.AsyncClient) -> None:
    token = await v2_token(client)

    revoked = await client.post("/sandbox/tokens/revoke")

    assert revoked.json() == {"revoked": 1}
    assert await senders_status(client, token) == 401
