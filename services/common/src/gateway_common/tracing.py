"""OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (each service's config.py).

Off, nothing is configured: spans come from OpenTelemetry's no-op tracer (a few hundred nanoseconds each) and the
gRPC interceptors are not installed at all. On, spans go to the OTLP/HTTP endpoint, and W3C trace context
(`traceparent`) travels in gRPC metadata from the edge to the forwarder and in HTTP headers to the Cakemail API.

Attributes are bounded, non-secret facts (listener, correlation id, method, route, status): never credentials,
addresses or message content.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

TRACER = trace.get_tracer("cakemail.smtp_gateway")


class Tracing:
    """What configure() set up, so the service can flush and close it on shutdown."""

    def __init__(self, provider: Any = None) -> None:
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def configure(service_name: str, endpoint: str | None) -> Tracing:
    """Install the SDK exporting to `endpoint` (the OTLP/HTTP base URL, as OTEL_EXPORTER_OTLP_ENDPOINT means it),
    or nothing when it is empty. The SDK is imported only when tracing is on."""
    if not endpoint:
        return Tracing()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(provider)
    return Tracing(provider)


# What span() gives while no tracer provider is set: OpenTelemetry's own no-op span, without the 8 us its no-op
# tracer spends reaching it (proxy tracer, context manager, context attach/detach) on every message.
_NO_SPAN = contextlib.nullcontext(trace.INVALID_SPAN)


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> AbstractContextManager[Span]:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):  # tracing off: nothing was set
        return _NO_SPAN
    return TRACER.start_as_current_span(name, kind=kind, attributes=attributes)


def inject(carrier: MutableMapping[str, str]) -> None:
    """The current trace context into outgoing headers (nothing when no span is recording)."""
    propagate.inject(carrier)


def _with_trace_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    metadata = grpc.aio.Metadata(*(tuple(details.metadata or ())), *carrier.items())
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


async def _traced_call(continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any) -> Any:
    """A client span per call, its context in the call's metadata."""
    name = _method_name(details.method)
    with span(f"grpc {name}", {"rpc.system": "grpc", "rpc.method": name}, kind=SpanKind.CLIENT) as current:
        call = await continuation(_with_trace_context(details), request)
        try:
            await call
        except grpc.aio.AioRpcError as error:
            current.set_attribute("rpc.grpc.status_code", error.code().value[0])
            current.set_status(Status(StatusCode.ERROR, error.code().name))
        return call


# One class per kind of call: grpc.aio files an interceptor under the first kind it implements only.
class _UnaryUnaryClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await _traced_call(continuation, client_call_details, request)


class _StreamUnaryClientInterceptor(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await _traced_call(continuation, client_call_details, request_iterator)


class _ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A server span per call, child of the caller's span when its metadata carried one."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler: Any = await continuation(handler_call_details)
        if handler is None or not (handler.unary_unary or handler.stream_unary):
            return handler
        metadata = handler_call_details.invocation_metadata or ()
        carrier = {key: value for key, value in metadata if isinstance(value, str)}
        name = _method_name(handler_call_details.method)

        def traced(behavior: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
            async def run(request: Any, servicer_context: Any) -> Any:
                token = otel_context.attach(propagate.extract(carrier))
                try:
                    attributes = {"rpc.system": "grpc", "rpc.method": name}
                    with span(f"grpc {name}", attributes, kind=SpanKind.SERVER):
                        return await behavior(request, servicer_context)
                finally:
                    otel_context.detach(token)

            return run

        if handler.unary_unary:
            return handler._replace(unary_unary=traced(handler.unary_unary))
        return handler._replace(stream_unary=traced(handler.stream_unary))


def client_interceptors(tracing: Tracing) -> list[grpc.aio.ClientInterceptor]:
    return [_UnaryUnaryClientInterceptor(), _StreamUnaryClientInterceptor()] if tracing.enabled else []


def server_interceptors(tracing: Tracing) -> list[grpc.aio.ServerInterceptor]:
    return [_ServerInterceptor()] if tracing.enabled else []
