"""One trace across both services for one message: the real edge and the real forwarder run in this process (tracing
on, spans kept by the SDK's in-memory exporter), an SMTP client sends over real TLS, the edge calls the forwarder
over real gRPC and the forwarder the sandbox (the stack's, a real HTTP server). Trace context crosses gRPC in the
call's metadata and reaches the API as a `traceparent` header; no span attribute carries a secret or content."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from devstack.certs import DevCertificate
from devstack.stack import Stack, free_port
from forwarder.api.http import HttpTransport
from forwarder.app import ForwarderApp
from forwarder.config import ForwarderSettings
from forwarder.metrics import ForwarderMetrics
from gateway_common import tracing
from smtp_edge.app import EdgeApp
from smtp_edge.metrics import EdgeMetrics
from tests.conftest import in_process_edge_settings

pytestmark = pytest.mark.e2e

USERNAME = "demo@example.com"
PASSWORD = "demo-password"
SECRET_SUBJECT = "quarterly numbers 7f3a"
SECRET_BODY = "the body nobody may trace 91c2"


class _InMemoryTracing(tracing.Tracing):
    """Tracing on, its spans kept by the test (the services must not shut the shared provider down)."""

    def shutdown(self) -> None:
        pass


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    spans = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return spans


@pytest.fixture
def traced(exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.setattr(tracing, "configure", lambda service, endpoint: _InMemoryTracing(provider=object()))
    exporter.clear()
    yield exporter
    exporter.clear()


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ann@example.com"
    message["To"] = "bob@example.net"
    message["Subject"] = SECRET_SUBJECT
    message["Message-ID"] = f"<{uuid.uuid4()}@tracing.test>"
    message.set_content(SECRET_BODY)
    return message


async def test_one_message_is_one_trace_across_both_services(
    traced: InMemorySpanExporter, stack: Stack, dev_certificate: DevCertificate, client_tls: ssl.SSLContext
) -> None:
    forwarder = ForwarderApp(
        ForwarderSettings(grpc_port=0, http_port=free_port(), cakemail_api_url=stack.sandbox_url),
        ForwarderMetrics(CollectorRegistry()),
    )
    traceparents: list[str] = []

    async def record(_session: object, _context: object, request: aiohttp.TraceRequestStartParams) -> None:
        traceparents.append(request.headers.get("traceparent", ""))

    observer = aiohttp.TraceConfig()
    observer.on_request_start.append(record)
    transport: HttpTransport = getattr(forwarder.api, "_transport")  # noqa: B009 (the real transport, observed)
    transport.trace_configs.append(observer)
    await forwarder.start()
    try:
        edge = EdgeApp(
            in_process_edge_settings(dev_certificate, f"127.0.0.1:{forwarder.grpc_port}"),
            EdgeMetrics(CollectorRegistry()),
        )
        await edge.start()
        try:
            starttls, _ = edge.listeners.ports()
            async with aiosmtplib.SMTP(
                hostname="127.0.0.1", port=starttls, start_tls=True, tls_context=client_tls, timeout=30
            ) as client:
                await client.login(USERNAME, PASSWORD)
                errors, _ = await client.send_message(_message())
                assert errors == {}
        finally:
            await edge.stop()
    finally:
        await forwarder.stop()

    spans = list(traced.get_finished_spans())
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    submit = "grpc /cakemail.gateway.v1.ForwarderService/SubmitSmallMessage"  # a small message: one unary call
    assert len(by_name["smtp DATA"]) == 1
    data = by_name["smtp DATA"][0]
    assert data.context is not None
    trace_id = data.context.trace_id
    in_trace = [span for span in spans if span.context is not None and span.context.trace_id == trace_id]
    kinds = {(span.name, span.kind) for span in in_trace}
    assert {
        ("smtp session", SpanKind.INTERNAL),
        ("smtp DATA", SpanKind.INTERNAL),
        (submit, SpanKind.CLIENT),
        (submit, SpanKind.SERVER),
        ("cakemail api emails", SpanKind.INTERNAL),
    } <= kinds
    # The chain: session -> DATA -> gRPC client -> gRPC server (the forwarder) -> API call.
    parents = {span.context.span_id: span for span in in_trace if span.context is not None}

    def parent_name(span: ReadableSpan) -> str | None:
        return parents[span.parent.span_id].name if span.parent is not None else None

    server = next(span for span in in_trace if span.name == submit and span.kind == SpanKind.SERVER)
    client = next(span for span in in_trace if span.name == submit and span.kind == SpanKind.CLIENT)
    api_call = next(span for span in in_trace if span.name == "cakemail api emails")
    assert parent_name(data) == "smtp session"
    assert client.parent is not None and client.parent.span_id == data.context.span_id
    assert client.context is not None and server.parent is not None
    assert server.parent.span_id == client.context.span_id  # the forwarder's span, child of the edge's
    assert parent_name(api_call) == submit
    assert api_call.attributes is not None and api_call.attributes["http.response.status_code"] == 201
    # The API saw the trace: every request of this message's trace carried its traceparent.
    assert any(f"-{trace_id:032x}-" in header for header in traceparents)
    assert all(header.startswith("00-") for header in traceparents)

    # Nothing secret or private in any attribute of any span.
    values = [str(value) for span in spans for value in (span.attributes or {}).values()]
    values += [str(value) for span in spans for event in span.events for value in (event.attributes or {}).values()]
    for secret in (PASSWORD, SECRET_SUBJECT, SECRET_BODY, USERNAME, "bob@example.net", "ann@example.com"):
        assert not any(secret in value for value in values), secret


def test_tracing_is_off_without_an_endpoint() -> None:
    off = tracing.configure("smtp-edge", "")
    assert not off.enabled
    assert tracing.client_interceptors(off) == [] and tracing.server_interceptors(off) == []
    carrier: dict[str, Any] = {}
    tracing.inject(carrier)  # no span recording: nothing to carry
    assert carrier == {}
