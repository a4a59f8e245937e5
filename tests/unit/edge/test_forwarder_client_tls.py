"""The edge's client certificate to the forwarder (mTLS) is renewed while the edge runs: the edge's ForwarderClient
against a real gRPC server on loopback that requires client certificates (the forwarder's own credentials) and
records the certificate each call came with. A half-written renewal is not switched to."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trustme
from cryptography import x509

from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from forwarder.grpc_api.tls import GrpcTlsFiles, ReloadingServerCredentials
from smtp_edge.forwarding.client import ForwarderClient, forwarder_tls


class RecordingForwarder(pb_grpc.ForwarderServiceServicer):
    """Answers Authenticate with OK and remembers the serial of the client certificate the call came over."""

    def __init__(self) -> None:
        self.serials: list[int] = []

    async def Authenticate(
        self, request: pb.AuthenticateRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.AuthenticateResponse:
        (pem,) = context.auth_context()["x509_pem_cert"]
        self.serials.append(x509.load_pem_x509_certificate(pem).serial_number)
        return pb.AuthenticateResponse(account_id="1", email=request.credentials.username)


@dataclass
class Setup:
    ca: trustme.CA
    directory: Path
    forwarder: RecordingForwarder
    address: str

    def write_edge(self, cert: trustme.LeafCert) -> int:
        """Written aside, then renamed into place (new inodes, as a Kubernetes Secret update); returns the serial."""
        for name, data in (
            ("edge.key", cert.private_key_pem.bytes()),
            ("edge.crt", b"".join(blob.bytes() for blob in cert.cert_chain_pems)),
        ):
            staged = self.directory / (name + ".new")
            staged.write_bytes(data)
            os.replace(staged, self.directory / name)
        return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).serial_number

    def client(self) -> ForwarderClient:
        d = self.directory
        return ForwarderClient(
            self.address,
            submit_timeout=10,
            auth_timeout=10,
            lb_policy="pick_first",
            tls_files=forwarder_tls(str(d / "ca.pem"), str(d / "edge.crt"), str(d / "edge.key")),
            tls_check_interval=0,
        )


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server_cert = ca.issue_cert("127.0.0.1")
    server_cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    forwarder = RecordingForwarder()
    server = grpc.aio.server()
    pb_grpc.add_ForwarderServiceServicer_to_server(forwarder, server)
    files = GrpcTlsFiles(str(tmp_path / "server.crt"), str(tmp_path / "server.key"), str(tmp_path / "ca.pem"))
    port = server.add_secure_port("127.0.0.1:0", ReloadingServerCredentials(files).credentials())
    await server.start()
    made = Setup(ca, tmp_path, forwarder, f"127.0.0.1:{port}")
    yield made
    await server.stop(None)


async def test_a_renewed_client_certificate_is_presented_without_restart(setup: Setup) -> None:
    first = setup.write_edge(setup.ca.issue_cert("smtp-edge.internal"))
    client = setup.client()
    try:
        assert (await client.authenticate("u", "p", correlation_id="c1")).accepted
        renewed = setup.write_edge(setup.ca.issue_cert("smtp-edge.internal"))
        assert (await client.authenticate("u", "p", correlation_id="c2")).accepted
    finally:
        await client.close()
    assert setup.forwarder.serials == [first, renewed]
    assert first != renewed


async def test_a_half_written_renewal_keeps_the_loaded_certificate(setup: Setup) -> None:
    first = setup.write_edge(setup.ca.issue_cert("smtp-edge.internal"))
    client = setup.client()
    try:
        assert (await client.authenticate("u", "p", correlation_id="c1")).accepted
        # Only the certificate was renewed so far: it does not match the key on disk.
        other = setup.ca.issue_cert("smtp-edge.internal")
        staged = setup.directory / "edge.crt.new"
        staged.write_bytes(other.cert_chain_pems[0].bytes())
        os.replace(staged, setup.directory / "edge.crt")
        assert (await client.authenticate("u", "p", correlation_id="c2")).accepted
        # The key arrives: the pair is whole again and is switched to.
        renewed = setup.write_edge(other)
        assert (await client.authenticate("u", "p", correlation_id="c3")).accepted
    finally:
        await client.close()
    assert setup.forwarder.serials == [first, first, renewed]
