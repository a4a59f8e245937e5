"""Token cache: hashed keys, TTL from the token, single flight, failures not cached, invalidation."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from forwarder.api.errors import ApiUnavailable
from forwarder.api.model import Session
from forwarder.credentials.token_cache import TokenCache
from forwarder.metrics import ForwarderMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingFetcher:
    """A stand-in for the API in this unit test only: counts calls, can be told to fail or to wait."""

    def __init__(self, expires_in: float = 900) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.fail_with: Exception | None = None
        self.release = asyncio.Event()
        self.release.set()
        self.previous: list[Session | None] = []

    async def __call__(self, username: str, password: str, previous: Session | None, request_id: str) -> Session:
        self.calls += 1
        self.previous.append(previous)
        await self.release.wait()
        if self.fail_with:
            raise self.fail_with
        return Session(
            access_token=f"key-{self.calls}",
            accounts=("1",),
            email=username,
            expires_in=self.expires_in,
            refresh_token=f"refresh-{self.calls}",
        )


def make_cache(fetch: CountingFetcher, clock: Clock, ttl_cap: float = 900, max_entries: int = 100) -> TokenCache:
    return TokenCache(
        fetch,
        ttl_cap_seconds=ttl_cap,
        max_entries=max_entries,
        metrics=ForwarderMetrics(CollectorRegistry()),
        timer=clock,
    )


async def test_second_lookup_is_a_hit() -> None:
    fetch, clock = CountingFetcher(), Clock()
    cache = make_cache(fetch, clock)
    first = await cache.token_for("u", "p")
    assert await cache.token_for("u", "p") is first
    assert fetch.calls == 1


async def test_different_password_is_a_different_entry() -> None:
    fetch = CountingFetcher()
    cache = make_cache(fetch, Clock())
    await cache.token_for("u", "p1")
    await cache.token_for("u", "p2")
    assert fetch.calls == 2


async def test_concurrent_lookups_make_one_call() -> None:
    fetch = CountingFetcher()
    fetch.release.clear()
    cache = make_cache(fetch, Clock())
    waiting = [asyncio.create_task(cache.token_for("u", "p")) for _ in range(100)]
    await asyncio.sleep(0)
    fetch.release.set()
    tokens = await asyncio.gather(*waiting)
    assert fetch.calls == 1
    assert {t.access_token for t in tokens} == {"key-1"}


async def test_a_cancelled_first_caller_does_not_cancel_the_fetch_for_others() -> None:
    fetch = CountingFetcher()
    fetch.release.clear()
    cache = make_cache(fetch, Clock())
    first = asyncio.create_task(cache.token_for("u", "p"))
    second = asyncio.create_task(cache.token_for("u", "p"))
    await asyncio.sleep(0)
    first.cancel()
    fetch.release.set()
    assert (await second).access_token == "key-1"
    assert fetch.calls == 1


async def test_ttl_follows_token_expiry_and_is_capped() -> None:
    fetch, clock = CountingFetcher(expires_in=100), Clock()
    cache = make_cache(fetch, clock, ttl_cap=900)
    await cache.token_for("u", "p")
    clock.now += 85  # within 90% of the token's life
    await cache.token_for("u", "p")
    assert fetch.calls == 1
    clock.now += 10
    await cache.token_for("u", "p")
    assert fetch.calls == 2

    capped_fetch, capped_clock = CountingFetcher(expires_in=86_400), Clock()
    capped = make_cache(capped_fetch, capped_clock, ttl_cap=60)
    await capped.token_for("u", "p")
    capped_clock.now += 61
    await capped.token_for("u", "p")
    assert capped_fetch.calls == 2


async def test_failures_are_not_cached() -> None:
    fetch = CountingFetcher()
    fetch.fail_with = ApiUnavailable("down")
    cache = make_cache(fetch, Clock())
    with pytest.raises(ApiUnavailable):
        await cache.token_for("u", "p")
    fetch.fail_with = None
    assert (await cache.token_for("u", "p")).access_token == "key-2"


async def test_invalidate_forces_a_new_call() -> None:
    fetch = CountingFetcher()
    cache = make_cache(fetch, Clock())
    await cache.token_for("u", "p")
    cache.invalidate("u", "p")
    assert (await cache.token_for("u", "p")).access_token == "key-2"


async def test_size_is_bounded() -> None:
    fetch = CountingFetcher()
    cache = make_cache(fetch, Clock(), max_entries=3)
    for i in range(10):
        await cache.token_for(f"user{i}", "p")
    assert len(cache) == 3


def test_keys_do_not_contain_the_password() -> None:
    cache = make_cache(CountingFetcher(), Clock())
    key = cache._key("user", "hunter2")
    assert b"hunter2" not in key and b"user" not in key


async def test_an_expired_session_is_handed_over_for_its_refresh_token_and_invalidate_drops_it() -> None:
    fetch, clock = CountingFetcher(expires_in=100), Clock()
    cache = make_cache(fetch, clock)
    await cache.token_for("u", "p")
    assert fetch.previous == [None]
    clock.now += 95  # past 90% of the token's life
    renewed = await cache.token_for("u", "p")
    assert renewed.access_token == "key-2"
    previous = fetch.previous[-1]
    assert previous is not None and previous.refresh_token == "refresh-1"
    cache.invalidate("u", "p")  # the API refused it: the password decides, not the refresh token
    await cache.token_for("u", "p")
    assert fetch.previous[-1] is None
    await cache.token_for("u", "other-password")
    assert fetch.previous[-1] is None  # another password never reaches this user's refresh token


class CountingVerifier:
    """Stands in for the API's token check: counts calls, may refuse."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_with: Exception | None = None

    async def __call__(self, access_token: str, account_id: str, request_id: str) -> Session:
        self.calls += 1
        if self.fail_with:
            raise self.fail_with
        return Session(access_token, (account_id,), "", 0, pinned_account=True)


