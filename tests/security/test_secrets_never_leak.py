"""Secrets never reach logs or metrics: distinctive passwords, API tokens, bodies and attachments are sent through
every path (AUTH PLAIN, AUTH LOGIN, failed AUTHs, message bodies, attachments, a direct gRPC submission with
credentials, the API token the forwarder holds), then every log line of every service and every /metrics body of the
edge and the forwarder are searched for them, as text and in base64 at every alignment."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import ssl
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import grpc
import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView
from tests.smtp_wire import WireClient, b64, open_session

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:12]
USERNAME = f"leak-check-{RUN}@example.com"
PASSWORD = f"Pw-never-logged-{RUN}-x9"
WRONG_PASSWORD = f"Wrong-pw-never-logged-{RUN}-q7"
GRPC_PASSWORD = PASSWORD  # the same account over gRPC: credentials travel in the request
BODY_SECRET = f"body-never-logged-{RUN}"
ATTACHMENT_SECRET = f"attachment-never-logged-{RUN}".encode()
GRPC_BODY_SECRET = f"grpc-body-never-logged-{RUN}"


class RecordingApiProxy(http.server.ThreadingHTTPServer):
    """A real HTTP hop between the forwarder and the sandbox that remembers the API keys it sees (the tokens the
    sandbox issues are random, so this is how the test learns the one the forwarder holds)."""

    daemon_threads = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.api_keys: set[str] = set()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingApiProxy

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme == "Bearer" and token:
            self.server.api_keys.add(token)
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        if b"api_key" in data:
            self.server.api_keys.add(json.loads(data)["api_key"])
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def leak_stack(
    dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, RecordingApiProxy]]:
    ports = StackPorts.ephemeral()
    proxy = RecordingApiProxy(ports.sandbox_http)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    accounts = [
        {"username": "demo@example.com", "password": "demo-password", "account_id": "acct-demo", "email": "d@x.test"},
        {
            "username": USERNAME,
            "password": PASSWORD,
            "account_id": f"acct-{RUN}",
            "email": USERNAME,
            "senders": [{"email": USERNAME}],  # v2: the From must be a confirmed sender
        },
    ]
    stack = Stack(
        ports,
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("leak-logs"),
        extra_env={
            "sandbox": {"SANDBOX_ACCOUNTS": json.dumps(accounts)},
            "forwarder": {"CAKEMAIL_API_URL": f"http://127.0.0.1:{proxy.server_address[1]}"},
        },
    )
    with stack:
        yield stack, proxy
    proxy.shutdown()
    proxy.server_close()


def b64_forms(secret: bytes) -> set[bytes]:
    """The secret as it appears inside any base64 text, whatever its offset there: for each of the three
    alignments, the part of the encoding that depends on the secret's bytes alone."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret)
        forms.add(encoded[(4 * offset + 2) // 3 + 1 : len(encoded) - 4])
    return forms


def needles(secret: str | bytes) -> set[bytes]:
    raw = secret.encode() if isinstance(secret, str) else secret
    return {raw, *b64_forms(raw)}


def message(subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = USERNAME
    mail["To"] = "bob@example.net"
    mail["Subject"] = subject
    mail.set_content(f"Hello,\n{BODY_SECRET}\n")
    mail.add_attachment(ATTACHMENT_SECRET * 4, maintype="application", subtype="pdf", filename="s.pdf")
    return mail.as_bytes().replace(b"\n", b"\r\n")


def send(client: WireClient, raw: bytes) -> None:
    assert client.cmd(f"MAIL FROM:<{USERNAME}>").code == 250
    assert client.cmd("RCPT TO:<bob@example.net>").code == 250
    assert client.cmd("DATA").code == 354
    client.send(raw + b".\r\n")
    assert client.reply().code == 250


def exercise_every_path(stack: Stack, tls: ssl.SSLContext) -> None:
    port = stack.ports.smtp_starttls
    with open_session(port, tls, login=False) as client:  # AUTH PLAIN, then a message with an attachment
        assert client.login_plain(USERNAME, PASSWORD).code == 235
        send(client, message("plain"))
    with open_session(stack.ports.smtp_implicit_tls, tls, implicit=True, login=False) as client:  # AUTH LOGIN
        assert client.cmd("AUTH LOGIN").code == 334
        assert client.cmd(b64(USERNAME)).code == 334
        assert client.cmd(b64(PASSWORD)).code == 235
        send(client, message("login"))
    with open_session(port, tls, login=False) as client:  # failed AUTHs, both mechanisms
        assert client.login_plain(USERNAME, WRONG_PASSWORD).code == 535
        assert client.cmd(f"AUTH LOGIN {b64(USERNAME)}").code == 334
        assert client.cmd(b64(WRONG_PASSWORD)).code == 535
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports.forwarder_grpc}") as channel:  # a direct gRPC call
        stub = pb_grpc.ForwarderServiceStub(channel)
        credentials = pb.Credentials(username=USERNAME, password=GRPC_PASSWORD)
        headers = pb.MessageHeaders(to=[pb.Address(email="bob@example.net")], subject="grpc")
        getattr(headers, "from").CopyFrom(pb.Address(email=USERNAME))
        start = pb.MessageStart(
            credentials=credentials,
            envelope=pb.Envelope(mail_from=USERNAME, rcpt_tos=["bob@example.net"]),
            headers=headers,
            text_body=GRPC_BODY_SECRET,
        )
        response = stub.SubmitMessage(iter([pb.SubmitMessageRequest(start=start)]), timeout=30)
        assert response.result == pb.SUBMIT_RESULT_ACCEPTED
        with pytest.raises(grpc.RpcError):
            stub.Authenticate(
                pb.AuthenticateRequest(credentials=pb.Credentials(username=USERNAME, password=WRONG_PASSWORD)),
                timeout=10,
            )


def everything_observable(stack: Stack) -> dict[str, bytes]:
    seen = {service.name: Path(service.log_path).read_bytes() for service in stack.services if service.log_path}
    for name, url in (("edge /metrics", stack.edge_http_url), ("forwarder /metrics", stack.forwarder_http_url)):
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            seen[name] = response.read()
    return seen


def leaks(observed: dict[str, bytes], secrets: dict[str, set[bytes]]) -> list[str]:
    return [
        f"{secret_name} in {where}"
        for where, text in observed.items()
        for secret_name, forms in secrets.items()
        if any(form in text for form in forms)
    ]


def test_no_secret_reaches_a_log_line_or_a_metric(
    leak_stack: tuple[Stack, RecordingApiProxy], client_tls: ssl.SSLContext
) -> None:
    stack, proxy = leak_stack
    exercise_every_path(stack, client_tls)
    assert proxy.api_keys, "the proxy saw no API key: the forwarder did not go through it"
    assert len(SandboxView(stack.sandbox_url).emails(content=False)) == 3  # every path really ran
    secrets = {
        "password": needles(PASSWORD),
        "wrong password": needles(WRONG_PASSWORD),
        "AUTH PLAIN blob": needles(f"\0{USERNAME}\0{PASSWORD}"),
        "failed AUTH PLAIN blob": needles(f"\0{USERNAME}\0{WRONG_PASSWORD}"),
        "message body": needles(BODY_SECRET),
        "attachment": needles(ATTACHMENT_SECRET),
        "gRPC body": needles(GRPC_BODY_SECRET),
        **{f"API key {key[:4]}...": needles(key) for key in proxy.api_keys},
    }
    observed = everything_observable(stack)
    assert all(observed.values()), "a log or metrics body was empty: nothing to search"
    assert leaks(observed, secrets) == []


def test_the_search_finds_a_secret_where_it_is(leak_stack: tuple[Stack, RecordingApiProxy]) -> None:
    """The search is not vacuous: a planted secret, as text or inside base64 at any offset, is found."""
    planted = {"log": b"x " + base64.b64encode(b"ab" + PASSWORD.encode() + b"cd") + b" y", "m": b"z"}
    assert leaks(planted, {"password": needles(PASSWORD)}) == ["password in log"]
    assert leaks({"log": BODY_SECRET.encode()}, {"body": needles(BODY_SECRET)}) == ["body in log"]
    for offset in range(3):
        text = base64.b64encode(b"\1" * offset + ATTACHMENT_SECRET + b"\2")
        assert any(form in text for form in b64_forms(ATTACHMENT_SECRET)), offset
