"""GRPC_MAX_CONNECTION_AGE_SECONDS: the forwarder closes (GOAWAY) connections past that age, so that an edge's
channel reconnects and re-resolves the forwarders' DNS name, and finds pods the autoscaler added."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from devstack.stack import free_port
from forwarder.app import ForwarderApp
from forwarder.config import ForwarderSettings
from forwarder.metrics import ForwarderMetrics

READY = grpc.ChannelConnectivity.READY


async def _forwarder(**settings: float) -> AsyncIterator[ForwarderApp]:
    app = ForwarderApp(
        ForwarderSettings(grpc_port=0, http_port=free_port(), shutdown_grace_seconds=0, **settings),
        ForwarderMetrics(CollectorRegistry()),
    )
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def _ready_channel(app: ForwarderApp) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert channel.get_state() == READY
    return channel


@pytest.fixture
async def aged() -> AsyncIterator[ForwarderApp]:
    async for app in _forwarder(grpc_max_connection_age_seconds=0.5, grpc_max_connection_age_grace_seconds=0.5):
        yield app


@pytest.fixture
async def default_age() -> AsyncIterator[ForwarderApp]:
    async for app in _forwarder():
        yield app


async def test_a_connection_past_its_age_is_closed_and_the_channel_reconnects(aged: ForwarderApp) -> None:
    channel = await _ready_channel(aged)
    try:
        await asyncio.wait_for(channel.wait_for_state_change(READY), timeout=10)
        assert channel.get_state() != READY
        # The next call dials again (where a real edge re-resolves DNS first).
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await channel.close()


async def test_with_the_default_age_the_connection_stays(default_age: ForwarderApp) -> None:
    """The control: the same wait with the default age (300 s) sees no close."""
    channel = await _ready_channel(default_age)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(channel.wait_for_state_change(READY), timeout=2)
    finally:
        await channel.close()


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_MAX_CONNECTION_AGE_SECONDS", "120")
    monkeypatch.setenv("GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", "30")
    settings = ForwarderSettings()
    assert (settings.grpc_max_connection_age_seconds, settings.grpc_max_connection_age_grace_seconds) == (120, 30)
