"""Abuse limits on real stacks: message rates per IP and per account, the deny and allow lists (edited while the edge
runs), counters shared by two edge processes through a real redis-server, and the edge while that Redis is down.

Client IPs are chosen with a PROXY protocol header (PROXY_PROTOCOL=true), the way a load balancer reports them.
Windows are a few seconds (RATE_LIMIT_WINDOW_SECONDS) so "the next minute" comes without long sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devstack.certs import DevCertificate
from devstack.stack import ServiceProcess, Stack, StackPorts, free_port
from tests.conftest import SandboxView, metric
from tests.e2e.v2 import subject_of
from tests.redis_server import RedisServer
from tests.smtp_wire import Reply, WireClient

pytestmark = pytest.mark.e2e

WINDOW = 4  # seconds: long enough for a test's few sessions on a busy machine, short enough to wait out
PER_IP = 3

ALLOWED_NET = "198.51.100.0/24"
DENIED_NET = "192.0.2.0/24"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def connect(port: int, src: str, tls: object) -> tuple[WireClient, Reply]:
    """Implicit TLS behind a PROXY v1 header naming `src` as the client."""
    header = f"PROXY TCP4 {src} 127.0.0.1 40000 {port}\r\n".encode()
    client = WireClient.connect(port, preamble=header, tls=tls)  # type: ignore[arg-type]
    return client, client.reply()


def session(port: int, src: str, tls: object, password: str = "demo-password") -> tuple[WireClient, Reply]:
    client, greeting = connect(port, src, tls)
    assert greeting.code == 220, greeting
    assert client.cmd("EHLO client.test").code == 250
    return client, client.login_plain("demo@example.com", password)


def send(client: WireClient, subject: str) -> Reply:
    """One transaction; the MAIL reply when MAIL is refused (the message is then never sent)."""
    mail = client.cmd("MAIL FROM:<demo@example.com>")
    if mail.code != 250:
        return mail
    assert client.cmd("RCPT TO:<bob@example.net>").code == 250
    assert client.cmd("DATA").code == 354
    # A Message-ID of its own: the same bytes again would be a resend, delivered once per recipient.
    client.send(f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\nSubject: {subject}\r\n\r\nbody\r\n.\r\n".encode())
    return client.reply()


def subjects(sandbox: SandboxView) -> list[str]:
    return [str(subject_of(e)) for e in sandbox.emails()]


def abuse_env(lists: Path, **extra: str) -> dict[str, str]:
    return {
        "PROXY_PROTOCOL": "true",
        "RATE_LIMIT_PER_IP_PER_MINUTE": str(PER_IP),
        "RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "0",
        "RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
        "DENY_LIST_FILE": str(lists / "deny"),
        "ALLOW_LIST_FILE": str(lists / "allow"),
        "ACCESS_LISTS_CHECK_INTERVAL_SECONDS": "0.1",
        "AUTH_FAILURE_LIMIT": "2",
        "AUTH_FAILURE_WINDOW_SECONDS": "60",
        "AUTH_FAILURE_COOLDOWN_SECONDS": "60",
        **extra,
    }


class TwoEdges:
    """One stack (sandbox, forwarder, edge A) plus a second edge process B: same forwarder, same Redis."""

    def __init__(self, stack: Stack, edge_b: ServiceProcess, b_port: int, b_http: int, lists: Path) -> None:
        self.stack = stack
        self.edge_b = edge_b
        self.a_port = stack.ports.smtp_implicit_tls
        self.b_port = b_port
        self.b_http = b_http
        self.lists = lists


@pytest.fixture(scope="module")
def edges(
    dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[TwoEdges]:
    lists = tmp_path_factory.mktemp("access-lists")
    (lists / "deny").write_text(f"# denied at connect\n{DENIED_NET}\n")
    (lists / "allow").write_text(f"{ALLOWED_NET}\n")
    env = abuse_env(lists, REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"test-abuse:{uuid.uuid4().hex}")
    logs = tmp_path_factory.mktemp("abuse-logs")
    stack = Stack(StackPorts.ephemeral(), dev_certificate, log_dir=logs, extra_env={"edge": env})
    with stack:
        b_port, b_http = free_port(), free_port()
        b_env = {
            **stack.edge.env,
            "SMTP_STARTTLS_PORT": str(free_port()),
            "SMTP_TLS_PORT": str(b_port),
            "HTTP_PORT": str(b_http),
        }
        edge_b = replace(
            stack.edge,
            name="smtp-edge-b",
            env=b_env,
            ready_url=f"http://127.0.0.1:{b_http}/health/ready",
            log_path=logs / "smtp-edge-b.log",
            process=None,
        )
        edge_b.start()
        try:
            edge_b.wait_ready(time.monotonic() + 60)
            yield TwoEdges(stack, edge_b, b_port, b_http, lists)
        finally:
            assert edge_b.stop() == 0


@pytest.fixture
def sandbox(edges: TwoEdges) -> SandboxView:
    return SandboxView.cleared(edges.stack.sandbox_url)


def test_per_ip_limit_refuses_at_mail_and_the_next_window_passes(
    edges: TwoEdges, sandbox: SandboxView, client_tls: object
) -> None:
    refused_before = metric(edges.stack.ports.edge_http, "smtp_policy_refusals_total", policy="rate_ip")
    tag = uuid.uuid4().hex[:8]
    client, login = session(edges.a_port, "203.0.113.1", client_tls)
    with client:
        assert login.code == 235
        for n in range(PER_IP):
            assert send(client, f"{tag}-{n}").code == 250
        over = send(client, f"{tag}-over")
        assert (over.code, over.last) == (
            450,
            f"4.7.1 Too many messages from your address ({PER_IP} per {WINDOW} seconds), try again later",
        )
        assert client.cmd("RCPT TO:<bob@example.net>").code == 503  # no transaction was opened
        assert subjects(sandbox) == [f"{tag}-{n}" for n in range(PER_IP)]  # the refused one was never forwarded
        # Another client is not affected.
        other, other_login = session(edges.a_port, "203.0.113.2", client_tls)
        with other:
            assert other_login.code == 235
            assert send(other, f"{tag}-other").code == 250
        # The same session, once the window is over: the client's retry goes through.
        wait_until(lambda: client.cmd("MAIL FROM:<demo@example.com>").code == 250, WINDOW + 5, "the next window")
        assert client.cmd("RCPT TO:<bob@example.net>").code == 250
        assert client.cmd("DATA").code == 354
        client.send(f"Subject: {tag}-retried\r\n\r\nbody\r\n.\r\n".encode())
        assert client.reply().code == 250
    assert f"{tag}-retried" in subjects(sandbox) and f"{tag}-over" not in subjects(sandbox)
    assert metric(edges.stack.ports.edge_http, "smtp_policy_refusals_total", policy="rate_ip") > refused_before


def test_two_edges_share_the_rate_counters(edges: TwoEdges, sandbox: SandboxView, client_tls: object) -> None:
    tag = uuid.uuid4().hex[:8]
    on_a, login_a = session(edges.a_port, "203.0.113.10", client_tls)
    on_b, login_b = session(edges.b_port, "203.0.113.10", client_tls)
    with on_a, on_b:
        assert (login_a.code, login_b.code) == (235, 235)
        assert send(on_a, f"{tag}-a1").code == 250
        assert send(on_b, f"{tag}-b1").code == 250
        assert send(on_a, f"{tag}-a2").code == 250
        over = send(on_b, f"{tag}-b2")  # 4th from this IP across both pods; B alone has seen one
        assert (over.code, over.enhanced()) == (450, "4.7.1")
    assert sorted(subjects(sandbox)) == sorted([f"{tag}-a1", f"{tag}-b1", f"{tag}-a2"])
    assert metric(edges.b_http, "smtp_policy_refusals_total", policy="rate_ip") >= 1


def test_two_edges_share_the_auth_throttle(edges: TwoEdges, client_tls: object) -> None:
    src = "203.0.113.20"
    on_a, first = session(edges.a_port, src, client_tls, password="wrong")
    with on_a:
        assert first.code == 535
    on_b, second = session(edges.b_port, src, client_tls, password="wrong")  # the 2nd failure, on the other pod
    with on_b:
        assert second.code == 535
        goodbye = on_b.reply()
        assert (goodbye.code, goodbye.enhanced()) == (421, "4.7.0")
    again, greeting = connect(edges.a_port, src, client_tls)  # pod A turns it away at connect
    again.close()
    assert (greeting.code, greeting.enhanced()) == (421, "4.7.0")


def test_deny_list_refuses_at_connect_and_follows_edits(edges: TwoEdges, client_tls: object) -> None:
    client, greeting = connect(edges.a_port, "192.0.2.44", client_tls)
    with client:
        assert (greeting.code, greeting.last) == (421, "4.7.1 Connections from your address are not accepted here")
        assert client.closed_by_server()

    def greeted(src: str, code: int) -> Callable[[], bool]:
        def check() -> bool:
            probe, reply = connect(edges.a_port, src, client_tls)
            probe.close()
            return reply.code == code

        return check

    deny = edges.lists / "deny"
    original = deny.read_text()
    try:
        assert greeted("203.0.113.77", 220)()
        staged = deny.with_suffix(".new")
        staged.write_text(original + "203.0.113.77/32\n")
        staged.replace(deny)  # edited while both edges run: no restart
        wait_until(greeted("203.0.113.77", 421), 5, "the edited deny list to apply")
        assert greeted("192.0.2.44", 421)()
    finally:
        staged = deny.with_suffix(".new")
        staged.write_text(original)
        staged.replace(deny)
    wait_until(greeted("203.0.113.77", 220), 5, "the restored deny list to apply")


def test_allow_list_exempts_from_rate_limits_and_the_auth_throttle(
    edges: TwoEdges, sandbox: SandboxView, client_tls: object
) -> None:
    tag = uuid.uuid4().hex[:8]
    client, login = session(edges.a_port, "198.51.100.5", client_tls, password="wrong")
    with client:
        assert login.code == 535
        for _ in range(4):  # twice the failure limit
            assert client.login_plain("demo@example.com", "wrong").code == 535
        assert client.login_plain("demo@example.com", "demo-password").code == 235
        for n in range(PER_IP + 3):
            assert send(client, f"{tag}-{n}").code == 250
    assert len(subjects(sandbox)) == PER_IP + 3


@pytest.fixture(scope="module")
def per_account_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No REDIS_URL: the edge counts on its own. Only the per-account limit is on."""
    lists = tmp_path_factory.mktemp("no-lists")
    (lists / "deny").write_text("")
    (lists / "allow").write_text("")
    env = abuse_env(lists, RATE_LIMIT_PER_IP_PER_MINUTE="0", RATE_LIMIT_PER_ACCOUNT_PER_MINUTE="3")
    stack = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("per-account-logs"),
        extra_env={"edge": env},
    )
    with stack:
        yield stack


