"""A token cache keyed by a salted hash of the credentials (plaintext is never kept), with single flight."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cachetools import TLRUCache

from forwarder.api.wire import ApiToken
from forwarder.metrics import ForwarderMetrics

TokenFetcher = Callable[[str, str], Coroutine[Any, Any, ApiToken]]

# Refresh a little before the API's own expiry so a token never dies in the middle of a submission.
_EXPIRY_MARGIN = 0.9


class TokenCache:
    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        ttl_cap_seconds: float,
        max_entries: int,
        metrics: ForwarderMetrics,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_cap = ttl_cap_seconds
        self._metrics = metrics
        self._salt = os.urandom(32)
        self._entries: TLRUCache[bytes, ApiToken] = TLRUCache(maxsize=max_entries, ttu=self._expires_at, timer=timer)
        self._inflight: dict[bytes, asyncio.Task[ApiToken]] = {}

    def _expires_at(self, _key: bytes, token: ApiToken, now: float) -> float:
        lifetime = token.expires_in * _EXPIRY_MARGIN if token.expires_in > 0 else self._ttl_cap
        return now + min(lifetime, self._ttl_cap)

    def _key(self, username: str, password: str) -> bytes:
        material = username.encode("utf-8", "surrogatepass") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._salt, material, hashlib.sha256).digest()

    def __len__(self) -> int:
        return len(self._entries)

    async def token_for(self, username: str, password: str) -> ApiToken:
        """The cached token, or one fetched once however many callers ask at the same moment."""
        key = self._key(username, password)
        token = self._entries.get(key)
        if token is not None:
            self._metrics.token_cache_hits.inc()
            return token
        self._metrics.token_cache_misses.inc()
        task = self._inflight.get(key)
        if task is None:
            # The fetch belongs to the cache, not the first caller: its deadline must not cancel it for others.
            task = asyncio.create_task(self._fetch(username, password))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def _settle(self, key: bytes, task: asyncio.Task[ApiToken]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # failures are never cached
        self._entries[key] = task.result()
        self._metrics.token_cache_size.set(len(self._entries))

    def invalidate(self, username: str, password: str) -> None:
        """Drop the token: the API said 401 for it."""
        self._entries.pop(self._key(username, password), None)
        self._metrics.token_cache_size.set(len(self._entries))
