"""Configuration from the environment, and `python -m cakemail_sandbox` as the devstack runs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cakemail_sandbox.config import DEMO_ACCOUNT, MIB, SandboxSettings
from cakemail_sandbox.server import SandboxServer
from gateway_common import event_loop
from gateway_common.ops_http import PortUnavailable
from tests.sandbox.conftest import (
    DEMO_CREDENTIALS,
    StartSandbox,
    email_headers,
    login,
    make_settings,
    recorded,
    valid_email,
)

ACCOUNTS = [
    {"username": "ann@shop.example", "password": "s3cret-ann", "account_id": "acct-1", "email": "ann@shop.example"},
    {"username": "bob", "password": "s3cret-bob", "account_id": "acct-2", "email": "bob@shop.example"},
]


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SANDBOX_") or name == "LOG_LEVEL":
            monkeypatch.delenv(name)

    settings = SandboxSettings()

    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8090, "INFO")
    demo, mfa = settings.accounts
    assert (demo.username, demo.password) == ("demo@example.com", "demo-password")
    assert (demo.account_id, demo.email, demo.account_ids, demo.mfa) == (
        "acct-demo",
        "demo@example.com",
        (1001, 1002),
        False,
    )
    assert (mfa.username, mfa.password, mfa.account_ids, mfa.mfa) == ("mfa@example.com", "mfa-password", (2001,), True)
    assert demo.model_copy(update={"senders": DEMO_ACCOUNT.senders}) == DEMO_ACCOUNT
    confirmed = {sender.email for sender in demo.senders if sender.confirmed and sender.account_id == 1001}
    assert {"demo@example.com", "ann@example.com", "a@example.com", "sender@example.com", "a@x.test"} <= confirmed
    [unconfirmed] = [sender for sender in demo.senders if not sender.confirmed]
    assert (unconfirmed.email, unconfirmed.account_id, unconfirmed.id) == ("unconfirmed@example.com", 1001, "42")
    assert [sender.id for sender in demo.senders[:2]] == ["1", "2"], "sender ids are assigned in configuration order"
    assert settings.rejected_recipients == ["rejected@example.com"]
    assert (settings.mfa_code, settings.mfa_challenge_status) == ("123456", 401)
    assert settings.refresh_token_expires_in == 30 * 24 * 3600
    assert settings.token_expires_in == 900
    assert settings.idempotency_ttl_seconds == 24 * 3600
    assert (settings.max_request_bytes, settings.max_attachment_bytes) == (35 * MIB, 10 * MIB)
    assert settings.faults == {}
    assert "demo-password" not in repr(settings), "passwords stay out of reprs (and so out of logs)"


async def test_accounts_from_the_environment_replace_the_demo_account(
    start_sandbox: StartSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_ACCOUNTS", json.dumps(ACCOUNTS))
    monkeypatch.setenv("SANDBOX_PORT", "0")
    server = await start_sandbox(SandboxSettings())
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        demo = await http.post("/v1/auth/validate", json=DEMO_CREDENTIALS)
        bob = (await http.post("/v1/auth/validate", json={"username": "bob", "password": "s3cret-bob"})).json()
        sent = await http.post("/v1/emails", json=valid_email(), headers=email_headers(bob["api_key"]))
        [record] = await recorded(http)

    assert demo.status_code == 401
    assert (bob["account_id"], bob["email"]) == ("acct-2", "bob@shop.example")
    assert sent.status_code == 200
    assert record["account_id"] == "acct-2"


async def test_a_busy_port_fails_start_with_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = SandboxServer(make_settings(port=busy.getsockname()[1]))

        port = busy.getsockname()[1]
        with pytest.raises(PortUnavailable, match=f"cannot listen on 127.0.0.1:{port}: address already in use"):
            await server.start()
        await server.stop()  # harmless after a failed start


async def test_the_module_exits_1_naming_the_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "SANDBOX_HOST": "127.0.0.1", "SANDBOX_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cakemail_sandbox", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        async with asyncio.timeout(30):
            output, _ = await process.communicate()

    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in output.decode()
    assert "Traceback" not in output.decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _healthy(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/v1/health")).status_code == 200
    except httpx.TransportError:
        return False


async def test_module_runs_from_env_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "SANDBOX_HOST": "127.0.0.1",
        "SANDBOX_PORT": str(port),
        "SANDBOX_ACCOUNTS": json.dumps(ACCOUNTS),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "sandbox.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cakemail_sandbox", env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            async with asyncio.timeout(15):
                while not await _healthy(http):
                    assert process.returncode is None, log_path.read_text()
                    await asyncio.sleep(0.05)
            api_key = await login(http, {"username": "ann@shop.example", "password": "s3cret-ann"})
            sent = await http.post("/v1/emails", json=valid_email(), headers=email_headers(api_key, "k-main"))
            pair = (await http.post("/token", data={"username": "ann@shop.example", "password": "s3cret-ann"})).json()
            v2_headers = {"Authorization": f"Bearer {pair['access_token']}"}
            refused = await http.post("/v2/emails", json={"email": "x@example.com"}, headers=v2_headers)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert sent.status_code == 200
    assert refused.status_code == 422
    assert code == 0, log_path.read_text()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    events = {line.get("message") for line in lines}
    assert {"auth.accepted", "email.recorded", "token.issued", "v2_email.invalid"} <= events
    assert all(line.get("service") == "cakemail-sandbox" for line in lines)
    text = log_path.read_text()
    for secret in (
        "s3cret-ann",
        "s3cret-bob",
        api_key,
        pair["access_token"],
        pair["refresh_token"],
        "Hi Bob",
        "aGVsbG8=",
    ):
        assert secret not in text, "no passwords, api keys or message content in the logs"


async def test_v2_fields_of_accounts_from_the_environment(
    start_sandbox: StartSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = {
        "username": "shop@shop.example",
        "password": "s3cret-shop",
        "account_ids": [7, 8],
        "senders": [
            {"email": "orders@shop.example", "name": "Orders"},
            {"email": "new@shop.example", "confirmed": False, "id": "s-new"},
            {"email": "eight@shop.example", "account_id": 8},
        ],
    }
    monkeypatch.setenv("SANDBOX_ACCOUNTS", json.dumps([*ACCOUNTS, shop]))
    monkeypatch.setenv("SANDBOX_REJECTED_RECIPIENTS", '["no@shop.example"]')
    monkeypatch.setenv("SANDBOX_PORT", "0")
    settings = SandboxSettings()
    server = await start_sandbox(settings)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        pair = (await http.post("/token", data={"username": "shop@shop.example", "password": "s3cret-shop"})).json()
        ann = (await http.post("/token", data={"username": "ann@shop.example", "password": "s3cret-ann"})).json()
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        seven = (await http.get("/brands/default/senders", headers=headers)).json()["data"]
        eight = (await http.get("/brands/default/senders", params={"account_id": 8}, headers=headers)).json()["data"]

    assert pair["accounts"] == [7, 8]
    assert ann["accounts"] == [1], "a v1-only entry gets an unused account id"
    assert [(s["id"], s["email"], s["confirmed"]) for s in seven] == [
        ("1", "orders@shop.example", True),
        ("s-new", "new@shop.example", False),
    ]
    assert [s["email"] for s in eight] == ["eight@shop.example"]
    assert settings.rejected_recipients == ["no@shop.example"]
    assert (settings.accounts[2].account_id, settings.accounts[2].email) == ("acct-7", "shop@shop.example")


@pytest.mark.parametrize(
    ("accounts", "problem"),
    [
        (
            [
                {"username": "a", "password": "p", "account_ids": [1]},
                {"username": "b", "password": "p", "account_ids": [1]},
            ],
            "two users",
        ),
        ([{"username": "a", "password": "p"}, {"username": "a", "password": "q"}], "same username"),
        ([{"username": "a", "password": "p", "account_ids": [1, 1]}], "distinct"),
        (
            [{"username": "a", "password": "p", "account_ids": [1], "senders": [{"email": "x@y", "account_id": 2}]}],
            "not one of",
        ),
        (
            [{"username": "a", "password": "p", "senders": [{"email": "x@y", "id": "1"}, {"email": "z@y", "id": "1"}]}],
            "same id",
        ),
    ],
    ids=["shared-account-id", "same-username", "repeated-id", "foreign-sender-account", "same-sender-id"],
)
def test_inconsistent_accounts_are_refused(accounts: list[dict[str, object]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        SandboxSettings(accounts=accounts)


def test_the_sandbox_runs_on_uvloop_by_default_and_reads_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_LOOP", raising=False)
    assert SandboxSettings().event_loop == "uvloop"
    monkeypatch.setenv("EVENT_LOOP", "asyncio")
    assert SandboxSettings().event_loop == "asyncio"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_dropped_connection_gets_no_answer_at_all_on_either_loop(loop: event_loop.EventLoop) -> None:
    """drop_connection cuts the TCP connection itself: not one byte of an answer (the fallback, for a transport it
    cannot reach, would send the start of a 500). uvloop's transports are not asyncio.Transport subclasses."""
    answers: list[bytes] = []

    async def main() -> None:
        async with SandboxServer(make_settings(faults={"emails": {"drop_connection": True}})) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            body = json.dumps(valid_email()).encode()
            head = (
                f"POST /v1/emails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            )
            writer.write(head.encode() + b"\r\n\r\n" + body)
            async with asyncio.timeout(10):
                try:
                    answers.append(await reader.read())
                except ConnectionResetError:
                    answers.append(b"")
            writer.close()

    event_loop.run(main(), loop)

    assert answers == [b""]
