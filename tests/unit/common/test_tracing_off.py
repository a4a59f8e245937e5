"""Tracing off (no tracer provider set): span() hands back OpenTelemetry's no-op span without going through its
tracer; once a provider is set, every span goes through the tracer."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from gateway_common import tracing


def _tracer_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def start_as_current_span(name: str, **kwargs: object) -> object:
        calls.append(name)
        return trace.use_span(trace.INVALID_SPAN)

    monkeypatch.setattr(tracing.TRACER, "start_as_current_span", start_as_current_span)
    return calls


def test_off_the_tracer_is_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _tracer_calls(monkeypatch)
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", trace.ProxyTracerProvider)
    with tracing.span("smtp DATA", {"session_id": "s"}) as span:
        span.set_attribute("smtp.reply_code", "250")
        assert not span.is_recording()
    assert calls == []


def test_on_every_span_goes_through_the_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _tracer_calls(monkeypatch)
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", TracerProvider)
    with tracing.span("smtp DATA", {"session_id": "s"}):
        pass
    assert calls == ["smtp DATA"]
