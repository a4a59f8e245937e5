"""Direct gRPC callers authenticated with a Cakemail access token in metadata (`authorization: Bearer <token>` and
`x-cakemail-account-id`), through the running stack: the token is checked with the (sandbox) API, acts for the
account it names, is refused precisely when it cannot be used, and never reaches a log line or a metric."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from cakemail_gateway import AsyncGatewayClient, GatewayClient, InvalidCredentials, PermissionDenied, RetryPolicy
from cakemail_gateway.cli import EXIT_AUTH, EXIT_OK, EXIT_USAGE
from devstack.stack import Stack
from tests.conftest import SandboxView, log_text

pytestmark = pytest.mark.e2e

CLI = [str(Path(sys.executable).with_name("cakemail-gateway")), "send"]


def _target(stack: Stack) -> str:
    return f"127.0.0.1:{stack.ports.forwarder_grpc}"


def _access_token(stack: Stack, username: str = "demo@example.com", password: str = "demo-password") -> str:
    """A real v2 access token from the sandbox's POST /token (password grant), as a caller's own login would get."""
    form = urllib.parse.urlencode({"username": username, "password": password}).encode()
    request = urllib.request.Request(stack.sandbox_url + "/token", data=form, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def _message(subject: str, sender: str = "svc@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "bob@example.net"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="token.example")
    message.set_content("sent with an access token\n")
    return message


def _details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, list[error_details_pb2.BadRequest]]:
    info = error_details_pb2.ErrorInfo()
    bad: list[error_details_pb2.BadRequest] = []
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key != "grpc-status-details-bin":
            continue
        for packed in status_pb2.Status.FromString(value).details:
            violation = error_details_pb2.BadRequest()
            if packed.Unpack(violation):
                bad.append(violation)
            else:
                packed.Unpack(info)
    return info, bad


def _client(stack: Stack, token: str, account_id: str) -> GatewayClient:
    return GatewayClient(
        _target(stack), token=token, account_id=account_id, timeout=20, retry=RetryPolicy(max_attempts=1)
    )


def test_a_token_authenticates_and_sends_for_its_account(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)
    with _client(stack, token, "1001") as client:
        assert client.authenticate().account_id == "1001"
        result = client.send(_message("token send"), sender="svc@example.com", recipients=["bob@example.net"])
    records = sandbox.emails()
    assert [r["id"] for r in records] == list(result.message_ids)
    assert records[0]["account_id"] == 1001


async def test_the_async_client_sends_with_a_token(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)
    async with AsyncGatewayClient(_target(stack), token=token, account_id="1001") as client:
        assert (await client.authenticate()).account_id == "1001"
        result = await client.send(_message("async token"), sender="svc@example.com", recipients=["bob@example.net"])
    assert list(result.message_ids) == [r["id"] for r in sandbox.emails()]


def test_a_token_acts_for_the_account_it_names_not_its_default(stack: Stack, sandbox: SandboxView) -> None:
    # demo's token defaults to 1001; 1002 is also demo's, and demo@example.com is a confirmed sender there.
    token = _access_token(stack)
    with _client(stack, token, "1002") as client:
        assert client.authenticate().account_id == "1002"
        client.send(_message("second account", "demo@example.com"), sender="demo@example.com", recipients=["c@x.test"])
    assert [r["account_id"] for r in sandbox.emails()] == [1002]


def test_an_unknown_token_is_invalid_token(stack: Stack, sandbox: SandboxView) -> None:
    with _client(stack, "not-a-token-at-all", "1001") as client, pytest.raises(InvalidCredentials) as caught:
        client.send(_message("bad token"), sender="svc@example.com", recipients=["bob@example.net"])
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.reason == "INVALID_TOKEN"
    assert sandbox.emails() == []


def test_an_account_the_token_may_not_use_is_account_forbidden(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)  # demo's: accounts 1001 and 1002, not the MFA user's 2001
    with _client(stack, token, "2001") as client, pytest.raises(PermissionDenied) as caught:
        client.send(_message("foreign account"), sender="svc@example.com", recipients=["bob@example.net"])
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.reason == "ACCOUNT_FORBIDDEN"
    assert caught.value.details.metadata == {"account_id": "2001"}
    assert sandbox.emails() == []


def test_a_revoked_token_is_refused_although_its_check_was_cached(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)
    with _client(stack, token, "1001") as client:
        client.send(_message("before revocation"), sender="svc@example.com", recipients=["bob@example.net"])
        sandbox.revoke_tokens()
        with pytest.raises(InvalidCredentials) as caught:
            client.send(_message("after revocation"), sender="svc@example.com", recipients=["bob@example.net"])
    assert caught.value.reason == "INVALID_TOKEN"
    assert len(sandbox.emails()) == 1


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ((("authorization", "Bearer abc"),), "metadata.x-cakemail-account-id"),
        ((("authorization", "Bearer abc"), ("x-cakemail-account-id", "acct-1")), "metadata.x-cakemail-account-id"),
        ((("authorization", "Basic abc"), ("x-cakemail-account-id", "1001")), "metadata.authorization"),
        ((("x-cakemail-account-id", "1001"),), "metadata.authorization"),
    ],
)
def test_malformed_token_metadata_names_the_key(
    stack: Stack, metadata: tuple[tuple[str, str], ...], field: str
) -> None:
    with grpc.insecure_channel(_target(stack)) as channel:
        stub = pb_grpc.ForwarderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Authenticate(pb.AuthenticateRequest(), metadata=metadata, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    info, bad = _details(caught.value)
    assert info.reason == "MALFORMED_REQUEST"
    assert [v.field for b in bad for v in b.field_violations] == [field]


def test_credentials_and_a_token_together_are_refused(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)
    start = pb.RawMessageStart(
        credentials=pb.Credentials(username="demo@example.com", password="demo-password"),
        envelope=pb.Envelope(mail_from="svc@example.com", rcpt_tos=["bob@example.net"]),
        data=_message("both").as_bytes(),
    )
    metadata = (("authorization", f"Bearer {token}"), ("x-cakemail-account-id", "1001"))
    with grpc.insecure_channel(_target(stack)) as channel:
        stub = pb_grpc.ForwarderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SubmitRawMessage(iter([pb.SubmitRawMessageRequest(start=start)]), metadata=metadata, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    _, bad = _details(caught.value)
    assert [v.field for b in bad for v in b.field_violations] == ["start.credentials"]
    assert sandbox.emails() == []


def _cli(stack: Stack, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CAKEMAIL_GATEWAY_", "CAKEMAIL_ACC"))}
    return subprocess.run(
        [*CLI, "--server", _target(stack), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_sends_with_a_token_from_the_environment(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)
    env = {"CAKEMAIL_ACCESS_TOKEN": token, "CAKEMAIL_ACCOUNT_ID": "1001"}
    done = _cli(stack, "--from", "svc@example.com", "--to", "bob@example.net", "--subject", "cli", "--json", env=env)
    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["message_ids"] == [r["id"] for r in sandbox.emails()]
    assert token not in done.stdout + done.stderr


def test_the_cli_exit_codes_for_tokens(stack: Stack) -> None:
    base = ["--from", "svc@example.com", "--to", "bob@example.net", "--subject", "cli"]
    bad = _cli(stack, *base, "--token", "nope", "--account-id", "1001", "--json", env={})
    assert bad.returncode == EXIT_AUTH
    assert json.loads(bad.stdout)["reason"] == "INVALID_TOKEN"
    no_account = _cli(stack, *base, "--token", "nope", env={})
    assert no_account.returncode == EXIT_USAGE
    assert "--account-id" in no_account.stderr
    both = _cli(stack, *base, "--token", "t", "--account-id", "1", "--username", "u", "--password", "p", env={})
    assert both.returncode == EXIT_USAGE


def test_the_v1_flavor_says_it_cannot_use_tokens(v1_stack: Stack) -> None:
    with _client(v1_stack, "any-token", "1001") as client, pytest.raises(PermissionDenied) as caught:
        client.authenticate()
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.reason == "TOKEN_AUTH_UNSUPPORTED"
    assert caught.value.details.metadata == {"api_flavor": "v1"}
    assert [v.type for v in caught.value.details.preconditions] == ["CAKEMAIL_API_FLAVOR"]


def test_the_token_never_reaches_logs_or_metrics(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)
    with _client(stack, token, "1001") as client:
        client.send(_message("secret check"), sender="svc@example.com", recipients=["bob@example.net"])
    with _client(stack, token + "-wrong", "1001") as client, pytest.raises(InvalidCredentials):
        client.send(_message("secret check, wrong"), sender="svc@example.com", recipients=["bob@example.net"])
    metrics = ""
    for port in (stack.ports.forwarder_http, stack.ports.edge_http):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics += response.read().decode()
    assert "forwarder_" in metrics  # the scrape worked and is what it seems
    assert token not in log_text(stack)
    assert token not in metrics


def test_a_small_message_in_one_call_takes_a_token_as_the_stream_does(stack: Stack, sandbox: SandboxView) -> None:
    token = _access_token(stack)
    metadata = (("authorization", f"Bearer {token}"), ("x-cakemail-account-id", "1001"))
    headers = pb.MessageHeaders(to=[pb.Address(email="bob@example.net")], subject="small with a token")
    getattr(headers, "from").CopyFrom(pb.Address(email="svc@example.com"))
    start = pb.MessageStart(
        envelope=pb.Envelope(mail_from="svc@example.com", rcpt_tos=["bob@example.net"]),
        headers=headers,
        text_body="sent with an access token",
    )
    with grpc.insecure_channel(_target(stack)) as channel:
        stub = pb_grpc.ForwarderServiceStub(channel)
        answer = stub.SubmitSmallMessage(pb.SubmitSmallMessageRequest(start=start), metadata=metadata, timeout=20)
        assert answer.result == pb.SUBMIT_RESULT_ACCEPTED
        both = pb.MessageStart()
        both.CopyFrom(start)
        both.credentials.CopyFrom(pb.Credentials(username="demo@example.com", password="demo-password"))
        with pytest.raises(grpc.RpcError) as caught:
            stub.SubmitSmallMessage(pb.SubmitSmallMessageRequest(start=both), metadata=metadata, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    _, bad = _details(caught.value)
    assert [v.field for b in bad for v in b.field_violations] == ["start.credentials"]
    [record] = sandbox.emails()
    assert record["email"] == "bob@example.net" and list(answer.message_ids) == [record["id"]]
