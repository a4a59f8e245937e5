"""The delivery record in Redis: shared by every forwarder replica, so a resend that reaches another pod is still
deduplicated.

Per recipient two keys in one hash slot (Redis Cluster safe), named by the key's SHA-256, never by an address:
  <prefix>:{<digest>}        a hash {state: sent|ambiguous, email_id | since}, expiring after the retention window
  <prefix>:{<digest>}:lease  the lease, SET NX with a PX expiry: the store itself ends a lease whose holder died
Each operation is one Lua script, so a claim is atomic across processes. A store that cannot be reached (refused,
timed out, read-only, out of memory) raises RecordUnavailable within a bounded time: the caller fails closed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from forwarder.delivery.record import Claim, ClaimState, RecipientKey, RecordUnavailable

DEFAULT_KEY_PREFIX = "smtp-gateway:delivery:v1"

T = TypeVar("T")

_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'sent' then
  return {'sent', redis.call('HGET', KEYS[1], 'email_id')}
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return {'in_flight'}
end
if state == 'ambiguous' then
  return {'ambiguous', redis.call('HGET', KEYS[1], 'since')}
end
return {'acquired'}
"""

_MARK_SENT = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'sent', 'email_id', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_MARK_AMBIGUOUS = """
if redis.call('HGET', KEYS[1], 'state') ~= 'sent' then
  redis.call('HSET', KEYS[1], 'state', 'ambiguous', 'since', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('DEL', KEYS[2])
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'sent' then
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[2])
return 1
"""


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisDeliveryRecord:
    def __init__(
        self,
        client: Redis,
        *,
        retention_seconds: float,
        timeout_seconds: float,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        self._client = client
        self._retention_ms = _milliseconds(retention_seconds)
        # One retry (a pooled connection may be dead after a Redis restart), each try bounded by the socket
        # timeouts: the whole call is capped a little above that, whatever the client library does.
        self._deadline = 2 * timeout_seconds + 0.5
        self._prefix = key_prefix
        self._claim = client.register_script(_CLAIM)
        self._mark_sent = client.register_script(_MARK_SENT)
        self._mark_ambiguous = client.register_script(_MARK_AMBIGUOUS)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        retention_seconds: float,
        timeout_seconds: float,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> RedisDeliveryRecord:
        """redis://, rediss:// (TLS) or unix:// URLs; no connection is made until the first call."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), retries=1),
            decode_responses=True,
        )
        return cls(client, retention_seconds=retention_seconds, timeout_seconds=timeout_seconds, key_prefix=key_prefix)

    def _keys(self, key: RecipientKey) -> list[str]:
        record = f"{self._prefix}:{{{key.digest()}}}"
        return [record, record + ":lease"]

    async def _run(self, operation: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._deadline):
                return await operation
        except (RedisError, OSError, TimeoutError) as error:
            raise RecordUnavailable(f"the delivery record store cannot be reached: {type(error).__name__}") from error

    async def claim(self, key: RecipientKey, *, lease_seconds: float) -> Claim:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        reply = await self._run(self._claim(keys=self._keys(key), args=[_milliseconds(lease_seconds)]))
        state = ClaimState(reply[0])
        if state is ClaimState.SENT:
            return Claim(state, email_id=reply[1])
        if state is ClaimState.AMBIGUOUS:
            return Claim(state, since=float(reply[1]))
        return Claim(state)

    async def mark_sent(self, key: RecipientKey, email_id: str) -> None:
        await self._run(self._mark_sent(keys=self._keys(key), args=[email_id, self._retention_ms]))

    async def mark_ambiguous(self, key: RecipientKey, at: float) -> None:
        await self._run(self._mark_ambiguous(keys=self._keys(key), args=[repr(at), self._retention_ms]))

    async def release(self, key: RecipientKey) -> None:
        await self._run(self._release(keys=self._keys(key)))

    async def check(self) -> None:
        await self._run(self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()
