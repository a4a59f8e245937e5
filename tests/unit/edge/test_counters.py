"""The edge's counter stores: in memory, in a real redis-server shared by two clients, and the fallback to this
process's own counters when Redis is unreachable or hung."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smtp_edge.policy.counters import CountersUnavailable, FailoverCounters, MemoryCounters, RedisCounters
from tests.redis_server import RedisServer, free_port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_counters_window_starts_at_the_first_hit() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    assert [await counters.hit("k", 10) for _ in range(3)] == [1, 2, 3]
    clock.now = 9.9
    assert await counters.hit("k", 10) == 4  # hits do not extend the window
    clock.now = 10
    assert await counters.hit("k", 10) == 1
    await counters.block("b", 5)
    assert await counters.blocked("b") and not await counters.blocked("other")
    clock.now = 15
    assert not await counters.blocked("b")
    await counters.forget("k")
    assert await counters.hit("k", 10) == 1


@pytest.fixture
async def two_pods(redis_url: str) -> AsyncIterator[tuple[RedisCounters, RedisCounters]]:
    """Two clients with one prefix of their own: two edge pods sharing one Redis."""
    prefix = f"test-counters:{uuid.uuid4().hex}"
    a = RedisCounters.from_url(redis_url, timeout_seconds=1, key_prefix=prefix)
    b = RedisCounters.from_url(redis_url, timeout_seconds=1, key_prefix=prefix)
    yield a, b
    await a.close()
    await b.close()


async def test_redis_counters_are_shared_and_expire(two_pods: tuple[RedisCounters, RedisCounters]) -> None:
    a, b = two_pods
    assert await a.hit("rate:ip:192.0.2.1", 0.3) == 1
    assert await b.hit("rate:ip:192.0.2.1", 0.3) == 2
    assert await a.hit("rate:ip:192.0.2.1", 0.3) == 3
    assert await b.hit("rate:ip:192.0.2.2", 0.3) == 1
    deadline = time.monotonic() + 5
    while await a.hit("rate:ip:192.0.2.1", 0.3) != 1:  # Redis's own expiry ends the window
        assert time.monotonic() < deadline, "the window never ended"
        await asyncio.sleep(0.05)
    await a.block("auth-block:192.0.2.1", 30)
    assert await b.blocked("auth-block:192.0.2.1")
    await b.forget("auth-block:192.0.2.1")
    assert not await a.blocked("auth-block:192.0.2.1")


async def test_redis_keys_carry_the_prefix_and_an_expiry(
    redis_url: str, two_pods: tuple[RedisCounters, RedisCounters]
) -> None:
    from redis.asyncio import Redis

    a, _ = two_pods
    await a.hit("rate:ip:192.0.2.9", 60)
    raw = Redis.from_url(redis_url, decode_responses=True)
    try:
        [key] = [k async for k in raw.scan_iter(match=f"{a._prefix}:*")]
        assert key == f"{a._prefix}:rate:ip:192.0.2.9"
        assert 0 < await raw.pttl(key) <= 60_000
    finally:
        await raw.aclose()


async def test_unreachable_redis_is_reported_within_the_timeout() -> None:
    counters = RedisCounters.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.5)
    with pytest.raises(CountersUnavailable):
        await counters.hit("k", 60)
    await counters.close()


async def test_failover_counts_locally_while_redis_is_down_and_returns_to_it(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    clock = Clock()
    failures: list[int] = []
    prefix = f"test-failover:{uuid.uuid4().hex}"
    try:
        shared = RedisCounters.from_url(server.url, timeout_seconds=0.5, key_prefix=prefix)
        counters = FailoverCounters(
            shared, MemoryCounters(clock), retry_after_seconds=5, on_unavailable=lambda: failures.append(1), clock=clock
        )
        other_pod = RedisCounters.from_url(server.url, timeout_seconds=0.5, key_prefix=prefix)
        assert await counters.hit("k", 60) == 1
        assert await other_pod.hit("k", 60) == 2  # shared while Redis answers

        server.pause()  # hung: connections accepted, nothing answered
        started = time.monotonic()
        assert await counters.hit("k", 60) == 1  # counted in this process instead, after one bounded wait
        assert time.monotonic() - started < 2
        assert counters.degraded and failures == [1]
        started = time.monotonic()
        assert await counters.hit("k", 60) == 2  # no further waits on Redis during the pause
        assert time.monotonic() - started < 0.1
        assert failures == [1]

        server.resume()
        clock.now += 5
        # Back on the shared count: 2 before the outage, plus this hit, plus perhaps the INCR that was sent into
        # the hung server and ran when it woke up (a timed-out command may still happen: over-counting, never under).
        back = await counters.hit("k", 60)
        assert back in (3, 4)
        assert not counters.degraded

        server.stop()  # dead: connections refused
        assert await counters.hit("k", 60) == 3  # the local count (2 so far) goes on
        assert failures == [1, 1]
        await other_pod.close()
        await counters.close()
    finally:
        server.stop()