def make_token_cache(verify: CountingVerifier, clock: Clock, ttl_cap: float = 900) -> TokenCache:
    return TokenCache(
        CountingFetcher(),
        verify=verify,
        ttl_cap_seconds=ttl_cap,
        max_entries=100,
        metrics=ForwarderMetrics(CollectorRegistry()),
        timer=clock,
    )


async def test_an_access_token_is_checked_once_per_account_until_the_cap() -> None:
    verify, clock = CountingVerifier(), Clock()
    cache = make_token_cache(verify, clock, ttl_cap=60)
    first = await cache.session_for_token("tok", "1001")
    assert await cache.session_for_token("tok", "1001") is first
    assert first.accounts == ("1001",) and first.pinned_account
    await cache.session_for_token("tok", "1002")  # another account: checked on its own
    assert verify.calls == 2
    clock.now += 61
    await cache.session_for_token("tok", "1001")
    assert verify.calls == 3


async def test_a_refused_token_is_not_cached_and_invalidation_forces_a_new_check() -> None:
    verify = CountingVerifier()
    cache = make_token_cache(verify, Clock())
    verify.fail_with = ApiUnavailable("down")
    with pytest.raises(ApiUnavailable):
        await cache.session_for_token("tok", "1001")
    verify.fail_with = None
    await cache.session_for_token("tok", "1001")
    cache.invalidate_token("tok", "1001")
    await cache.session_for_token("tok", "1001")
    assert verify.calls == 3


def test_token_keys_hold_no_secret_and_differ_from_password_keys() -> None:
    cache = make_token_cache(CountingVerifier(), Clock())
    key = cache._token_key("s3cret-token", "1001")
    assert b"s3cret-token" not in key
    # The same two strings as a login (username=account, password=token) are another entry.
    assert key != cache._key("1001", "s3cret-token")
