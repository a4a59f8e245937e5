"""TLS_READ_BUFFER_BYTES reaches the TLS layer of a live session on both listeners (smtp/protocol.py's TlsLayer):
the setting is what bounds how much of one upload the loop decrypts in one turn (docs/security.md)."""

from __future__ import annotations

import ssl

import aiosmtplib
from prometheus_client import CollectorRegistry

from devstack.certs import DevCertificate
from devstack.stack import free_port
from smtp_edge.app import EdgeApp
from smtp_edge.metrics import EdgeMetrics
from smtp_edge.smtp.protocol import GatewaySMTP, TlsLayer
from tests.conftest import in_process_edge_settings


async def test_each_listener_s_tls_layer_reads_with_the_configured_buffer(
    dev_certificate: DevCertificate, client_tls: ssl.SSLContext
) -> None:
    edge = EdgeApp(
        # The forwarder is never called: no AUTH here.
        in_process_edge_settings(dev_certificate, f"127.0.0.1:{free_port()}", tls_read_buffer_bytes=20_000),
        EdgeMetrics(CollectorRegistry()),
    )
    await edge.start()
    try:
        starttls, implicit = edge.listeners.ports()
        clients = [
            aiosmtplib.SMTP(hostname="127.0.0.1", port=starttls, start_tls=True, tls_context=client_tls, timeout=10),
            aiosmtplib.SMTP(hostname="127.0.0.1", port=implicit, use_tls=True, tls_context=client_tls, timeout=10),
        ]
        for client in clients:
            await client.connect()
            await client.ehlo()
        sessions: set[GatewaySMTP] = getattr(edge.listeners.live, "_sessions")  # noqa: B009 (the live sessions)
        layers = [getattr(session, "_tls_protocol") for session in sessions]  # noqa: B009
        assert len(layers) == 2
        assert all(isinstance(layer, TlsLayer) and layer.max_size == 20_000 for layer in layers), layers
        for client in clients:
            await client.quit()
    finally:
        await edge.stop()
