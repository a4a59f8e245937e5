"""The Redis delivery record beyond the shared table: two forwarder processes sharing one store, what Redis holds
(hashed keys, store-side expiry), and failing closed, never hanging, when Redis is gone or stuck."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from forwarder.delivery import Claim, ClaimState, RecordUnavailable
from forwarder.delivery.redis_store import RedisDeliveryRecord
from tests.redis_server import RedisServer
from tests.unit.forwarder.test_delivery_record import LONG_LEASE, MANY, RETENTION, key, redis_record

OUTAGE_TIMEOUT = 0.2  # socket timeouts of the records facing a dead or stuck server
NO_HANG = 10.0  # far above what the bounded timeouts allow; reaching it means a hang


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
async def two_processes(redis_url: str, prefix: str) -> AsyncIterator[tuple[RedisDeliveryRecord, RedisDeliveryRecord]]:
    """Two records with their own clients and connection pools: what two forwarder pods are to Redis."""
    first, second = redis_record(redis_url, prefix), redis_record(redis_url, prefix)
    yield first, second
    await first.aclose()
    await second.aclose()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to stop, restart or pause without disturbing the session's."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


async def test_two_processes_see_each_others_records(
    two_processes: tuple[RedisDeliveryRecord, RedisDeliveryRecord],
) -> None:
    first, second = two_processes
    assert (await first.claim(key(), lease_seconds=LONG_LEASE)).state is ClaimState.ACQUIRED
    assert (await second.claim(key(), lease_seconds=LONG_LEASE)).state is ClaimState.IN_FLIGHT
    await first.mark_sent(key(), "email-1")
    assert await second.claim(key(), lease_seconds=LONG_LEASE) == Claim(ClaimState.SENT, email_id="email-1")

    await second.claim(key(recipient="carol@example.org"), lease_seconds=LONG_LEASE)
    await second.mark_ambiguous(key(recipient="carol@example.org"), at=12.5)
    assert await first.claim(key(recipient="carol@example.org"), lease_seconds=LONG_LEASE) == Claim(
        ClaimState.AMBIGUOUS, since=12.5
    )


async def test_concurrent_claims_from_two_processes_acquire_exactly_once(
    two_processes: tuple[RedisDeliveryRecord, RedisDeliveryRecord],
) -> None:
    first, second = two_processes
    claims = await asyncio.gather(
        *(record.claim(key(), lease_seconds=LONG_LEASE) for _ in range(MANY) for record in (first, second))
    )
    assert [claim.state for claim in claims].count(ClaimState.ACQUIRED) == 1


async def test_keys_are_namespaced_hashed_and_expire_in_the_store(
    redis_url: str, prefix: str, raw: Redis, two_processes: tuple[RedisDeliveryRecord, RedisDeliveryRecord]
) -> None:
    first, _ = two_processes
    await first.claim(key(), lease_seconds=LONG_LEASE)
    keys = sorted(await raw.keys(f"{prefix}:*"))
    digest = key().digest()
    assert keys == [f"{prefix}:{{{digest}}}:lease"], "a bare lease is one key; no address in clear"
    assert 0 < await raw.pttl(keys[0]) <= LONG_LEASE * 1000

    await first.mark_sent(key(), "email-2")
    record = f"{prefix}:{{{digest}}}"
    assert sorted(await raw.keys(f"{prefix}:*")) == [record], "mark_sent frees the lease"
    assert await raw.hgetall(record) == {"state": "sent", "email_id": "email-2"}
    assert 0 < await raw.pttl(record) <= RETENTION * 1000
    assert all("example" not in name and "@" not in name for name in await raw.keys(f"{prefix}:*"))


async def test_a_dead_store_fails_closed_without_hanging(own_server: RedisServer, prefix: str) -> None:
    record = redis_record(own_server.url, prefix, timeout=OUTAGE_TIMEOUT)
    try:
        assert (await record.claim(key(), lease_seconds=LONG_LEASE)).state is ClaimState.ACQUIRED
        own_server.stop()
        async with asyncio.timeout(NO_HANG):
            with pytest.raises(RecordUnavailable):
                await record.claim(key(recipient="carol@example.org"), lease_seconds=LONG_LEASE)
            with pytest.raises(RecordUnavailable):
                await record.mark_sent(key(), "email-3")
            with pytest.raises(RecordUnavailable):
                await record.mark_ambiguous(key(), at=1.0)
            with pytest.raises(RecordUnavailable):
                await record.release(key())
            with pytest.raises(RecordUnavailable):
                await record.check()
    finally:
        await record.aclose()


async def test_a_store_that_never_answers_fails_closed_within_the_timeouts(
    own_server: RedisServer, prefix: str
) -> None:
    """SIGSTOPped: connections are accepted by the kernel but nothing is ever read or answered."""
    record = redis_record(own_server.url, prefix, timeout=OUTAGE_TIMEOUT)
    fresh = redis_record(own_server.url, prefix, timeout=OUTAGE_TIMEOUT)  # connects only once the server is stuck
    try:
        await record.check()  # a pooled connection exists before the server stops answering
        own_server.pause()
        async with asyncio.timeout(NO_HANG):
            with pytest.raises(RecordUnavailable):
                await record.claim(key(), lease_seconds=LONG_LEASE)
            with pytest.raises(RecordUnavailable):
                await fresh.claim(key(), lease_seconds=LONG_LEASE)
        own_server.resume()
        assert (await record.claim(key(), lease_seconds=LONG_LEASE)).state in (
            ClaimState.ACQUIRED,
            ClaimState.IN_FLIGHT,  # the stuck server may have run the timed-out claim once it woke up
        )
    finally:
        await record.aclose()
        await fresh.aclose()


async def test_the_record_recovers_when_redis_comes_back(own_server: RedisServer, prefix: str) -> None:
    """Pooled connections die with the server; the next call after a restart reconnects instead of failing."""
    record = redis_record(own_server.url, prefix, timeout=OUTAGE_TIMEOUT)
    try:
        await record.check()
        port = own_server.port
        own_server.stop()
        with pytest.raises(RecordUnavailable):
            await record.check()
        own_server.start(port=port)
        assert (await record.claim(key(), lease_seconds=LONG_LEASE)).state is ClaimState.ACQUIRED
    finally:
        await record.aclose()
