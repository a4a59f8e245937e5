"""Windowed counters and timed blocks for the abuse policies: in this process, or in Redis for every edge pod.

A counter's window starts at its first hit and is not extended by later hits (a fixed window per key, timed by the
store itself: Redis's clock for the shared store, so pods with skewed clocks still agree). Keys are built by the
policies; a store only adds its prefix.

Redis down, slow or refusing: `FailoverCounters` counts in this process instead (per pod, as without REDIS_URL)
and tries Redis again after a pause. The abuse limits keep working, only less tightly, and mail keeps flowing:
availability over exact limiting, because the cost of a missed limit for a few seconds is small and the cost of
refusing every message while a cache is down is an outage.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_KEY_PREFIX = "smtp-gateway:edge:v1"

# Beyond this many live keys the in-memory store drops expired ones before adding more.
_SWEEP_AT = 10_000


class CountersUnavailable(Exception):
    """The shared store could not answer in time."""


class Counters(Protocol):
    async def hit(self, key: str, window_seconds: float) -> int:
        """Adds one to the key's count and returns the count in the current window."""
        ...

    async def block(self, key: str, seconds: float) -> None:
        """Marks the key for that long (and forgets its count)."""
        ...

    async def blocked(self, key: str) -> bool: ...

    async def forget(self, key: str) -> None: ...


class MemoryCounters:
    """This process only: what every pod does without REDIS_URL, and the fallback while Redis is unreachable."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, window end)
        self._blocks: dict[str, float] = {}  # key -> block end

    def __len__(self) -> int:
        return len(self._counts) + len(self._blocks)

    async def hit(self, key: str, window_seconds: float) -> int:
        now = self._clock()
        if len(self) > _SWEEP_AT:
            self.sweep()
        count, ends = self._counts.get(key, (0, 0.0))
        if now >= ends:
            count, ends = 0, now + window_seconds
        self._counts[key] = (count + 1, ends)
        return count + 1

    async def block(self, key: str, seconds: float) -> None:
        self._counts.pop(key, None)
        self._blocks[key] = self._clock() + seconds

    async def blocked(self, key: str) -> bool:
        ends = self._blocks.get(key)
        if ends is None:
            return False
        if self._clock() >= ends:
            del self._blocks[key]
            return False
        return True

    async def forget(self, key: str) -> None:
        self._counts.pop(key, None)

    def sweep(self) -> None:
        """Forget expired windows and blocks, so memory stays bounded by recent clients."""
        now = self._clock()
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._blocks = {k: v for k, v in self._blocks.items() if v > now}


# INCR, and start the window on the first hit (or if the key somehow has no expiry): one atomic step.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisCounters:
    """Shared by every edge pod. Keys: `<prefix>:<policy key>` (docs/configuration.md lists them); each one a plain
    counter or block marker with a PX expiry, so Redis itself forgets them."""

    def __init__(self, client: Redis, *, timeout_seconds: float, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self._client = client
        self._prefix = key_prefix
        # Each call is capped whatever the client library does: SMTP replies wait for it.
        self._deadline = timeout_seconds
        self._hit = client.register_script(_HIT)

    @classmethod
    def from_url(cls, url: str, *, timeout_seconds: float, key_prefix: str = DEFAULT_KEY_PREFIX) -> RedisCounters:
        """redis://, rediss:// (TLS) or unix:// URLs; no connection is made until the first call."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), retries=0),
            decode_responses=True,
        )
        return cls(client, timeout_seconds=timeout_seconds, key_prefix=key_prefix)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def _run(self, operation: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._deadline):
                return await operation
        except (RedisError, OSError, TimeoutError) as error:
            raise CountersUnavailable(type(error).__name__) from error

    async def hit(self, key: str, window_seconds: float) -> int:
        return int(await self._run(self._hit(keys=[self._key(key)], args=[_milliseconds(window_seconds)])))

    async def block(self, key: str, seconds: float) -> None:
        await self._run(self._client.set(self._key(key), "1", px=_milliseconds(seconds)))

    async def blocked(self, key: str) -> bool:
        return bool(await self._run(self._client.exists(self._key(key))))

    async def forget(self, key: str) -> None:
        await self._run(self._client.delete(self._key(key)))

    async def close(self) -> None:
        await self._client.aclose()


class FailoverCounters:
    """Redis while it answers; this process's own counters while it does not, retrying Redis after a pause (so a
    dead Redis costs one timeout per pause, not one per SMTP command)."""

    def __init__(
        self,
        shared: RedisCounters,
        local: MemoryCounters,
        *,
        retry_after_seconds: float,
        on_unavailable: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = shared
        self._local = local
        self._retry_after = retry_after_seconds
        self._on_unavailable = on_unavailable
        self._clock = clock
        self._down_until = 0.0

    @property
    def degraded(self) -> bool:
        return self._clock() < self._down_until

    async def _either(self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        if not self.degraded:
            try:
                result = await shared()
            except CountersUnavailable as error:
                self._down_until = self._clock() + self._retry_after
                self._on_unavailable()
                log.warning("shared counters unreachable; counting in this pod", error=str(error))
            else:
                if self._down_until:
                    self._down_until = 0.0
                    log.info("shared counters reachable again")
                return result
        return await local()

    async def hit(self, key: str, window_seconds: float) -> int:
        return await self._either(
            lambda: self._shared.hit(key, window_seconds), lambda: self._local.hit(key, window_seconds)
        )

    async def block(self, key: str, seconds: float) -> None:
        await self._either(lambda: self._shared.block(key, seconds), lambda: self._local.block(key, seconds))

    async def blocked(self, key: str) -> bool:
        return await self._either(lambda: self._shared.blocked(key), lambda: self._local.blocked(key))

    async def forget(self, key: str) -> None:
        await self._either(lambda: self._shared.forget(key), lambda: self._local.forget(key))

    async def close(self) -> None:
        await self._shared.close()
