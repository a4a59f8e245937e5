"""`make run` (`python -m devstack`) as a developer uses it: configured by the environment, over real sockets."""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack.stack import StackPorts
from tests.devstack.running import BANNER_HEADLINE, MakeRun, port_settings, process_environment
from tests.smtp_wire import WireClient

pytestmark = pytest.mark.e2e

ALICE = {
    "username": "alice@example.test",
    "password": "alice-secret-7",
    "account_id": "acct-alice",
    "email": "alice@example.test",
    "senders": [{"email": "alice@example.test", "name": "Alice"}],  # v2: the From must be a confirmed sender
}


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[list[MakeRun]]:
    started: list[MakeRun] = []
    yield started
    for run in started:
        run.kill()


def test_make_run_honours_hostname_ports_and_accounts_from_the_environment(
    make_run: list[MakeRun], tmp_path: Path
) -> None:
    ports = StackPorts.ephemeral()
    settings = {
        **port_settings(ports),
        "SMTP_HOSTNAME": "mail.example.test",
        "SANDBOX_ACCOUNTS": json.dumps([ALICE]),
    }
    run = MakeRun(settings, tmp_path)
    make_run.append(run)
    banner = run.wait_for(BANNER_HEADLINE)

    with WireClient.connect(ports.smtp_starttls) as plain:
        greeting = plain.reply()
        assert (greeting.code, greeting.last.split()[0]) == (220, "mail.example.test")
        assert plain.cmd("EHLO client.test").lines[0] == "mail.example.test"
    tls = ssl.create_default_context(cafile=str(tmp_path / ".dev/certs/ca.pem"))
    with WireClient.connect(ports.smtp_implicit_tls, tls=tls) as implicit:
        assert implicit.reply().last.startswith("mail.example.test")

    # The banner shows what is configured: Alice, not the demo account; her password stays out of the output.
    assert f"127.0.0.1:{ports.smtp_starttls} (STARTTLS)" in banner
    assert "alice@example.test" in banner
    assert "demo@example.com" not in banner and "demo-password" not in banner
    assert f"http://127.0.0.1:{ports.sandbox_http}" in banner
    # ... and she really can log in and send through it.
    client = smtplib.SMTP("127.0.0.1", ports.smtp_starttls, timeout=30)
    client.starttls(context=tls)
    client.login(ALICE["username"], ALICE["password"])
    client.sendmail("alice@example.test", ["bob@example.net"], b"Subject: hi\r\n\r\nfrom make run\r\n")
    client.quit()

    assert run.interrupt() == 0
    assert ALICE["password"] not in run.output


def test_a_bare_http_port_is_refused_with_the_variables_to_use(make_run: list[MakeRun], tmp_path: Path) -> None:
    run = MakeRun({**port_settings(StackPorts.ephemeral()), "HTTP_PORT": "9999"}, tmp_path)
    make_run.append(run)
    assert run.wait_exit() == 2
    assert "EDGE_HTTP_PORT" in run.output and "FORWARDER_HTTP_PORT" in run.output


class _StandInApi(BaseHTTPRequestHandler):
    """A loopback stand-in for a real Cakemail API: records every request, refuses every login."""

    requests: list[tuple[str, str, bytes]]

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).requests.append((self.command, self.path, body))
        payload = json.dumps({"detail": [{"msg": "Incorrect username or password", "type": "auth"}]}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def stand_in_api() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    handler = type("Recording", (_StandInApi,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    server.shutdown()
    server.server_close()


def test_with_cakemail_api_url_only_edge_and_forwarder_start_against_that_api(
    make_run: list[MakeRun], tmp_path: Path, stand_in_api: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    api_url, requests = stand_in_api
    ports = StackPorts.ephemeral()
    run = MakeRun({**port_settings(ports), "CAKEMAIL_API_URL": api_url, "CAKEMAIL_API_FLAVOR": "v1"}, tmp_path)
    make_run.append(run)
    banner = run.wait_for(BANNER_HEADLINE)

    children = run.children()
    assert sorted(cmd.rsplit(" ", 1)[-1] for cmd in children.values()) == ["forwarder", "smtp_edge"], children
    [forwarder] = [pid for pid, cmd in children.items() if cmd.endswith("-m forwarder")]
    environment = process_environment(forwarder)
    assert environment["CAKEMAIL_API_URL"] == api_url
    assert environment["CAKEMAIL_API_FLAVOR"] == "v1"  # passed through for the forwarder to read
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", ports.sandbox_http), 2):
        pass
    assert f"{api_url} (CAKEMAIL_API_URL; no sandbox)" in banner
    assert "demo-password" not in banner and "/sandbox/emails" not in banner

    # A login through the edge reaches the stand-in: the forwarder really calls the API it was given.
    client = smtplib.SMTP("127.0.0.1", ports.smtp_starttls, timeout=30)
    client.starttls(context=ssl.create_default_context(cafile=str(tmp_path / ".dev/certs/ca.pem")))
    with pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("user@example.test", "not-a-real-password")
    client.quit()
    assert any(b"user" in body and b"example.test" in body for _, _, body in requests), requests

    assert run.interrupt() == 0


def test_a_taken_port_stops_make_run_with_the_port_named(make_run: list[MakeRun], tmp_path: Path) -> None:
    ports = StackPorts.ephemeral()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports.edge_http))
        holder.listen()
        run = MakeRun(port_settings(ports), tmp_path)
        make_run.append(run)
        assert run.wait_exit() == 1
    assert f"smtp-edge HTTP (health, metrics) cannot listen on 127.0.0.1:{ports.edge_http}" in run.output
    assert "make run: smtp-edge exited with 1" in run.output
    assert "Traceback" not in run.output


def test_smtp_listens_only_once_the_stack_behind_it_is_ready(make_run: list[MakeRun], tmp_path: Path) -> None:
    """What a new user (and the fresh-clone smoke check) does: connect the moment 587 answers, and log in at once.
    An edge listening before its forwarder is ready would answer that login 454."""
    ports = StackPorts.ephemeral()
    run = MakeRun(port_settings(ports), tmp_path)
    make_run.append(run)
    deadline = time.monotonic() + 60
    while True:
        assert run.process.poll() is None, run.output
        try:
            client = smtplib.SMTP("127.0.0.1", ports.smtp_starttls, timeout=30)
            break
        except OSError:
            assert time.monotonic() < deadline, "SMTP never listened"
            time.sleep(0.02)
    with client:
        client.starttls(context=ssl.create_default_context(cafile=str(tmp_path / ".dev/certs/ca.pem")))
        assert client.login("demo@example.com", "demo-password")[0] == 235
    assert run.interrupt() == 0
