"""The memory delivery record beyond the shared table: exact deadlines on an injected clock, and its bound. Also the
factory that picks a backend from the settings."""

from __future__ import annotations

import pytest

from forwarder.config import ForwarderSettings
from forwarder.delivery import Claim, ClaimState, open_delivery_record
from forwarder.delivery.memory import MemoryDeliveryRecord
from forwarder.delivery.redis_store import RedisDeliveryRecord
from tests.unit.forwarder.test_delivery_record import LONG_LEASE, RETENTION, FakeClock, key


def make(clock: FakeClock, max_entries: int = 100) -> MemoryDeliveryRecord:
    return MemoryDeliveryRecord(retention_seconds=RETENTION, max_entries=max_entries, clock=clock)


async def test_a_lease_ends_exactly_at_its_deadline() -> None:
    clock = FakeClock()
    record = make(clock)
    await record.claim(key(), lease_seconds=10)
    clock.now += 9.999
    assert (await record.claim(key(), lease_seconds=10)).state is ClaimState.IN_FLIGHT
    clock.now += 0.001
    assert (await record.claim(key(), lease_seconds=10)).state is ClaimState.ACQUIRED


async def test_sent_lasts_exactly_the_retention_window_from_when_it_was_marked() -> None:
    clock = FakeClock()
    record = make(clock)
    await record.claim(key(), lease_seconds=LONG_LEASE)
    clock.now += 5  # the send took a while: retention counts from mark_sent, not from the claim
    await record.mark_sent(key(), "email-1")
    clock.now += RETENTION - 0.001
    assert await record.claim(key(), lease_seconds=LONG_LEASE) == Claim(ClaimState.SENT, email_id="email-1")
    clock.now += 0.001
    assert await record.claim(key(), lease_seconds=LONG_LEASE) == Claim(ClaimState.ACQUIRED)


async def test_an_ambiguous_recipient_is_kept_while_a_long_lease_outlasts_its_retention() -> None:
    clock = FakeClock()
    record = make(clock)
    await record.mark_ambiguous(key(), at=7.0)
    assert (await record.claim(key(), lease_seconds=10 * RETENTION)).state is ClaimState.AMBIGUOUS
    clock.now += 2 * RETENTION
    assert (await record.claim(key(), lease_seconds=LONG_LEASE)).state is ClaimState.IN_FLIGHT


async def test_the_bound_evicts_the_oldest_entry() -> None:
    record = make(FakeClock(), max_entries=3)
    for n in range(3):
        await record.mark_sent(key(recipient=f"r{n}@example.org"), f"email-{n}")
    await record.claim(key(recipient="r3@example.org"), lease_seconds=LONG_LEASE)
    assert len(record) == 3
    assert (await record.claim(key(recipient="r0@example.org"), lease_seconds=LONG_LEASE)).state is (
        ClaimState.ACQUIRED
    ), "the oldest entry was evicted"
    assert (await record.claim(key(recipient="r2@example.org"), lease_seconds=LONG_LEASE)).email_id == "email-2"
    assert (await record.claim(key(recipient="r3@example.org"), lease_seconds=LONG_LEASE)).state is (
        ClaimState.IN_FLIGHT
    )


async def test_expired_entries_make_room_before_live_ones_are_evicted() -> None:
    clock = FakeClock()
    record = make(clock, max_entries=2)
    await record.mark_sent(key(recipient="kept@example.org"), "email-kept")  # the oldest, and still live
    await record.claim(key(recipient="short@example.org"), lease_seconds=RETENTION / 4)
    clock.now += RETENTION / 4  # the lease is over, the SENT entry is not
    await record.claim(key(recipient="new@example.org"), lease_seconds=LONG_LEASE)
    assert (await record.claim(key(recipient="kept@example.org"), lease_seconds=LONG_LEASE)).email_id == "email-kept"


async def test_addresses_are_not_kept_in_clear() -> None:
    record = make(FakeClock())
    await record.mark_sent(key(recipient="secret.person@example.org"), "email-1")
    assert all("secret" not in stored for stored in record._entries)


def test_without_redis_url_the_record_is_in_memory_with_the_configured_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVERY_RECORD_MAX_ENTRIES", "7")
    for unset in (None, "", "  "):
        if unset is None:
            monkeypatch.delenv("REDIS_URL", raising=False)
        else:
            monkeypatch.setenv("REDIS_URL", unset)
        record = open_delivery_record(ForwarderSettings())
        assert isinstance(record, MemoryDeliveryRecord)
        assert record._entries.maxsize == 7


async def test_with_redis_url_the_record_is_in_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DELIVERY_RECORD_RETENTION_SECONDS", "123")
    record = open_delivery_record(ForwarderSettings())
    try:
        assert isinstance(record, RedisDeliveryRecord)
        await record.check()
        await record.mark_sent(key(identity="<factory-test@client.example>"), "email-9")
        assert record._retention_ms == 123_000
    finally:
        await record.aclose()


def test_a_redis_password_never_shows_in_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@redis.internal:6379/0")
    settings = ForwarderSettings()
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.redis_url is not None and "hunter2" in settings.redis_url.get_secret_value()
