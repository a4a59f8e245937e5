"""TLS and mutual TLS on the forwarder's gRPC port, from files, hot-reloaded: the edge and the client package both
present client certificates; a caller without one is refused; a renewed server certificate is served at once."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from cakemail_gateway import GatewayClient, RetryPolicy, TemporaryError, TlsConfig
from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView

pytestmark = pytest.mark.e2e


@dataclass
class Pki:
    ca: trustme.CA
    directory: Path

    def write(self, name: str, cert: trustme.LeafCert) -> tuple[Path, Path]:
        """Written aside, then renamed into place: new inodes, as a Kubernetes Secret update swaps its files."""
        chain, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        for path, data in (
            (key, cert.private_key_pem.bytes()),
            (chain, b"".join(b.bytes() for b in cert.cert_chain_pems)),
        ):
            staged = path.with_suffix(".new")
            staged.write_bytes(data)
            os.replace(staged, path)
        return chain, key

    def client_tls(self, name: str) -> TlsConfig:
        chain, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        return TlsConfig(self.ca.cert_pem.bytes(), chain.read_bytes(), key.read_bytes())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    made = Pki(trustme.CA(), tmp_path_factory.mktemp("grpc-pki"))
    made.ca.cert_pem.write_to_path(str(made.directory / "ca.pem"))
    made.write("server", made.ca.issue_cert("127.0.0.1", "localhost"))
    made.write("edge", made.ca.issue_cert("smtp-edge.gateway.internal"))
    made.write("caller", made.ca.issue_cert("billing.internal"))
    return made


@pytest.fixture(scope="module")
def tls_stack(pki: Pki, dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = pki.directory
    forwarder = {
        "GRPC_TLS_CERT_FILE": str(d / "server.crt"),
        "GRPC_TLS_KEY_FILE": str(d / "server.key"),
        "GRPC_TLS_CLIENT_CA_FILE": str(d / "ca.pem"),
    }
    edge = {
        "FORWARDER_TLS_CA_FILE": str(d / "ca.pem"),
        "FORWARDER_TLS_CERT_FILE": str(d / "edge.crt"),
        "FORWARDER_TLS_KEY_FILE": str(d / "edge.key"),
    }
    logs = tmp_path_factory.mktemp("grpc-tls-logs")
    stack = Stack(
        StackPorts.ephemeral(), dev_certificate, log_dir=logs, extra_env={"forwarder": forwarder, "edge": edge}
    )
    with stack:
        yield stack


def _message(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "svc@example.com"
    message["To"] = "bob@example.net"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="tls.example")
    message.set_content("over mTLS\n")
    return message


def _target(stack: Stack) -> str:
    return f"127.0.0.1:{stack.ports.forwarder_grpc}"


def test_client_package_sends_over_mtls(tls_stack: Stack, pki: Pki) -> None:
    sandbox = SandboxView(tls_stack.sandbox_url)
    sandbox.clear()
    with GatewayClient(
        _target(tls_stack), username="demo@example.com", password="demo-password", tls=pki.client_tls("caller")
    ) as client:
        result = client.send(_message("mtls client"), sender="svc@example.com", recipients=["bob@example.net"])
    assert list(result.message_ids) == [r["id"] for r in sandbox.emails()]


def test_a_caller_without_a_client_certificate_is_refused(tls_stack: Stack, pki: Pki) -> None:
    no_cert = TlsConfig(root_certificates=pki.ca.cert_pem.bytes())
    client = GatewayClient(
        _target(tls_stack),
        username="demo@example.com",
        password="demo-password",
        tls=no_cert,
        timeout=5,
        retry=RetryPolicy(max_attempts=1),
    )
    with client, pytest.raises(TemporaryError) as caught:
        client.send(_message("no client cert"), sender="svc@example.com", recipients=["bob@example.net"])
    assert caught.value.code is not None and caught.value.code.name == "UNAVAILABLE"


def test_the_edge_presents_its_client_certificate(tls_stack: Stack, client_tls: ssl.SSLContext) -> None:
    sandbox = SandboxView(tls_stack.sandbox_url)
    sandbox.clear()
    smtp = smtplib.SMTP("127.0.0.1", tls_stack.ports.smtp_starttls, local_hostname="client.test", timeout=30)
    try:
        smtp.starttls(context=client_tls)
        smtp.login("demo@example.com", "demo-password")
        smtp.send_message(_message("via the edge over mTLS"), to_addrs=["bob@example.net"])
    finally:
        smtp.quit()
    assert [r["email"] for r in sandbox.emails()] == ["bob@example.net"]


def _served_serial(stack: Stack, pki: Pki) -> int:
    context = ssl.create_default_context(cafile=str(pki.directory / "ca.pem"))
    context.load_cert_chain(pki.directory / "caller.crt", pki.directory / "caller.key")
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", stack.ports.forwarder_grpc), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_a_renewed_server_certificate_is_served_without_restart(tls_stack: Stack, pki: Pki) -> None:
    before = _served_serial(tls_stack, pki)
    pki.write("server", pki.ca.issue_cert("127.0.0.1", "localhost"))
    after = _served_serial(tls_stack, pki)
    assert after != before
    with GatewayClient(
        _target(tls_stack), username="demo@example.com", password="demo-password", tls=pki.client_tls("caller")
    ) as client:
        assert client.send(_message("after renewal"), sender="svc@example.com", recipients=["bob@example.net"])
