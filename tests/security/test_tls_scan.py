"""A real TLS scanner (Debian's testssl.sh) against both listeners of a running edge, against the forwarder's gRPC
port when TLS is on, and against a deliberately weakened server to show the verdict can fail."""

from __future__ import annotations

import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.security import testssl

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),  # a scan takes ~25 s; leave room on a loaded machine (finish_scan stops at 120 s)
    pytest.mark.skipif(testssl.TESTSSL is None, reason="testssl.sh missing (make test installs it)"),
]


@pytest.fixture(scope="module")
def scanned_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack with TLS on the forwarder's gRPC port too (the dev certificate; the edge verifies it with the dev
    CA). Its SMTP listeners are the default ones: forwarder TLS changes only the edge's side as a gRPC client.

    A stack of this module's own, not the session's: a scan makes thousands of handshakes, many meant to fail, and
    they stay off the stack the other tests share."""
    forwarder = {
        "GRPC_TLS_CERT_FILE": str(dev_certificate.cert_file),
        "GRPC_TLS_KEY_FILE": str(dev_certificate.key_file),
    }
    edge = {"FORWARDER_TLS_CA_FILE": str(dev_certificate.ca_file)}
    logs = tmp_path_factory.mktemp("tls-scan-logs")
    with Stack(
        StackPorts.ephemeral(), dev_certificate, log_dir=logs, extra_env={"forwarder": forwarder, "edge": edge}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def edge_scans(
    scanned_stack: Stack, dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[testssl.Finding]]:
    """Both listeners scanned at once (two processes), so the suite pays for one scan's wall time."""
    out = tmp_path_factory.mktemp("testssl")
    targets = {
        "implicit-465": (scanned_stack.ports.smtp_implicit_tls, False),
        "starttls-587": (scanned_stack.ports.smtp_starttls, True),
    }
    running = {
        name: (
            testssl.start_scan(port, out / f"{name}.json", dev_certificate.ca_file, starttls=starttls),
            out / f"{name}.json",
        )
        for name, (port, starttls) in targets.items()
    }
    return {name: testssl.finish_scan(process, json_file) for name, (process, json_file) in running.items()}


@pytest.mark.parametrize("listener", ["implicit-465", "starttls-587"])
def test_edge_listener_passes_the_tls_policy(edge_scans: dict[str, list[testssl.Finding]], listener: str) -> None:
    findings = edge_scans[listener]
    assert testssl.problems(findings) == []
    offered = {f.id: f.finding for f in findings}
    assert offered["TLS1_2"] == "offered"
    assert offered["TLS1_3"].startswith("offered")


@pytest.fixture(scope="module")
def second_scans(
    scanned_stack: Stack,
    weak_server: tuple[int, Path],
    dev_certificate: DevCertificate,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, list[testssl.Finding]]:
    """The forwarder's gRPC port and the weakened server, scanned at once (two processes, as the edge's pair)."""
    out = tmp_path_factory.mktemp("testssl-second")
    weak_port, weak_ca = weak_server
    targets = {"grpc": (scanned_stack.ports.forwarder_grpc, dev_certificate.ca_file), "weak": (weak_port, weak_ca)}
    running = {
        name: (testssl.start_scan(port, out / f"{name}.json", ca_file, starttls=False), out / f"{name}.json")
        for name, (port, ca_file) in targets.items()
    }
    return {name: testssl.finish_scan(process, json_file) for name, (process, json_file) in running.items()}


def test_forwarder_grpc_port_passes_the_tls_policy(second_scans: dict[str, list[testssl.Finding]]) -> None:
    """The same verdict as the edge's listeners: TLS 1.2+ only, forward-secret AEAD suites only, a sound
    certificate (gRPC's own TLS stack, not Python's ssl, so its defaults are checked here rather than assumed)."""
    findings = second_scans["grpc"]
    assert testssl.problems(findings) == []
    offered = {f.id: f.finding for f in findings}
    assert offered["TLS1_2"] == "offered"
    assert offered["TLS1_3"].startswith("offered")


class _HandshakeOnly(socketserver.BaseRequestHandler):
    """Completes a TLS handshake (whatever the scanner offers and the context allows), then hangs up."""

    context: ssl.SSLContext

    def handle(self) -> None:
        self.request.settimeout(5)
        try:
            with self.server.context.wrap_socket(self.request, server_side=True) as tls:  # type: ignore[attr-defined]
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass


class _WeakServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _HandshakeOnly)
        self.context = context


@pytest.fixture(scope="module")
def weak_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """What the edge must never look like: TLS 1.0+, every cipher OpenSSL has (CBC, static RSA key exchange), and a
    certificate for another name."""
    ca = trustme.CA()
    leaf = ca.issue_cert("elsewhere.test", key_type=trustme.KeyType.RSA)
    directory = tmp_path_factory.mktemp("weak-tls")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.warns(DeprecationWarning):
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    leaf.configure_cert(context)
    server = _WeakServer(context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1]), ca_file
    server.shutdown()
    server.server_close()


def test_the_verdict_fails_a_weakened_server(second_scans: dict[str, list[testssl.Finding]]) -> None:
    findings = second_scans["weak"]
    reasons = testssl.problems(findings)
    assert any(reason.startswith("TLS1 ") for reason in reasons), reasons
    assert any(reason.startswith("cipher without forward secrecy: TLS_RSA_") for reason in reasons), reasons
    assert any(reason.startswith("cipher without AEAD: ") and "_CBC_" in reason for reason in reasons), reasons
    assert any(reason.startswith("certificate cert_trust") for reason in reasons), reasons


def test_the_verdict_refuses_an_empty_scan() -> None:
    reasons = testssl.problems([])
    assert "no cipher_x findings: the scan did not list the accepted cipher suites" in reasons
    assert any("TLS1_2" in reason for reason in reasons)
