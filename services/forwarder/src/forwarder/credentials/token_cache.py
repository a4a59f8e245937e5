"""A session cache keyed by a salted hash of the credentials (plaintext is never kept), with single flight.

A session is used until shortly before the API's expiry (capped by TOKEN_CACHE_TTL_SECONDS); then the next caller
signs in again, handing the flavor the expired session so it can use its refresh token instead of the password.

A direct gRPC caller's access token is checked with the API once per (token, account) and kept the same way, under a
salted hash of both (the hashes of the two kinds cannot collide: each kind's material starts with its own tag).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cachetools import TLRUCache, TTLCache

from forwarder.api.model import Session
from forwarder.metrics import ForwarderMetrics

# Signs in again with (username, password, the previous session or None, the asking request's id).
SessionFetcher = Callable[[str, str, Session | None, str], Coroutine[Any, Any, Session]]
# Checks an access token for an account with the API: (token, account id, the asking request's id).
TokenVerifier = Callable[[str, str, str], Coroutine[Any, Any, Session]]

# Renew a little before the API's own expiry so a token never dies in the middle of a submission.
_EXPIRY_MARGIN = 0.9
# How long an expired session is kept for its refresh token.
_REFRESHABLE_SECONDS = 24 * 3600.0


class TokenCache:
    def __init__(
        self,
        fetch: SessionFetcher,
        *,
        verify: TokenVerifier | None = None,
        ttl_cap_seconds: float,
        max_entries: int,
        metrics: ForwarderMetrics,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._verify = verify
        self._ttl_cap = ttl_cap_seconds
        self._metrics = metrics
        self._salt = os.urandom(32)
        self._entries: TLRUCache[bytes, Session] = TLRUCache(maxsize=max_entries, ttu=self._expires_at, timer=timer)
        self._refreshable: TTLCache[bytes, Session] = TTLCache(max_entries, _REFRESHABLE_SECONDS, timer=timer)
        self._inflight: dict[bytes, asyncio.Task[Session]] = {}

    def _expires_at(self, _key: bytes, session: Session, now: float) -> float:
        lifetime = session.expires_in * _EXPIRY_MARGIN if session.expires_in > 0 else self._ttl_cap
        return now + min(lifetime, self._ttl_cap)

    def _hash(self, kind: bytes, first: str, second: str) -> bytes:
        material = (
            kind + b"\0" + first.encode("utf-8", "surrogatepass") + b"\0" + second.encode("utf-8", "surrogatepass")
        )
        return hmac.new(self._salt, material, hashlib.sha256).digest()

    def _key(self, username: str, password: str) -> bytes:
        return self._hash(b"password", username, password)

    def _token_key(self, access_token: str, account_id: str) -> bytes:
        return self._hash(b"token", account_id, access_token)

    def __len__(self) -> int:
        return len(self._entries)

    async def token_for(self, username: str, password: str, request_id: str = "") -> Session:
        """The cached session, or one fetched once however many callers ask at the same moment."""
        key = self._key(username, password)
        return await self._cached(key, lambda: self._fetch(username, password, self._refreshable.get(key), request_id))

    async def session_for_token(self, access_token: str, account_id: str, request_id: str = "") -> Session:
        """The session of a direct caller's access token for `account_id`, checked with the API at most once per
        cache lifetime however many callers ask at the same moment."""
        verify = self._verify
        if verify is None:
            raise RuntimeError("this token cache checks no access tokens")
        return await self._cached(
            self._token_key(access_token, account_id), lambda: verify(access_token, account_id, request_id)
        )

    async def _cached(self, key: bytes, fetch: Callable[[], Coroutine[Any, Any, Session]]) -> Session:
        session = self._entries.get(key)
        if session is not None:
            self._metrics.token_cache_hits.inc()
            return session
        self._metrics.token_cache_misses.inc()
        task = self._inflight.get(key)
        if task is None:
            # The fetch belongs to the cache, not the first caller: its deadline must not cancel it for others.
            task = asyncio.create_task(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def _settle(self, key: bytes, task: asyncio.Task[Session]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # failures are never cached
        session = task.result()
        self._entries[key] = session
        if session.refresh_token:
            self._refreshable[key] = session
        self._metrics.token_cache_size.set(len(self._entries))

    def invalidate(self, username: str, password: str) -> None:
        """Drop the session: the API said 401 for it (its refresh token is dropped too: the password decides)."""
        self._drop(self._key(username, password))

    def invalidate_token(self, access_token: str, account_id: str) -> None:
        """Drop a checked access token: the API said 401 for it since."""
        self._drop(self._token_key(access_token, account_id))

    def _drop(self, key: bytes) -> None:
        self._entries.pop(key, None)
        self._refreshable.pop(key, None)
        self._metrics.token_cache_size.set(len(self._entries))