def test_per_account_limit_counts_across_client_addresses(per_account_stack: Stack, client_tls: object) -> None:
    sandbox = SandboxView(per_account_stack.sandbox_url)
    sandbox.clear()
    port = per_account_stack.ports.smtp_implicit_tls
    tag = uuid.uuid4().hex[:8]
    for n in range(3):
        client, login = session(port, f"203.0.113.{100 + n}", client_tls)
        with client:
            assert login.code == 235
            assert send(client, f"{tag}-{n}").code == 250
    client, login = session(port, "203.0.113.110", client_tls)
    with client:
        over = send(client, f"{tag}-over")
        assert (over.code, over.last) == (
            450,
            f"4.7.1 Too many messages for this account (3 per {WINDOW} seconds), try again later",
        )
        wait_until(lambda: client.cmd("MAIL FROM:<demo@example.com>").code == 250, WINDOW + 5, "the next window")
    assert sorted(subjects(sandbox)) == [f"{tag}-{n}" for n in range(3)]
    assert metric(per_account_stack.ports.edge_http, "smtp_policy_refusals_total", policy="rate_account") >= 1


def test_redis_down_the_edge_keeps_accepting_and_limits_per_pod(
    dev_certificate: DevCertificate, tmp_path: Path, client_tls: object
) -> None:
    """Fail open to this pod's own counters: mail flows while Redis is dead, and one pod still enforces its limit."""
    redis = RedisServer(tmp_path / "redis").start()
    (tmp_path / "deny").write_text("")
    (tmp_path / "allow").write_text("")
    env = abuse_env(tmp_path, REDIS_URL=redis.url, REDIS_TIMEOUT_SECONDS="0.5", REDIS_RETRY_AFTER_SECONDS="60")
    stack = Stack(StackPorts.ephemeral(), dev_certificate, log_dir=tmp_path, extra_env={"edge": env})
    try:
        stack.start()
        sandbox = SandboxView(stack.sandbox_url)
        redis.stop()
        port = stack.ports.smtp_implicit_tls
        tag = uuid.uuid4().hex[:8]
        client, login = session(port, "203.0.113.200", client_tls)
        with client:
            assert login.code == 235  # the AUTH throttle's Redis calls fail open too
            for n in range(PER_IP):
                assert send(client, f"{tag}-{n}").code == 250
            over = send(client, f"{tag}-over")
            assert (over.code, over.enhanced()) == (450, "4.7.1")  # the pod's own count
        assert sorted(subjects(sandbox)) == [f"{tag}-{n}" for n in range(PER_IP)]
        assert metric(stack.ports.edge_http, "smtp_shared_counters_unavailable_total") >= 1
    finally:
        stack.stop()
        redis.stop()


def test_a_broken_list_file_at_start_is_one_line_and_exit_1(tmp_path: Path, dev_certificate: DevCertificate) -> None:
    deny = tmp_path / "deny"
    deny.write_text("192.0.2.0/24\n192.0.2.300\n")
    result = subprocess.run(
        [sys.executable, "-m", "smtp_edge"],
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DENY_LIST_FILE": str(deny),
            "TLS_CERT_FILE": str(dev_certificate.cert_file),
            "TLS_KEY_FILE": str(dev_certificate.key_file),
            "SMTP_STARTTLS_PORT": "0",
            "SMTP_TLS_PORT": "0",
            "HTTP_PORT": str(free_port()),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"{deny}:2: not an IP network: '192.0.2.300'" in output and "Traceback" not in output, output
